"""One 1 MiB body limit for every control-plane surface (REST, SageMaker JSON, console JSON, /auth/tokens),
signed or not, declared or chunked; InvokeEndpoint keeps SageMaker's 6 MB."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from tailor import Client
from tailor.api.limits import MAX_CONTROL_BODY_BYTES
from tailor.auth.keys import KeyStore
from tailor.settings import Settings

TWO_MB = json.dumps({"TrainingJobName": "big", "Padding": "x" * 2_000_000}).encode()


def bearer(settings: Settings, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KeyStore(settings).issue_token(key)[0]}"}


def assert_413(resp: httpx.Response) -> None:
    assert resp.status_code == 413, resp.text[:300]
    body = resp.json()
    # Readable by both kinds of client: the REST envelope and AWS's shape.
    assert body["error"]["code"] == body["__type"] == resp.headers["x-amzn-ErrorType"] == "ValidationException"
    assert str(MAX_CONTROL_BODY_BYTES) in body["message"]


def test_every_control_plane_surface_refuses_bodies_over_one_mib(
    settings: Settings, api_server: str, admin_credentials
) -> None:
    auth = bearer(settings, admin_credentials.access_key_id)
    json_ct = {"Content-Type": "application/json"}
    amz = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.CreateTrainingJob"}
    cases = [
        ("POST", "/api/v1/training-jobs", json_ct),
        ("POST", "/api/v1/models", json_ct),
        ("POST", "/api/v1/endpoints/fm/update", json_ct),
        ("POST", "/", amz),
        ("GET", "/console/api/training-jobs", json_ct),
        ("GET", "/console/api/whoami", json_ct),
        ("POST", "/auth/tokens", json_ct),
    ]
    for method, path, headers in cases:
        assert_413(httpx.request(method, api_server + path, content=TWO_MB, headers={**auth, **headers}))
        assert_413(httpx.request(method, api_server + path, content=TWO_MB, headers=headers))  # before auth
    # SigV4-signed, as the SDK sends it.
    with Client(url=api_server) as client:
        req = client._http.build_request("POST", "/api/v1/training-jobs", content=TWO_MB, headers=json_ct)
        assert_413(client._http.send(client._signed(req)))
        assert client.list_training_jobs()["TrainingJobSummaries"] == []


def test_chunked_bodies_are_counted_as_they_arrive(settings: Settings, api_server: str, admin_credentials) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65_536  # 2.5 MiB in all, no Content-Length

    auth = bearer(settings, admin_credentials.access_key_id)
    resp = httpx.post(api_server + "/api/v1/training-jobs", content=chunks(), headers=auth)
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert_413(resp)


def test_the_limit_is_exactly_one_mib(settings: Settings, api_server: str, admin_credentials) -> None:
    auth = {**bearer(settings, admin_credentials.access_key_id), "Content-Type": "application/json"}
    prefix, suffix = b'{"TrainingJobName": "edge", "Padding": "', b'"}'
    fits = prefix + b"x" * (MAX_CONTROL_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(fits) == MAX_CONTROL_BODY_BYTES
    at_limit = httpx.post(api_server + "/api/v1/training-jobs", content=fits, headers=auth)
    assert at_limit.status_code == 400 and at_limit.json()["error"]["code"] == "ValidationException"  # read, parsed
    assert_413(httpx.post(api_server + "/api/v1/training-jobs", content=fits + b" ", headers=auth))


def test_invocations_keep_their_own_six_mb_limit(settings: Settings, api_server: str, admin_credentials) -> None:
    auth = {**bearer(settings, admin_credentials.access_key_id), "Content-Type": "image/png"}
    # 2 MB of image passes the body limit and reaches hosting, which knows no such endpoint.
    resp = httpx.post(api_server + "/endpoints/none/invocations", content=b"\0" * 2_000_000, headers=auth)
    assert resp.status_code == 400 and "not found" in resp.json()["message"], resp.text
