"""Instance types → cluster resources: the default table and the user's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.backends.instance_types import DEFAULT_TYPES, load_table, resources_for
from tailor.errors import ValidationError


def test_defaults_follow_aws(tmp_path: Path) -> None:
    table = load_table(tmp_path / "missing.toml")
    p3 = resources_for(table, "ml.p3.2xlarge")
    assert (p3.cpus, p3.gpus, p3.memory_gib) == (8, 1, 61)
    assert p3.bundle() == {"CPU": 8, "GPU": 1, "memory": 61 * (1 << 30)}


def test_overrides_key_by_key_and_new_types(tmp_path: Path) -> None:
    path = tmp_path / "instance_types.toml"
    path.write_text('["ml.m5.xlarge"]\ncpus = 1\n\n["lab-box"]\ncpus = 2\ngpus = 1\nresources = { rack7 = 1 }\n')
    table = load_table(path)
    m5 = resources_for(table, "ml.m5.xlarge")
    assert (m5.cpus, m5.memory_gib) == (1, DEFAULT_TYPES["ml.m5.xlarge"].memory_gib)
    assert resources_for(table, "lab-box").bundle() == {"CPU": 2, "GPU": 1, "rack7": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('["x"]\ngpus = 1\n', "give its cpus"),
        ('["ml.m5.large"]\ncores = 1\n', "takes only"),
        ('["ml.m5.large"]\ncpus = "many"\n', "must be numbers"),
        ('["ml.m5.large"]\ncpus = -1\n', "must not be negative"),
        ("[broken\n", "instance_types.toml"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "instance_types.toml"
    path.write_text(text)
    with pytest.raises(ValidationError, match=message):
        load_table(path)


def test_unknown_type_names_the_file() -> None:
    with pytest.raises(ValidationError, match="instance_types.toml"):
        resources_for(DEFAULT_TYPES, "ml.nonexistent")
