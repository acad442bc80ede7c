"""The class-name map that travels beside a ``.rec``: ``<stem>.classes.json``, ``{"0": "AnkleBoot", …}``.

A RecordIO file stores only label ids; the names live in the image folders the ``.lst`` came from. The packer
writes this map beside each ``.rec`` it makes, ``tailor data cp`` carries it (and the ``.idx``) along with the
``.rec``, and the training loader reads it back, so a model answers "Sneaker", not "7", on every documented
path. A ``.rec`` without a map still trains; its model names classes by index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tailor.errors import DataError

SUFFIX = ".classes.json"
# Files that belong with a .rec wherever it goes: the index (MXNet's ImageRecordIter reads it) and the names.
COMPANION_SUFFIXES = (".idx", SUFFIX)


def map_path(rec: Path) -> Path:
    return rec.with_suffix(SUFFIX)


def write_class_map(rec: Path, names: Sequence[str]) -> Path:
    path = map_path(rec)
    path.write_text(json.dumps({str(i): name for i, name in enumerate(names)}, indent=1) + "\n")
    return path


def read_class_map(path: Path) -> list[str] | None:
    """Label i → name for i = 0..K-1; ``None`` when the file is absent. A malformed map is an error."""
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        names = {int(k): str(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError) as err:
        raise DataError(f'not a class map {{"0": "name", …}} ({err})', path=path) from None
    if sorted(names) != list(range(len(names))):
        raise DataError("class map keys must be the labels 0..K-1", path=path)
    return [names[i] for i in range(len(names))]


def companions(rec: Path) -> list[Path]:
    """The companion files that exist beside ``rec``."""
    return [p for p in (rec.with_suffix(s) for s in COMPANION_SUFFIXES) if p.is_file()]
