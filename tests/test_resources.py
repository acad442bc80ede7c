"""Resource names, ARNs and the one List* paginator, on a real database table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tailor.db import Database
from tailor.errors import NotFoundError, ValidationError
from tailor.hosting.store import EndpointRow, ModelRow
from tailor.resources import arn, check_name, decode_token, encode_token, fetch, paginate
from tailor.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(store_settings: Settings) -> Database:
    db = Database(store_settings).create_all()
    with db.session() as s:
        for i, name in enumerate(["beta", "Alpha", "gamma-1", "delta"]):
            t = T0 + timedelta(minutes=i)
            s.add(ModelRow(name=name, arn=name, model_id=name, spec={}, model_json={}, creation_time=t))
            s.add(
                EndpointRow(
                    name=name,
                    arn=name,
                    config_name="c",
                    variants=[],
                    status="InService" if i % 2 else "Failed",
                    creation_time=t,
                    last_modified_time=t + timedelta(hours=i),
                )
            )
    return db


def names(rows: list) -> list[str]:  # noqa: ANN001
    return [r.name for r in rows]


def test_names_and_arns() -> None:
    assert check_name("ModelName", "a-b-9") == "a-b-9"
    for bad in ("", "-a", "a_b", "a" * 64, None, 7):
        with pytest.raises(ValidationError, match="ModelName"):
            check_name("ModelName", bad)
    expected = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/My-Ep"
    assert arn("eu-west-1", "123456789012", "endpoint", "My-Ep") == expected


def test_default_order_is_newest_first_and_pages_join_up(db: Database) -> None:
    assert names(paginate(db, ModelRow, {})[0]) == ["delta", "gamma-1", "Alpha", "beta"]
    by_name = {"MaxResults": 3, "SortBy": "Name", "SortOrder": "Ascending"}
    first, token = paginate(db, ModelRow, by_name)
    assert names(first) == ["Alpha", "beta", "delta"] and token is not None
    rest, end = paginate(db, ModelRow, {**by_name, "NextToken": token})
    assert names(rest) == ["gamma-1"] and end is None


def test_filters(db: Database) -> None:
    assert names(paginate(db, ModelRow, {"NameContains": "LPH"})[0]) == ["Alpha"]  # case-insensitive
    after = paginate(db, ModelRow, {"CreationTimeAfter": (T0 + timedelta(seconds=90)).isoformat()})[0]
    assert names(after) == ["delta", "gamma-1"]
    statuses = ("InService", "Failed")
    failed = paginate(db, EndpointRow, {"StatusEquals": "Failed", "SortBy": "Status"}, statuses=statuses)[0]
    assert sorted(names(failed)) == ["beta", "gamma-1"]
    before = (T0 + timedelta(hours=1, minutes=2)).timestamp()  # epoch seconds, as the SageMaker protocol sends
    modified = paginate(db, EndpointRow, {"LastModifiedTimeBefore": before}, statuses=statuses)[0]
    assert sorted(names(modified)) == ["Alpha", "beta"]


@pytest.mark.parametrize(
    ("table", "filters", "message"),
    [
        (ModelRow, {"StatusEquals": "InService"}, "unsupported list filter\\(s\\) StatusEquals"),
        (ModelRow, {"LastModifiedTimeAfter": 0}, "unsupported list filter\\(s\\) LastModifiedTimeAfter"),
        (ModelRow, {"SortBy": "Status"}, "SortBy 'Status': use Name, CreationTime"),
        (ModelRow, {"SortOrder": "Up"}, "SortOrder 'Up'"),
        (ModelRow, {"MaxResults": 0}, "MaxResults 0: must be 1..100"),
        (ModelRow, {"MaxResults": "many"}, "MaxResults 'many'"),
        (ModelRow, {"NextToken": "garbage"}, "NextToken is invalid"),
        (ModelRow, {"NextToken": encode_token(-1)}, "NextToken is invalid"),
        (ModelRow, {"CreationTimeAfter": "yesterday"}, "not a time"),
        (EndpointRow, {"StatusEquals": "Happy"}, "StatusEquals 'Happy': use one of InService, Failed"),
    ],
)
def test_bad_requests_name_the_fix(db: Database, table: type, filters: dict, message: str) -> None:
    statuses = ("InService", "Failed") if table is EndpointRow else None
    with pytest.raises(ValidationError, match=message):
        paginate(db, table, filters, statuses=statuses)


def test_tokens_and_missing_rows(db: Database) -> None:
    assert decode_token(encode_token(30)) == 30 and decode_token(None) == 0
    assert fetch(db, ModelRow, "beta", "Model").name == "beta"
    with pytest.raises(NotFoundError, match="Model 'nope' does not exist"):
        fetch(db, ModelRow, "nope", "Model")
