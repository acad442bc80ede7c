"""What every SageMaker-style resource shares: its name rule, its ARN, time filters and List* paging.

One copy of each, used by the job and hosting services and, through them, by every surface (REST, the
SageMaker JSON protocol, the CLI and the SDK), so a name, an ARN or a page token reads the same everywhere.

- Names follow SageMaker's pattern for training jobs, models, endpoint configs and endpoints: 1-63 letters,
  digits and hyphens, starting and ending alphanumeric.
- ARNs are ``arn:aws:sagemaker:<region>:<account>:<type>/<name>`` with the server's configured region and
  12-digit account id; the name keeps its case (see ``arn``).
- ``paginate`` is the one List* implementation: filters under SageMaker's names, refused by name when a
  resource does not support them, sorted with the name as tie-breaker, NextToken an opaque offset.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from tailor.errors import NotFoundError, ValidationError
from tailor.json_input import parse_json

NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
NAME_RE = re.compile(NAME_PATTERN)
MAX_RESULTS = 100  # SageMaker's cap for MaxResults on every List* operation
_BAD_TOKEN = "NextToken is invalid: pass the NextToken of the previous response unchanged"


def check_name(member: str, name: Any) -> str:
    """``name`` when it is a valid resource name; else a ValidationError naming ``member``."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(f"{member} {name!r} is invalid: 1-63 letters, digits and hyphens, starting alphanumeric")
    return name


def arn(region: str, account_id: str, resource_type: str, name: str) -> str:
    """ARN of a SageMaker resource, e.g. ``arn:aws:sagemaker:us-east-1:…:endpoint/x``.

    The name keeps its case, exactly as Tailor's Describe* responses print the ARN, so a policy written from
    what the server shows matches (AWS lower-cases names in ARNs; with lower-case names both read the same).
    """
    return f"arn:aws:sagemaker:{region}:{account_id}:{resource_type}/{name}"


def row_of(session: Any, table: Any, name: str, label: str, *, lock: bool = False) -> Any:
    """The row named ``name`` in an open session, or NotFoundError ("<label> 'x' does not exist"); ``lock``
    reads it ``FOR UPDATE`` (PostgreSQL), for a read-modify-write that another server may race."""
    row = session.get(table, name, with_for_update=lock or None)
    if row is None:
        raise NotFoundError(f"{label} {name!r} does not exist")
    return row


def fetch(db: Any, table: Any, name: str, label: str) -> Any:
    """``row_of`` in a session of its own (the row comes back detached, its attributes loaded)."""
    with db.session() as s:
        return row_of(s, table, name, label)


def as_datetime(value: Any) -> datetime:
    """Datetime filters arrive as datetimes, epoch seconds or ISO strings depending on the surface."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        return as_datetime(float(value))
    except (TypeError, ValueError):
        pass
    try:
        return as_datetime(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        raise ValidationError(f"not a time: {value!r}: use ISO 8601 or epoch seconds") from None


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(parse_json(base64.urlsafe_b64decode(token.encode()), "NextToken")["offset"])
    except (ValidationError, ValueError, KeyError, TypeError):
        raise ValidationError(_BAD_TOKEN) from None
    if offset < 0:
        raise ValidationError(_BAD_TOKEN)
    return offset


def list_request(filters: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A List* request given as a dict (the SageMaker protocol, REST query) and/or keywords; None means unset."""
    return {k: v for k, v in {**(filters or {}), **kwargs}.items() if v is not None}


def paginate(
    db: Any, table: Any, filters: Mapping[str, Any], *, statuses: tuple[str, ...] | None = None
) -> tuple[list[Any], str | None]:
    """One page of ``table``'s rows for a List* request, and the NextToken of the next page (None at the end).

    ``table`` has ``name`` and ``creation_time`` (and, when it has them, ``status`` and
    ``last_modified_time``, which enable StatusEquals / SortBy=Status and LastModifiedTime*). ``statuses``
    lists the values StatusEquals accepts. Unsupported or malformed filters raise ValidationError.
    """
    columns = {"Name": table.name, "CreationTime": table.creation_time}
    known = {"NameContains", "CreationTimeAfter", "CreationTimeBefore", "SortBy", "SortOrder", "MaxResults"}
    known.add("NextToken")
    if statuses is not None:
        columns["Status"] = table.status
        known.add("StatusEquals")
    if hasattr(table, "last_modified_time"):
        known |= {"LastModifiedTimeAfter", "LastModifiedTimeBefore"}
    f = {k: v for k, v in filters.items() if v is not None}
    sort_by, sort_order, limit, status = list_controls(f, known, columns, statuses or ())
    q = select(table)
    if f.get("NameContains"):
        q = q.where(func.lower(table.name).contains(str(f["NameContains"]).lower(), autoescape=True))
    if status:
        q = q.where(table.status == status)
    for key, column, after in (
        ("CreationTimeAfter", "creation_time", True),
        ("CreationTimeBefore", "creation_time", False),
        ("LastModifiedTimeAfter", "last_modified_time", True),
        ("LastModifiedTimeBefore", "last_modified_time", False),
    ):
        if key in f:
            when, col = as_datetime(f[key]), getattr(table, column)
            q = q.where(col > when if after else col < when)
    col = columns[sort_by]
    q = q.order_by(col.asc() if sort_order == "Ascending" else col.desc(), table.name.asc())
    offset = decode_token(f.get("NextToken"))
    with db.session() as s:
        rows = list(s.scalars(q.offset(offset).limit(limit + 1)))
    return rows[:limit], (encode_token(offset + limit) if len(rows) > limit else None)


def list_controls(
    f: Mapping[str, Any],
    known: set[str],
    sorts: Iterable[str],
    statuses: Iterable[str],
    default_sort: tuple[str, str] = ("CreationTime", "Descending"),
) -> tuple[str, str, int, str | None]:
    """The members every List* request shares, checked once for all of them: no filter outside ``known``, SortBy
    one of ``sorts``, SortOrder, MaxResults 1..100 (default 10), StatusEquals one of ``statuses``. Returns
    (SortBy, SortOrder, MaxResults, StatusEquals or None)."""
    unknown = sorted(set(f) - known)
    if unknown:
        raise ValidationError(f"unsupported list filter(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
    sorts, statuses = list(sorts), list(statuses)
    sort_by, sort_order = f.get("SortBy", default_sort[0]), f.get("SortOrder", default_sort[1])
    if sort_by not in sorts:
        raise ValidationError(f"SortBy {sort_by!r}: use {', '.join(sorts)}")
    if sort_order not in ("Ascending", "Descending"):
        raise ValidationError(f"SortOrder {sort_order!r}: use Ascending or Descending")
    status = f.get("StatusEquals")
    if status is not None and status not in statuses:
        raise ValidationError(f"StatusEquals {status!r}: use one of {', '.join(statuses)}")
    return sort_by, sort_order, _max_results(f.get("MaxResults", 10)), status


def page_of(items: list[Any], offset_token: str | None, limit: int) -> tuple[list[Any], str | None]:
    """One page of an already filtered and sorted list, and the NextToken of the next page (None at the end)."""
    offset = decode_token(offset_token)
    return items[offset : offset + limit], (encode_token(offset + limit) if offset + limit < len(items) else None)


def _max_results(value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"MaxResults {value!r}: must be an integer 1..{MAX_RESULTS}") from None
    if not 1 <= n <= MAX_RESULTS:
        raise ValidationError(f"MaxResults {value}: must be 1..{MAX_RESULTS}")
    return n
