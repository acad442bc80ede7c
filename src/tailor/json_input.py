"""The one parser for JSON that comes from outside the server: request bodies, JSON Lines records, policies,
page tokens.

``json.loads`` recurses once per nesting level, so ``[`` x 100,000 raises ``RecursionError`` (not a
``ValueError``), and a body nested a few hundred levels parses but then overflows the first recursive walk
over it (URI checks, the wire encoder, pydantic). Every caller therefore gets a ``ValidationError`` for
anything that is not JSON or is nested deeper than ``MAX_DEPTH``, which no legitimate request approaches:
SageMaker's deepest request member (CreateTrainingJob's InputDataConfig -> DataSource -> S3DataSource ->
AttributeNames) is 5 levels, an IAM policy's Condition values 5, an invocation's ``data`` array 4.
"""

from __future__ import annotations

import json
from typing import Any

from tailor.errors import ValidationError

MAX_DEPTH = 32


def parse_json(raw: str | bytes, what: str = "request body", *, max_depth: int = MAX_DEPTH) -> Any:
    """``raw`` parsed, or ``ValidationError`` naming ``what`` (never a traceback, whatever the bytes)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValidationError(f"{what} is nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError, bad UTF-8, ints over 4,300 digits
        raise ValidationError(f"{what} is not valid JSON ({_reason(err)})") from None
    if nesting_depth(value) > max_depth:
        raise ValidationError(f"{what} is nested deeper than {max_depth} levels")
    return value


def nesting_depth(value: Any) -> int:
    """Depth of nested lists/objects (a scalar is 0), walked without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in node if isinstance(child, dict | list))
    return deepest


def _reason(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at line {err.lineno} column {err.colno}"
    return str(err)[:200]
