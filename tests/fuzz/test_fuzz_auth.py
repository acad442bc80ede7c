"""Authentication input on arbitrary bytes: SigV4 headers fail only with AuthError (and a mutated request never
verifies as another key); policy documents fail only with ValidationError and evaluate without backtracking."""

from __future__ import annotations

from hypothesis import example, given

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
def test_policy(data: bytes) -> None:
    POLICY.check(data)
