"""Choosing the backend: local by default; ray only with its extra and an address, else one line at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tailor.backends import LocalBackend, for_settings
from tailor.errors import ValidationError
from tailor.settings import Settings


def test_local_is_the_default(settings: Settings) -> None:
    assert isinstance(for_settings(settings), LocalBackend)


def test_ray_without_the_extra_names_it(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when Ray is not installed
    chosen = settings.model_copy(update={"backend": "ray", "ray_address": "auto"})
    with pytest.raises(ValidationError, match=r"pip install 'tailor\[cluster\]'"):
        for_settings(chosen)


def test_server_with_ray_and_no_address_is_one_line(settings: Settings) -> None:
    tailor = str(Path(sys.executable).with_name("tailor"))
    out = subprocess.run(
        [tailor, "--home", str(settings.home), "server", "--backend", "ray"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: the ray backend needs the cluster's address: set TAILOR_RAY_ADDRESS")
    assert len(out.stderr.strip().splitlines()) == 1
