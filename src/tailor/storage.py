"""Object storage behind URIs.

``s3://bucket/key`` maps to ``$TAILOR_HOME/buckets/<bucket>/<key>`` by default, or to any S3-compatible server
when ``s3_endpoint_url`` is configured. Plain paths and ``file://`` URIs are local files, for the machine's own
user only (in-process CLI and SDK): every remote surface holds URIs to ``check_remote_uri``. Every write is atomic:
a temp file renamed into place locally, a (multipart) upload that only becomes visible when complete on S3.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from tailor.errors import NotFoundError, StorageError, ValidationError
from tailor.localfiles import Progress, atomic_write, atomic_write_many, copy_stream, read_no_follow
from tailor.settings import Settings

PARALLEL_PUTS = 8  # write_many's PUTs in flight to an S3 server
# S3 bucket names: 3-63 chars of lower-case letters, digits, dots and hyphens.
_BUCKET_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-")


@dataclass(frozen=True)
class Location:
    scheme: str  # "file" or "s3"
    bucket: str  # empty for file
    key: str  # the local path for file

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.scheme == "s3" else self.key


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    key: str
    size: int


def parse_uri(uri: str) -> Location:
    """Split a URI, refusing keys that could escape their bucket (``..`` after full percent-decoding)."""
    if not uri:
        raise ValidationError("empty storage URI")
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return Location("file", "", path)
    if parsed.scheme != "s3":
        raise ValidationError(f"unsupported URI scheme {parsed.scheme!r} in {uri!r}: use s3://, file:// or a path")
    bucket = parsed.netloc
    if not (3 <= len(bucket) <= 63) or not set(bucket) <= _BUCKET_CHARS:
        raise ValidationError(f"invalid bucket name {bucket!r} in {uri!r}")
    key = unquote(parsed.path.lstrip("/"))
    parts = key.split("/")
    if any(p == ".." for p in parts) or "\\" in key or "\x00" in key:
        raise ValidationError(f"invalid key in {uri!r}: '..', backslashes and NUL are not allowed")
    return Location("s3", bucket, key)


# Members that name objects in a request of the SageMaker shapes (CreateTrainingJob, CreateModel, ...), wherever
# they sit: channels, output path, checkpoints, model data, data capture.
_URI_MEMBERS = frozenset(
    {"S3Uri", "S3OutputPath", "ModelDataUrl", "DestinationS3Uri", "S3OutputLocation", "S3Location"}
)
# Maps whose keys are the caller's own names (a hyperparameter may be called "S3Uri"), not members.
_FREE_FORM_MEMBERS = frozenset({"HyperParameters", "Environment"})


def check_remote_uri(value: Any, where: str) -> str:
    """A URI named by a remote caller: ``s3://bucket/key`` only. Local paths, ``file://`` and other schemes,
    ``..`` and ``.`` segments, percent-encoding, backslashes, NUL and absolute keys are refused, so nothing a
    client names can reach the server's own files (its home, credentials, other jobs)."""
    shown = str(value)[:200]
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise ValidationError(
            f"{where} {shown!r} must be an s3://bucket/key URI: a server reads no local path or other scheme "
            "from a remote caller (upload the data first, e.g. `tailor data cp -r DIR s3://bucket/prefix/`)"
        )
    if "%" in value or "\\" in value or "\x00" in value:
        raise ValidationError(f"{where} {shown!r}: percent-encoding, backslashes and NUL are not accepted")
    key = value[len("s3://") :].partition("/")[2]
    if key.startswith("/") or any(seg in (".", "..") for seg in key.split("/")):
        raise ValidationError(f"{where} {shown!r}: '..', '.' and absolute keys are not accepted")
    parse_uri(value)
    return value


def check_remote_uris(obj: Any, where: str = "") -> None:
    """Apply ``check_remote_uri`` to every URI member of a request body, at any depth."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{where}.{k}" if where else str(k)
            if k in _URI_MEMBERS:
                check_remote_uri(v, path)
            elif k not in _FREE_FORM_MEMBERS:
                check_remote_uris(v, path)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            check_remote_uris(v, f"{where}[{i}]")


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def relative_key(prefix_uri: str, key: str, obj_uri: str) -> str:
    """Where an object lands inside its channel dir: its key relative to the channel's prefix."""
    if not obj_uri.startswith("s3://"):
        return key  # local listings already give keys relative to the listed folder (or the file name)
    prefix = prefix_uri.split("/", 3)[3] if prefix_uri.count("/") >= 3 else ""
    folder = prefix.rstrip("/") + "/" if prefix else ""
    if key == prefix:
        return Path(key).name
    if key.startswith(folder):
        return key[len(folder) :]
    parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(parent) :]


