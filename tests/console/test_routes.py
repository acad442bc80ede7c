"""The console's own routes over HTTP: public static shell, no external URLs, JSON routes behind the policy."""

from __future__ import annotations

import re

import httpx
import pytest

from tailor.settings import Settings
from tests.api.conftest import ServerProcess
from tests.console.conftest import token_for

pytestmark = pytest.mark.slow  # a server with trained jobs (15 s set-up)

STATIC = ("index.html", "console.css", "charts.js", "hosting.js", "console.js", "logo.svg")


def test_the_shell_and_assets_are_served_and_reference_nothing_outside(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/console", follow_redirects=True)
    assert r.status_code == 200 and "Tailor console" in r.text
    for name in STATIC[1:]:
        asset = httpx.get(f"{server.url}/console/static/{name}")
        assert asset.status_code == 200, name
        # Offline: no CDN or any absolute URL the browser would fetch (the SVG namespace is not a fetch).
        urls = set(re.findall(r"https?://[^\s\"')]+", asset.text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, (name, urls)
    assert httpx.get(f"{server.url}/console/static/..%2Froutes.py").status_code == 404
    assert httpx.get(f"{server.url}/console/static/nope.js").status_code == 404


def test_json_routes_need_a_token_and_a_policy(
    settings: Settings, server: ServerProcess, admin_credentials: object
) -> None:
    url = f"{server.url}/console/api/training-jobs"
    assert httpx.get(url).status_code == 403  # unsigned: MissingAuthenticationToken
    admin = {"Authorization": f"Bearer {token_for(settings, admin_credentials.access_key_id)}"}
    page = httpx.get(url, headers=admin).json()
    assert page["TrainingJobSummaries"] == [] and page["StatusCounts"]["InProgress"] == 0
    me = httpx.get(f"{server.url}/console/api/whoami", headers=admin).json()
    assert me["AccessKeyId"] == admin_credentials.access_key_id
    bad = httpx.get(url, headers=admin, params={"SortBy": "Nope"})
    assert bad.status_code == 400 and "SortBy" in bad.json()["error"]["message"]
