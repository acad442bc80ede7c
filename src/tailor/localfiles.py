"""Files on this machine: written atomically (whole and durable, or absent) and read without following links.

The storage layer's local buckets, the job and endpoint logs and every artifact write go through these, so a
crash never leaves half a file and a link planted in a folder a job or a worker can write is never followed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, BinaryIO

from tailor.errors import StorageError

Progress = Callable[[int], None]  # called with the number of bytes just transferred
CHUNK = 1 << 20


def read_no_follow(folder: str, name: str) -> bytes | None:
    """The bytes of the regular file ``folder/name``; None when it is a symlink, not a regular file, or absent
    (``read_bytes`` then follows the link with its check, or raises what it would)."""
    try:
        fd = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def copy_stream(src: IO[bytes], out: IO[bytes], progress: Progress | None) -> None:
    while chunk := src.read(CHUNK):
        out.write(chunk)
        if progress:
            progress(len(chunk))


@contextmanager
def atomic_write(path: Path, mode: int | None = None) -> Iterator[IO[bytes]]:
    """Write to a temp file beside ``path`` and rename it into place; on any error nothing is left behind.
    The file gets the mode a plain open() would (0666 minus the umask), narrowed to ``mode`` when given."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tailor-tmp-", dir=path.parent)
    except OSError as err:
        raise StorageError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_umask() & (0o666 if mode is None else mode))
        os.replace(tmp, path)
    except OSError as err:
        _unlink_quietly(tmp)
        raise StorageError(f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise


def atomic_write_many(items: list[tuple[Path, bytes]]) -> None:
    """``atomic_write`` for a group of small files in passes: every temp file written and fsynced, then each
    renamed into place, so a file appears only whole and durable; on any error the temp files not yet renamed
    are removed (those renamed before it stay whole). Per file, on the 2-core VM's ext4 (1,280 files of 70
    bytes, groups of 64): 1.9 ms wall and 0.78 ms CPU against 2.6 ms and 1.0 ms for one ``atomic_write`` each
    on 8 threads (most of the gain is user CPU: no thread hop or context manager per file)."""
    staged: list[tuple[str, Path]] = []
    mode = 0o666 & ~_umask()  # mkstemp creates 0600; a plain open() gives 0666 minus the umask
    where = Path(".")
    made: set[Path] = set()
    try:
        fds: list[int] = []
        try:
            for where, data in items:
                where = Path(where)
                if where.parent not in made:  # one mkdir per folder of the group
                    where.parent.mkdir(parents=True, exist_ok=True)
                    made.add(where.parent)
                fd, tmp = tempfile.mkstemp(prefix=".tailor-tmp-", dir=where.parent)
                fds.append(fd)
                staged.append((tmp, where))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            for fd, (_, path) in zip(fds, staged, strict=True):
                where = path
                os.fsync(fd)
                os.fchmod(fd, mode)
        finally:
            for fd in fds:
                with suppress(OSError):
                    os.close(fd)
        for i, (tmp, where) in enumerate(staged):
            os.replace(tmp, where)
            staged[i] = ("", where)
    except OSError as err:
        raise StorageError(f"cannot write {where}: {err.strerror or err}") from None
    finally:
        for tmp, _ in staged:
            if tmp:
                _unlink_quietly(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unlink_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def open_regular(path: Path) -> BinaryIO | None:
    """A regular file for reading, or None when it is missing or not one. Logs live in dirs a job or a worker
    can write to: a link put there (to a server secret) is not followed, and a FIFO is not waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
