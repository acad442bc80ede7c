"""model.tar.gz on arbitrary bytes: safe_extract and read_model_json refuse with ValidationError, write nothing
outside the destination, and never raise anything else."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given

from tailor.errors import ValidationError
from tests.fuzz.targets import BY_NAME, artifact_samples

ARTIFACT = BY_NAME["artifact"]


def test_valid_sample_unpacks_and_link_is_refused() -> None:
    ARTIFACT.run(gzip.compress(artifact_samples()[0]))
    with pytest.raises(ValidationError, match="links are not allowed"):
        ARTIFACT.run(gzip.compress(artifact_samples()[2]))


@given(ARTIFACT.strategy)
def test_artifact(data: bytes) -> None:
    ARTIFACT.check(data)
