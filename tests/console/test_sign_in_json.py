"""The console accepts what `tailor keys token` prints: the bare token, or the JSON of `--json`."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from tailor.cli.main import cli
from tests.api.conftest import ServerProcess
from tests.console.conftest import sign_in

pytestmark = pytest.mark.slow  # a browser and a server


def test_pasting_the_json_of_keys_token_signs_in(
    server: ServerProcess, admin_credentials: object, new_page: Callable[[], object]
) -> None:
    res = CliRunner().invoke(cli, ["keys", "token", admin_credentials.access_key_id, "--json"])
    assert res.exit_code == 0, res.output
    pasted = res.stdout.strip()
    assert json.loads(pasted)["Token"]
    page = new_page()
    sign_in(page, server.url, pasted)
    page.wait_for_selector("#jobs")
    assert admin_credentials.access_key_id in page.inner_text("#who")
