"""Authentication input on arbitrary bytes: SigV4 headers fail only with AuthError (and a mutated request never
verifies as another key); policy documents fail only with ValidationError and evaluate without backtracking."""

from __future__ import annotations

import re
import time

from hypothesis import example, given
from hypothesis import strategies as st

from tailor.auth.policy import wildcard_match
from tests.fuzz.targets import BY_NAME, policy_samples, sigv4_sample

SIGV4, POLICY = BY_NAME["sigv4"], BY_NAME["policy"]


def _signed(**changes: bytes) -> dict:
    headers = {k: v.encode() for k, v in sigv4_sample().items()}
    return {"headers": {**headers, **changes}, "extra": {}, "path": b"/", "query": b"", "body": b"{}", "method": "POST"}


def test_valid_samples_pass() -> None:
    SIGV4.run(_signed())
    for doc in policy_samples():
        POLICY.run(doc)


@given(SIGV4.strategy)
@example(_signed(**{"X-Amz-Content-SHA256": b"\xb6" * 64}))  # non-ASCII: was TypeError from compare_digest
def test_sigv4(case: dict) -> None:
    SIGV4.check(case)


@given(POLICY.strategy)
@example(b"[" * 5000)  # inside the 10,240-character limit: was RecursionError
@example(b'{"Version": ' + b"9" * 5000 + b"}")  # was ValueError (Python's 4300-digit limit)
@example(  # backtracking wildcard: did not finish
    b'{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "' + b"*a" * 30 + b'b"}}'
)
def test_policy(data: bytes) -> None:
    POLICY.check(data)


def _backtracking_match(pattern: str, value: str) -> bool:
    """The plain translation ('*' -> '.*'): exponential on some patterns, exact on short ones."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


@given(st.text(alphabet="*?ab:", max_size=10), st.text(alphabet="ab:", max_size=10))
@example("*a*b", "aab")
@example("a*a", "a")
@example("*ab*b", "abb")
def test_wildcard_match_is_the_plain_translation(pattern: str, value: str) -> None:
    assert wildcard_match(pattern, value) == _backtracking_match(pattern, value)


def test_wildcard_match_does_not_backtrack() -> None:
    start = time.perf_counter()
    assert not wildcard_match("arn:" + "*a" * 30 + "*b", "arn:" + "a" * 120)
    assert wildcard_match("arn:" + "*a" * 30 + "*b", "arn:" + "a" * 120 + "b")
    assert time.perf_counter() - start < 0.5
