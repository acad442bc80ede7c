"""model.tar.gz on arbitrary bytes: safe_extract and read_model_json refuse with ValidationError, write nothing
outside the destination, and never raise anything else."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest
from hypothesis import example, given

from tailor.errors import ValidationError
from tests.fuzz.targets import BY_NAME, artifact_samples

ARTIFACT = BY_NAME["artifact"]


def _with_model_json(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


def test_valid_sample_unpacks_and_link_is_refused() -> None:
    ARTIFACT.run(gzip.compress(artifact_samples()[0]))
    with pytest.raises(ValidationError, match="links are not allowed"):
        ARTIFACT.run(gzip.compress(artifact_samples()[2]))


@given(ARTIFACT.strategy)
@example(_with_model_json(b""))  # was JSONDecodeError
@example(_with_model_json(b"\x00\x00\x00\xff\x00"))  # json.loads guesses UTF-32: was UnicodeDecodeError
@example(_with_model_json(b"[1]"))  # was AttributeError ('list' has no .get)
@example(_with_model_json(b"[" * 100_000))  # was RecursionError
@example(_with_model_json(b"9" * 5000))  # was ValueError (Python's 4300-digit limit)
def test_artifact(data: bytes) -> None:
    ARTIFACT.check(data)
