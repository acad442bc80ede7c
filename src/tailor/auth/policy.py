"""IAM-style identity policies: parse, validate and evaluate them as AWS does.

A policy is the JSON document AWS IAM uses::

    {"Version": "2012-10-17",
     "Statement": [{"Sid": "Invoke", "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
                    "Resource": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/my-endpoint"}]}

Evaluation follows AWS's identity-policy logic: an explicit ``Deny`` that matches wins over everything; otherwise
a matching ``Allow`` grants; otherwise the request is implicitly denied. ``*`` matches any run of characters
(``:`` and ``/`` included) and ``?`` exactly one, in actions and resources. Action names compare case-
insensitively (as on AWS), ARNs case-sensitively. Elements Tailor cannot honour (``Condition``, ``Principal``)
are refused when the policy is stored rather than silently ignored, so a policy never grants more than it reads.

Tailor's own actions (``tailor:RunCustomCode``: run a caller's own training code) are granted only by an Allow
that names them: an ``Action`` pattern whose service part is literally ``tailor`` (``tailor:RunCustomCode``,
``tailor:*``) or the full wildcard ``"*"`` (the admin policy). Patterns that merely happen to match the name
(``*:*``, ``t*:*``, ``sagemaker:*``) and ``NotAction`` Allows never grant them, so a policy written for
SageMaker's actions cannot start running code on the server by accident. A Deny matches them as usual.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from tailor.errors import ValidationError
from tailor.json_input import parse_json
from tailor.resources import arn

VERSIONS = ("2012-10-17", "2008-10-17")
TAILOR_NAMESPACE = "tailor:"
RUN_CUSTOM_CODE = "tailor:RunCustomCode"
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource"}
# AWS caps managed policies at 6,144 characters; a bit of room for pretty-printed documents.
MAX_POLICY_CHARS = 10_240
ADMIN_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}


class Decision(Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


@dataclass(frozen=True)
class Statement:
    effect: str  # "Allow" or "Deny"
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_action: bool = False  # the patterns came from NotAction
    not_resource: bool = False  # the patterns came from NotResource
    sid: str | None = None

    def matches(self, action: str, resource: str) -> bool:
        patterns = self.actions
        if self.effect == "Allow" and _is_tailor_action(action):
            if self.not_action:
                return False  # an Allow never grants a tailor: action by exclusion
            patterns = tuple(p for p in patterns if p == "*" or p.lower().startswith(TAILOR_NAMESPACE))
        hit_action = any(wildcard_match(p, action, ignore_case=True) for p in patterns)
        hit_resource = any(wildcard_match(p, resource) for p in self.resources)
        return (hit_action != self.not_action) and (hit_resource != self.not_resource)


@dataclass(frozen=True)
class Policy:
    version: str
    statements: tuple[Statement, ...]
    document: dict[str, Any]

    def evaluate(self, action: str, resource: str) -> Decision:
        return evaluate([self], action, resource)

    def to_json(self) -> str:
        return json.dumps(self.document, sort_keys=True)


def _is_tailor_action(action: str) -> bool:
    return action.lower().startswith(TAILOR_NAMESPACE)


@lru_cache(maxsize=4096)
def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # Between two '*' the text is fixed-length, so matching it at its earliest place is always safe: each such
    # run becomes an atomic lazy group (fnmatch's construction) and nothing backtracks. A plain '.*' per '*'
    # took exponential time: 'arn:*a*a*a…*b' (30 stars) against a 120-character ARN did not finish in minutes.
    chunks = ["".join("." if ch == "?" else re.escape(ch) for ch in part) for part in pattern.split("*")]
    regex = chunks[0]
    if len(chunks) > 1:
        regex += "".join(f"(?>.*?{c})" for c in chunks[1:-1]) + ".*" + chunks[-1]
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard match: ``*`` any run of characters, ``?`` one character, everything else literal."""
    return _compile(pattern, ignore_case).fullmatch(value) is not None


def evaluate(policies: list[Policy] | tuple[Policy, ...], action: str, resource: str) -> Decision:
    """Explicit Deny > Allow > implicit deny, across every statement of every policy."""
    allowed = False
    for policy in policies:
        for st in policy.statements:
            if not st.matches(action, resource):
                continue
            if st.effect == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValidationError(f"policy {where} must be a non-empty string or list of non-empty strings")
    return tuple(items)


def _action_ok(action: str) -> bool:
    # "*" or "service:Action" where both parts may hold wildcards (e.g. "sagemaker:Describe*").
    return action == "*" or re.fullmatch(r"[A-Za-z0-9*?-]+:[A-Za-z0-9*?]+", action) is not None


def _statement(raw: Any, index: int) -> Statement:
    where = f"Statement[{index}]"
    if not isinstance(raw, dict):
        raise ValidationError(f"policy {where} must be an object")
    unknown = set(raw) - _STATEMENT_KEYS
    if unknown:
        raise ValidationError(
            f"policy {where} has unsupported element(s) {sorted(unknown)}: Tailor honours only "
            f"{sorted(_STATEMENT_KEYS)}"
        )
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise ValidationError(f"policy {where}.Effect must be 'Allow' or 'Deny', got {effect!r}")
    if ("Action" in raw) == ("NotAction" in raw):
        raise ValidationError(f"policy {where} needs exactly one of Action or NotAction")
    if ("Resource" in raw) == ("NotResource" in raw):
        raise ValidationError(f"policy {where} needs exactly one of Resource or NotResource")
    akey = "Action" if "Action" in raw else "NotAction"
    rkey = "Resource" if "Resource" in raw else "NotResource"
    actions = _strings(raw[akey], f"{where}.{akey}")
    bad = [a for a in actions if not _action_ok(a)]
    if bad:
        raise ValidationError(
            f"policy {where}.{akey} has invalid action(s) {bad}: use 'sagemaker:<Operation>', 'tailor:<Action>' or '*'"
        )
    resources = _strings(raw[rkey], f"{where}.{rkey}")
    sid = raw.get("Sid")
    if sid is not None and not (isinstance(sid, str) and re.fullmatch(r"[A-Za-z0-9]*", sid)):
        raise ValidationError(f"policy {where}.Sid must be alphanumeric, got {sid!r}")
    return Statement(
        effect=effect,
        actions=actions,
        resources=resources,
        not_action=akey == "NotAction",
        not_resource=rkey == "NotResource",
        sid=sid,
    )


def parse_policy(document: str | bytes | dict[str, Any]) -> Policy:
    """Validate an IAM policy document (JSON text or an already-parsed dict)."""
    if isinstance(document, str | bytes):
        if len(document) > MAX_POLICY_CHARS:
            raise ValidationError(f"policy document is longer than {MAX_POLICY_CHARS} characters")
        document = parse_json(document, "policy document")
    if not isinstance(document, dict):
        raise ValidationError("policy document must be a JSON object with Version and Statement")
    unknown = set(document) - {"Version", "Statement", "Id"}
    if unknown:
        raise ValidationError(f"policy document has unsupported top-level element(s) {sorted(unknown)}")
    version = document.get("Version")
    if version not in VERSIONS:
        raise ValidationError(f"policy Version must be one of {list(VERSIONS)}, got {version!r}")
    raw = document.get("Statement")
    raw_list = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw_list, list) or not raw_list:
        raise ValidationError("policy Statement must be an object or a non-empty list of objects")
    statements = tuple(_statement(st, i) for i, st in enumerate(raw_list))
    return Policy(version=version, statements=statements, document=document)


resource_arn = arn  # the one ARN builder (tailor.resources), under the name policy code reads