class Storage:
    """One interface over local files, local buckets and S3-compatible servers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._s3_client: Any = None

    # -- resolution -----------------------------------------------------------------------------------
    @property
    def remote(self) -> bool:
        return bool(self.settings.s3_endpoint_url)

    def local_path(self, uri: str) -> Path | None:
        """The local file behind a URI, or None when it lives on a remote S3 server."""
        loc = parse_uri(uri)
        if loc.scheme == "file":
            return Path(loc.key).expanduser()
        if self.remote:
            return None
        root = (self.settings.buckets_dir / loc.bucket).resolve()
        path = (root / loc.key).resolve() if loc.key else root
        if path != root and root not in path.parents:
            raise ValidationError(f"key escapes its bucket: {uri!r}")
        return path

    def _s3(self) -> Any:
        if self._s3_client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            self._s3_client = boto3.client(
                "s3",
                endpoint_url=s.s3_endpoint_url,
                aws_access_key_id=s.s3_access_key_id,
                aws_secret_access_key=s.s3_secret_access_key,
                region_name=s.s3_region,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
            )
        return self._s3_client

    @contextmanager
    def _s3_errors(self, uri: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                raise NotFoundError(f"no such object: {uri}") from None
            raise StorageError(f"S3 error on {uri}: {code or err}") from None
        except BotoCoreError as err:
            raise StorageError(f"S3 server unreachable for {uri}: {err}") from None

    # -- reads ----------------------------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        path = self.local_path(uri)
        if path is not None:
            return path.exists()
        loc = parse_uri(uri)
        try:
            with self._s3_errors(uri):
                self._s3().head_object(Bucket=loc.bucket, Key=loc.key)
            return True
        except NotFoundError:
            return False

    def size(self, uri: str) -> int:
        path = self.local_path(uri)
        if path is not None:
            if not path.is_file():
                raise NotFoundError(f"no such object: {uri}")
            return path.stat().st_size
        loc = parse_uri(uri)
        with self._s3_errors(uri):
            return int(self._s3().head_object(Bucket=loc.bucket, Key=loc.key)["ContentLength"])

    def open_read(self, uri: str) -> IO[bytes]:
        path = self.local_path(uri)
        if path is not None:
            if not path.is_file():
                raise NotFoundError(f"no such object: {uri}")
            return path.open("rb")
        loc = parse_uri(uri)
        with self._s3_errors(uri):
            return self._s3().get_object(Bucket=loc.bucket, Key=loc.key)["Body"]

    def read_bytes(self, uri: str) -> bytes:
        with self.open_read(uri) as fh:
            return fh.read()

    def read_range(self, uri: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of the object from byte ``offset``: fewer at its end, none past it. On S3 one
        ranged GET, so a reader paging through a large object never downloads it whole."""
        if length <= 0:
            return b""
        path = self.local_path(uri)
        if path is not None:
            with self.open_read(uri) as fh:
                fh.seek(max(0, offset))
                return fh.read(length)
        from botocore.exceptions import ClientError

        loc = parse_uri(uri)
        with self._s3_errors(uri):
            try:
                reply = self._s3().get_object(
                    Bucket=loc.bucket, Key=loc.key, Range=f"bytes={max(0, offset)}-{max(0, offset) + length - 1}"
                )
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") == "InvalidRange":  # from at or past the end
                    return b""
                raise
            return reply["Body"].read()

    def read_many(self, uris: list[str]) -> list[bytes]:
        """``read_bytes`` of each URI, in order, for less per object: in a local bucket each folder is resolved
        (and checked to lie inside its bucket) once, and a file is opened without following a symlink; a
        symlinked file takes ``read_bytes``'s full check. 2,000 small files on the loaded 2-core VM: ~300 us
        each through ``read_bytes`` (most of it resolving every path component), ~20 us for a plain read."""
        out: list[bytes] = []
        folders: dict[str, str | None] = {}
        for uri in uris:
            found = self._bucket_file(uri, folders)
            data = None if found is None else read_no_follow(*found)
            out.append(self.read_bytes(uri) if data is None else data)
        return out

    def _bucket_file(self, uri: str, folders: dict[str, str | None]) -> tuple[str, str] | None:
        """(real folder, name) of an object in a local bucket, its folder resolved once per ``folders`` cache and
        checked to lie inside the bucket; None when the URI is not that simple case (``local_path`` decides)."""
        loc = parse_uri(uri)
        if loc.scheme != "s3" or self.remote or not loc.key or loc.key.startswith("/") or loc.key.endswith("/"):
            return None
        folder, _, name = f"{loc.bucket}/{loc.key}".rpartition("/")
        if name in (".", ".."):
            return None
        if folder not in folders:
            root = (self.settings.buckets_dir / loc.bucket).resolve()
            path = (self.settings.buckets_dir / folder).resolve()
            folders[folder] = str(path) if path == root or root in path.parents else None
        real = folders[folder]
        return None if real is None else (real, name)

    def _local_file(self, uri: str, folders: dict[str, str | None]) -> Path:
        """Where a write of ``uri`` goes locally: ``local_path``'s answer, with a bucket folder resolved once.
        A link at the name itself is replaced by the rename, never followed."""
        found = self._bucket_file(uri, folders)
        if found is not None:
            return Path(found[0], found[1])
        path = self.local_path(uri)
        assert path is not None  # remote URIs were written by write_bytes
        return path

    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        """Objects under a prefix (a 'folder' or a key prefix), sorted by key."""
        path = self.local_path(prefix_uri)
        if path is not None:
            return self._list_local(prefix_uri, path)
        loc = parse_uri(prefix_uri)
        out: list[ObjectInfo] = []
        with self._s3_errors(prefix_uri):
            pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key)
            for page in pages:
                for obj in page.get("Contents", []):
                    out.append(ObjectInfo(f"s3://{loc.bucket}/{obj['Key']}", obj["Key"], int(obj["Size"])))
        return sorted(out, key=lambda o: o.key)

    def _list_local(self, prefix_uri: str, path: Path) -> list[ObjectInfo]:
        if path.is_dir():
            return self._walk_local(prefix_uri, path)
        if not path.is_file():
            return []
        loc = parse_uri(prefix_uri)
        if loc.scheme == "s3":
            return [ObjectInfo(f"s3://{loc.bucket}/{loc.key}", loc.key, path.stat().st_size)]
        return [ObjectInfo(str(path), path.name, path.stat().st_size)]

    def _walk_local(self, prefix_uri: str, root: Path) -> list[ObjectInfo]:
        """Files under a folder (symlinks to files included, symlinked folders not entered), in the order of
        their path components; one stat each. 10,000 files: ~3x faster than ``rglob`` + ``is_file`` + ``stat``."""
        loc = parse_uri(prefix_uri)
        found: list[tuple[list[str], int]] = []
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            rel_dir = Path(folder).relative_to(root).parts
            for name in names:
                if name.startswith(".tailor-tmp-"):
                    continue
                try:
                    info = os.stat(os.path.join(folder, name))
                except OSError:  # a dangling symlink, or a file removed meanwhile
                    continue
                if stat.S_ISREG(info.st_mode):
                    found.append(([*rel_dir, name], info.st_size))
        found.sort(key=lambda item: item[0])
        out = []
        for parts, size in found:
            rel = "/".join(parts)
            if loc.scheme == "s3":
                key = f"{loc.key.rstrip('/')}/{rel}".lstrip("/")
                out.append(ObjectInfo(f"s3://{loc.bucket}/{key}", key, size))
            else:
                out.append(ObjectInfo(str(root.joinpath(*parts)), rel, size))
        return out

    def download_file(self, uri: str, dest: Path, progress: Progress | None = None) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        local = self.local_path(uri)
        # A copy of a local file is never more open than its source (a 0600 file stays 0600).
        mode = local.stat().st_mode & 0o666 if local is not None and local.is_file() else None
        with self.open_read(uri) as src, atomic_write(dest, mode) as out:
            copy_stream(src, out, progress)
        return dest

    # -- writes ---------------------------------------------------------------------------------------
    def write_bytes(self, uri: str, data: bytes) -> None:
        path = self.local_path(uri)
        if path is not None:
            with atomic_write(path) as out:
                out.write(data)
            return
        loc = parse_uri(uri)
        with self._s3_errors(uri):
            self._s3().put_object(Bucket=loc.bucket, Key=loc.key, Body=data)

    def write_many(self, items: list[tuple[str, bytes]]) -> None:
        """Several small objects, each atomic as ``write_bytes`` makes it (whole or absent), for less than one
        ``write_bytes`` each: local files share one pass of writes, fsyncs and renames (``atomic_write_many``)."""
        if self.remote and any(parse_uri(uri).scheme == "s3" for uri, _ in items):
            # one PUT each (atomic on S3), several at once: each is mostly a round trip's wait
            with ThreadPoolExecutor(max(1, min(PARALLEL_PUTS, len(items)))) as pool:
                list(pool.map(lambda item: self.write_bytes(*item), items))
            return
        folders: dict[str, str | None] = {}
        paths = [self._local_file(uri, folders) for uri, _ in items]
        atomic_write_many([(path, data) for path, (_, data) in zip(paths, items, strict=True)])

    def upload_file(self, src: Path, uri: str, progress: Progress | None = None) -> None:
        src = Path(src)
        if not src.is_file():
            raise NotFoundError(f"no such file: {src}")
        path = self.local_path(uri)
        if path is not None:
            with src.open("rb") as fh, atomic_write(path) as out:
                copy_stream(fh, out, progress)
            return
        from boto3.s3.transfer import TransferConfig

        loc = parse_uri(uri)
        # upload_file switches to multipart above 8 MiB; a multipart object appears only on completion.
        with self._s3_errors(uri):
            self._s3().upload_file(
                str(src), loc.bucket, loc.key, Callback=progress, Config=TransferConfig(multipart_threshold=8 << 20)
            )

    def delete(self, uri: str) -> None:
        path = self.local_path(uri)
        if path is not None:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            return
        loc = parse_uri(uri)
        with self._s3_errors(uri):
            self._s3().delete_object(Bucket=loc.bucket, Key=loc.key)

    def ensure_bucket(self, bucket: str) -> None:
        parse_uri(f"s3://{bucket}/")
        if not self.remote:
            (self.settings.buckets_dir / bucket).mkdir(parents=True, exist_ok=True)
            return
        s3 = self._s3()
        with self._s3_errors(f"s3://{bucket}/"):
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
