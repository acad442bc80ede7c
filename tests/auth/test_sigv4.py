"""SigV4 verification against requests signed by botocore itself, and by Tailor's own signer."""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tailor.auth import sigv4
from tailor.errors import InvalidSignatureError, UnrecognizedClientError

KEY_ID, SECRET = "TKIAEXAMPLEEXAMPLE00", "s3cr3t/EXAMPLE+secret/0123456789abcdefghi"
URL = "http://127.0.0.1:8023/"
BODY = json.dumps({"TrainingJobName": "job-1"}).encode()
HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.DescribeTrainingJob"}
NOW = dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)


def botocore_sign(
    url: str = URL,
    body: bytes = BODY,
    headers: dict | None = None,
    when: dt.datetime = NOW,
    secret: str = SECRET,
    region: str = "us-east-1",
) -> AWSRequest:
    req = AWSRequest(method="POST", url=url, data=body, headers=dict(headers or HEADERS))
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4Auth(Credentials(KEY_ID, secret), "sagemaker", region).add_auth(req)
    return req


def check(
    req: AWSRequest,
    *,
    body: bytes | None = None,
    now: dt.datetime = NOW,
    extra: dict | None = None,
    secrets: dict | None = None,
) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(req.url)
    headers = [(k.lower(), v) for k, v in req.headers.items()]
    headers.append(("host", parts.netloc))
    headers += [(k.lower(), v) for k, v in (extra or {}).items()]
    return sigv4.verify(
        method=req.method,
        raw_path=parts.path,
        query_string=parts.query,
        headers=headers,
        body=req.body if body is None else body,
        secret_of=({KEY_ID: SECRET} if secrets is None else secrets).get,
        region="us-east-1",
        now=now,
    )


def test_accepts_a_request_signed_by_botocore() -> None:
    assert check(botocore_sign()) == KEY_ID


def test_accepts_paths_and_queries_that_need_encoding() -> None:
    url = "http://127.0.0.1:8023/endpoints/my-ep/invocations?b=2&a=x%20y&a=1"
    assert check(botocore_sign(url=url)) == KEY_ID


def test_accepts_tailor_signed_request_and_botocore_agrees() -> None:
    headers = sigv4.sign(
        method="POST",
        url=URL + "endpoints/x/invocations",
        headers=dict(HEADERS),
        body=BODY,
        access_key_id=KEY_ID,
        secret=SECRET,
        region="us-east-1",
        now=NOW,
    )
    hdrs = [(k.lower(), v) for k, v in headers.items()]
    got = sigv4.verify(
        method="POST",
        raw_path="/endpoints/x/invocations",
        query_string="",
        headers=hdrs,
        body=BODY,
        secret_of={KEY_ID: SECRET}.get,
        region="us-east-1",
        now=NOW,
    )
    assert got == KEY_ID
    # Same signature as botocore computes for the same request and time.
    ref = AWSRequest(
        method="POST",
        url=URL + "endpoints/x/invocations",
        data=BODY,
        headers={k: v for k, v in headers.items() if k != "Authorization" and k != "X-Amz-Date"},
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(Credentials(KEY_ID, SECRET), "sagemaker", "us-east-1").add_auth(ref)
    assert ref.headers["Authorization"].split("Signature=")[1] == headers["Authorization"].split("Signature=")[1]


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignatureError, match="does not match") as err:
        check(botocore_sign(secret="wrong" + SECRET[5:]))
    assert SECRET not in str(err.value)


def test_unknown_or_disabled_key() -> None:
    with pytest.raises(UnrecognizedClientError, match="security token"):
        check(botocore_sign(), secrets={})


def test_tampered_body() -> None:
    req = botocore_sign()
    with pytest.raises(InvalidSignatureError):
        check(req, body=BODY.replace(b"job-1", b"job-2"))


def test_tampered_body_with_matching_content_sha_header() -> None:
    req = botocore_sign(headers={**HEADERS, "X-Amz-Content-SHA256": sigv4.hashlib.sha256(BODY).hexdigest()})
    evil = b'{"TrainingJobName": "job-2"}'
    req.headers["X-Amz-Content-SHA256"] = sigv4.hashlib.sha256(evil).hexdigest()
    with pytest.raises(InvalidSignatureError, match="does not match"):
        check(req, body=evil)


def test_unsigned_payload_is_refused() -> None:
    req = botocore_sign(headers={**HEADERS, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(InvalidSignatureError, match="x-amz-content-sha256"):
        check(req)


def test_tampered_signed_header() -> None:
    req = botocore_sign()
    req.headers.replace_header("X-Amz-Target", "SageMaker.DeleteEndpoint")
    with pytest.raises(InvalidSignatureError, match="does not match"):
        check(req)


def test_unsigned_amz_header_added_after_signing() -> None:
    with pytest.raises(InvalidSignatureError, match="must be signed: x-amz-target"):
        check(
            botocore_sign(headers={"Content-Type": "application/x-amz-json-1.1"}),
            extra={"X-Amz-Target": "SageMaker.DeleteEndpoint"},
        )


@pytest.mark.parametrize("minutes", [-6, 6, 60 * 24])
def test_replay_outside_five_minutes(minutes: int) -> None:
    req = botocore_sign()
    with pytest.raises(InvalidSignatureError, match="Signature (expired|not yet current)"):
        check(req, now=NOW + dt.timedelta(minutes=minutes))


def test_within_skew_is_fine() -> None:
    assert check(botocore_sign(), now=NOW + dt.timedelta(minutes=4, seconds=59)) == KEY_ID


def test_wrong_region_and_service() -> None:
    with pytest.raises(InvalidSignatureError, match="valid region"):
        check(botocore_sign(region="eu-west-1"))
    req = AWSRequest(method="POST", url=URL, data=BODY, headers=dict(HEADERS))
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(Credentials(KEY_ID, SECRET), "s3", "us-east-1").add_auth(req)
    with pytest.raises(InvalidSignatureError, match="correct service"):
        check(req)


@pytest.mark.parametrize(
    "header",
    [
        "AWS4-HMAC-SHA256 Credential=abc",
        "AWS4-HMAC-SHA256 Credential=K/2026/us-east-1/sagemaker/aws4_request, SignedHeaders=host, Signature="
        + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=K/20261126/us-east-1/sagemaker/aws4_request, SignedHeaders=x-amz-date;host, "
        "Signature=" + "0" * 64,
    ],
)
def test_malformed_authorization(header: str) -> None:
    with pytest.raises(sigv4.IncompleteSignatureError):
        sigv4.parse_authorization(header)


def test_canonical_uri_matches_botocore() -> None:
    from urllib.parse import quote

    from botocore.utils import normalize_url_path

    for path in ["/", "/a/./b/../c", "//a//b/", "/endpoints/x%2Fy/invocations", "/a%2e%2e/b"]:
        assert sigv4.canonical_uri(path) == quote(normalize_url_path(path), safe="/~")
