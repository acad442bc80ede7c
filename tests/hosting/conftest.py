from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.artifacts import build_artifact


@pytest.fixture(scope="session")
def model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifact(tmp_path_factory.mktemp("artifact") / "model.tar.gz")
