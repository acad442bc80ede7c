"""Shared fixtures. Every test gets its own TAILOR_HOME; nothing touches ~/.tailor or the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tailor.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "tailor-home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    return home


@pytest.fixture
def settings(_isolated_home: Path) -> Settings:
    return load_settings(home=str(_isolated_home)).ensure_dirs()


@pytest.fixture(scope="session")
def dataset_mirror() -> str:
    """The dataset mirror the Makefile sets (file:// URL of ../shared/datasets)."""
    mirror = os.environ.get("TAILOR_DATASET_MIRROR") or SHARED_DATASETS.as_uri()
    assert mirror.startswith("file://") and Path(mirror[len("file://") :]).is_dir(), mirror
    return mirror


@pytest.fixture(scope="session")
def mxnet_python() -> str:
    """The MXNet 1.9.1 reference interpreter (built by `make mxnet`)."""
    exe = os.environ.get("TAILOR_MXNET_PYTHON") or str(REPO / ".venv-mxnet" / "bin" / "python")
    assert Path(exe).exists(), f"MXNet reference venv missing at {exe}: run `make mxnet`"
    return exe
