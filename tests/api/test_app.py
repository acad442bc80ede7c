"""What the app itself serves besides the resource routes: /metrics (closed unless opened) and the API schema
(off by default; Swagger UI and ReDoc, which load from a CDN, never)."""

from __future__ import annotations

import re

import httpx

from tailor import Client
from tailor.auth.keys import KeyStore
from tailor.settings import Settings
from tests.conftest import running_app

METRICS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "tailor:GetMetrics", "Resource": "*"}],
}
SAGEMAKER_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}]}


def token(settings: Settings, name: str, policy: dict | None) -> dict[str, str]:
    store = KeyStore(settings)
    key = store.create(name, policy)
    return {"Authorization": f"Bearer {store.issue_token(key.info.access_key_id)[0]}"}


def test_metrics_need_a_credential_allowed_to_read_them(settings: Settings, api_server: str) -> None:
    anonymous = httpx.get(f"{api_server}/metrics")
    assert anonymous.status_code == 403
    assert anonymous.json()["error"]["code"] == "MissingAuthenticationTokenException"
    assert "tailor_" not in anonymous.text
    # sagemaker:* does not include tailor:GetMetrics: the page names every endpoint and worker.
    other = httpx.get(f"{api_server}/metrics", headers=token(settings, "ops", SAGEMAKER_ALL))
    assert other.status_code == 403 and "tailor:GetMetrics" in other.json()["message"]
    # Prometheus: `authorization: {credentials_file: …}` sends exactly this header.
    prometheus = httpx.get(f"{api_server}/metrics", headers=token(settings, "prometheus", METRICS_ONLY))
    assert prometheus.status_code == 200 and "tailor_training_jobs" in prometheus.text
    with Client(url=api_server) as admin:  # SigV4 with the admin key (Action "*")
        signed = admin._http.send(admin._signed(admin._http.build_request("GET", "/metrics")))
    assert signed.status_code == 200 and "tailor_endpoints" in signed.text
    assert httpx.get(f"{api_server}/healthz").status_code == 200  # the one open route


def test_metrics_can_be_opened_by_a_setting(settings: Settings) -> None:
    with running_app(settings.model_copy(update={"metrics_public": True})) as url:
        resp = httpx.get(f"{url}/metrics")
        assert resp.status_code == 200 and "tailor_training_jobs" in resp.text
        assert httpx.get(f"{url}/api/v1/training-jobs").status_code == 403  # nothing else opens with it


def test_no_docs_pages_and_no_schema_by_default(settings: Settings, api_server: str, admin_credentials) -> None:
    admin = token(settings, "reader", SAGEMAKER_ALL)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert httpx.get(api_server + path).status_code == 404, path
        assert httpx.get(api_server + path, headers=admin).status_code == 404, path


def test_the_schema_when_enabled_is_for_authenticated_callers_and_no_page_loads_a_cdn(settings: Settings) -> None:
    with running_app(settings.model_copy(update={"openapi_schema": True})) as url:
        assert httpx.get(f"{url}/openapi.json").status_code == 403
        # Authentication, no permission: a key whose policy allows nothing may read the API's shape.
        resp = httpx.get(f"{url}/openapi.json", headers=token(settings, "nobody", None))
        assert resp.status_code == 200 and "/api/v1/training-jobs" in resp.json()["paths"]
        for path in ("/docs", "/redoc"):
            assert httpx.get(url + path).status_code == 404, path
        console = httpx.get(f"{url}/console/", follow_redirects=True).text
        assert not re.search(r"cdn|jsdelivr|unpkg", console + resp.text, re.IGNORECASE)
