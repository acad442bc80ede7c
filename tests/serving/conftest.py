from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_dir(model_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tailor.artifact import safe_extract

    dest = tmp_path_factory.mktemp("model")
    safe_extract(model_tar, dest)
    return dest
