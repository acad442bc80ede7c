"""A training job's files between storage and its job dir: channels and checkpoints in, the model, checkpoints
and the log out. The runner decides when; this module moves the bytes and reports progress.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from tailor.errors import NotFoundError, StorageError, TailorError
from tailor.storage import Storage, join_uri, relative_key

LOG_SHIP_S = 5.0  # how often a grown log is copied to the shared store (other machines' readers lag this much)
PROGRESS_S = 1.0  # how often staging reports its progress
log = logging.getLogger(__name__)


def stage_channel(
    storage: Storage,
    channel: str,
    uri: str,
    dest_root: Path,
    *,
    check_stop: Callable[[], None],
    on_progress: Callable[[str], None],
) -> tuple[int, int]:
    """Download every object under ``uri`` into ``dest_root`` (emptied first); returns (objects, bytes).
    ``check_stop`` runs after every object (it raises to stop); ``on_progress`` gets a line at most once a
    second and after the last object."""
    if dest_root.exists():
        shutil.rmtree(dest_root)
    dest_root.mkdir(parents=True)
    objects = storage.list(uri)
    if not objects:
        raise NotFoundError(f"channel {channel!r}: no objects under {uri}")
    total = sum(o.size for o in objects)
    inside = dest_root.resolve()
    done = 0
    last = 0.0
    for i, obj in enumerate(objects, 1):
        dest = (dest_root / relative_key(uri, obj.key, obj.uri)).resolve()
        if inside not in dest.parents:
            raise StorageError(f"channel {channel!r}: object {obj.uri} would land outside the channel dir")
        storage.download_file(obj.uri, dest)
        done += obj.size
        check_stop()
        if time.monotonic() - last > PROGRESS_S or i == len(objects):
            last = time.monotonic()
            on_progress(
                f"Downloading channel {channel}: {i}/{len(objects)} objects, {done / 1e6:.1f}/{total / 1e6:.1f} MB"
            )
    return len(objects), total


def restore_checkpoints(storage: Storage, uri: str, dest: Path) -> None:
    for obj in storage.list(uri):
        storage.download_file(obj.uri, dest / relative_key(uri, obj.key, obj.uri))


def upload_model(storage: Storage, job_dir: Path, uri: str, *, required: bool) -> str | None:
    """The job's model.tar.gz to ``uri``; plain files a user's command left in model/ are tarred first, as
    SageMaker does with /opt/ml/model. None when there is nothing and ``required`` is false."""
    model = job_dir / "model"
    tarball = model / "model.tar.gz"
    if not tarball.is_file():
        files = [p for p in model.rglob("*") if p.is_file()]
        if files:
            tarball = job_dir / "output" / "model.tar.gz"
            with tarfile.open(tarball, "w:gz") as tar:
                for f in files:
                    tar.add(f, arcname=f.relative_to(model).as_posix())
        elif required:
            raise StorageError(f"the algorithm exited 0 but wrote nothing to {model}")
        else:
            return None
    storage.upload_file(tarball, uri)
    return uri


def sync_checkpoints(storage: Storage, base: Path, uri: str) -> None:
    for f in sorted(p for p in base.rglob("*") if p.is_file()):
        storage.upload_file(f, join_uri(uri, f.relative_to(base).as_posix()))


class LogShipper:
    """Copies a job's log to the shared store when it grew (whole: S3 has no append; job logs are small), so a
    server on another machine can read it. Best effort: a failed copy costs other machines' readers freshness,
    never the job. ``uri`` None: nothing to do (one server, or local buckets)."""

    def __init__(self, storage: Storage, path: Path, uri: str | None) -> None:
        self.storage, self.path, self.uri = storage, path, uri
        self._when, self._size = 0.0, -1  # when, and at which log size, the last copy was made

    def due(self) -> bool:
        return self.uri is not None and time.monotonic() - self._when >= LOG_SHIP_S

    def ship(self) -> None:
        if self.uri is None:
            return
        try:
            size = self.path.stat().st_size
            if size != self._size:
                self.storage.upload_file(self.path, self.uri)
            self._size = size
        except (OSError, TailorError) as err:
            log.warning("copying the job log %s to %s failed: %s", self.path.name, self.uri, err)
        self._when = time.monotonic()
