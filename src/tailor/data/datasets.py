"""Named datasets: the four IDX files of Fashion-MNIST / MNIST, downloaded once, md5-verified, cached.

``settings.dataset_mirror`` (``TAILOR_DATASET_MIRROR``, a base URL; ``file://`` allowed) replaces the official
origin: files are then read from ``<mirror>/<name>/<file>``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tailor.errors import DataError, StorageError, ValidationError
from tailor.settings import Settings

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class NamedDataset:
    name: str
    origin: str  # base URL, files appended
    md5: dict[str, str]
    #: folder name per official label id (import-idx); sorted(...) order is the trained class order.
    class_names: tuple[str, ...]


DATASETS: dict[str, NamedDataset] = {
    "fashion-mnist": NamedDataset(
        "fashion-mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # Official ids 0 T-shirt/top … 9 Ankle boot, named as SageMaker users know them, so that sorting the
        # folders gives ['AnkleBoot', 'Bag', 'Coat', 'Dress', 'Pullover', 'Sandal', 'Shirt', 'Sneaker', …].
        ("TShirtTop", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "AnkleBoot"),
    ),
    "mnist": NamedDataset(
        "mnist",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        tuple(str(i) for i in range(10)),
    ),
}


def get_dataset(name: str) -> NamedDataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValidationError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}") from None


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def url_of(ds: NamedDataset, fname: str, mirror: str | None) -> str:
    if mirror:
        return f"{mirror.rstrip('/')}/{ds.name}/{fname}"
    return ds.origin + fname


def _download(url: str, dest: Path, progress: Callable[[int], None] | None) -> None:
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
                if progress:
                    progress(len(block))
    except (urllib.error.URLError, OSError, ValueError) as err:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot download {url}: {getattr(err, 'reason', err)}") from None
    os.replace(tmp, dest)


def fetch(
    name: str,
    settings: Settings,
    *,
    dest: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Path]:
    """Ensure the dataset's four files are cached and verified; returns file name → path (in ``dest`` if given).

    A file whose md5 does not match is deleted and reported as :class:`DataError`; the cache keeps only good files.
    """
    ds = get_dataset(name)
    cache = settings.cache_dir / "datasets" / ds.name
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for fname, md5 in ds.md5.items():
        path = cache / fname
        if not (path.is_file() and md5_of(path) == md5):
            url = url_of(ds, fname, settings.dataset_mirror)
            _download(url, path, progress)
            got = md5_of(path)
            if got != md5:
                path.unlink(missing_ok=True)
                raise DataError(f"md5 mismatch: got {got}, expected {md5} (corrupt download or mirror)", path=url)
        if dest is not None:
            Path(dest).mkdir(parents=True, exist_ok=True)
            target = Path(dest) / fname
            if not (target.is_file() and target.stat().st_size == path.stat().st_size):
                shutil.copyfile(path, target)
            path = target
        out[fname] = path
    return out
