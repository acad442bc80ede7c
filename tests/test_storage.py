"""Storage behind URIs: local paths, local buckets, and a real S3-compatible server on loopback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tailor.errors import NotFoundError, StorageError, ValidationError
from tailor.localfiles import atomic_write
from tailor.settings import Settings
from tailor.storage import Storage, check_remote_uri, check_remote_uris, parse_uri


def test_parse_uri_forms() -> None:
    assert parse_uri("s3://my-bucket/a/b.rec").key == "a/b.rec"
    assert parse_uri("file:///tmp/x%20y").key == "/tmp/x y"
    assert parse_uri("relative/path").scheme == "file"


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/../other/key", "s3://bucket/a/%2e%2e/b", "s3://Bad_Bucket/key", "s3://ab/key", "ftp://h/x"],
)
def test_parse_uri_refuses_escapes_and_bad_names(uri: str) -> None:
    with pytest.raises(ValidationError):
        parse_uri(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "/home/x/.tailor/auth",
        "file:///etc/passwd",
        "../../auth",
        "s3://data/%2e%2e/x",
        "s3://data/./x",
        "s3://data//abs",
        "s3://data/a\\b",
        "s3://data/a\x00b",
        "S3://data/x",
        "",
        None,
    ],
)
def test_remote_callers_name_objects_in_buckets_only(uri: object) -> None:
    with pytest.raises(ValidationError, match="Body.S3Uri"):
        check_remote_uri(uri, "Body.S3Uri")


def test_remote_uri_members_are_found_at_any_depth_but_not_in_free_form_maps() -> None:
    assert check_remote_uri("s3://data/train/a.rec", "S3Uri") == "s3://data/train/a.rec"
    body = {"A": [{"B": {"ModelDataUrl": "s3://models/model.tar.gz"}}], "CheckpointConfig": {"S3Uri": "s3://ckpt/k"}}
    check_remote_uris(body)
    # The caller's own names in HyperParameters / Environment are not members.
    check_remote_uris({"HyperParameters": {"S3Uri": "anything"}, "Environment": {"S3OutputPath": "/x"}})
    with pytest.raises(ValidationError, match=r"A\[0\]\.B\.ModelDataUrl"):
        check_remote_uris({"A": [{"B": {"ModelDataUrl": "/etc/passwd"}}]})


def test_local_bucket_round_trip(settings: Settings, tmp_path: Path) -> None:
    storage = Storage(settings)
    src = tmp_path / "train.rec"
    src.write_bytes(b"x" * 3_000_000)
    seen: list[int] = []
    storage.upload_file(src, "s3://data/fmnist/train.rec", progress=seen.append)
    assert sum(seen) == 3_000_000
    assert (settings.buckets_dir / "data" / "fmnist" / "train.rec").read_bytes() == src.read_bytes()
    storage.write_bytes("s3://data/fmnist/val.rec", b"val")
    listed = storage.list("s3://data/fmnist")
    assert [o.key for o in listed] == ["fmnist/train.rec", "fmnist/val.rec"]
    assert [o.size for o in listed] == [3_000_000, 3]
    out = storage.download_file("s3://data/fmnist/val.rec", tmp_path / "dl" / "val.rec")
    assert out.read_bytes() == b"val"
    storage.delete("s3://data/fmnist/val.rec")
    assert not storage.exists("s3://data/fmnist/val.rec")
    with pytest.raises(NotFoundError):
        storage.read_bytes("s3://data/fmnist/val.rec")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.rec"
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write(b"partial")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_write_many_writes_each_object_whole_or_not_at_all(settings: Settings, tmp_path: Path) -> None:
    storage = Storage(settings)
    root = settings.buckets_dir / "out"
    storage.write_many([(f"s3://out/a/{i}.out", f"line {i}\n".encode()) for i in range(5)])
    assert [p.read_text() for p in sorted((root / "a").iterdir())] == [f"line {i}\n" for i in range(5)]
    assert {p.stat().st_mode & 0o777 for p in (root / "a").iterdir()} == {(root / "a" / "0.out").stat().st_mode & 0o777}
    (root / "b" / "2.out").mkdir(parents=True)  # a directory where the third file goes: its rename fails
    (root / "b" / "2.out" / "keep").write_text("x")
    with pytest.raises(StorageError, match="2.out"):
        storage.write_many([(f"s3://out/b/{i}.out", b"new\n") for i in range(4)])
    # the files renamed before the failure are whole, the rest absent, and no temp file is left
    assert sorted(p.name for p in (root / "b").iterdir()) == ["0.out", "1.out", "2.out"]
    assert (root / "b" / "1.out").read_bytes() == b"new\n"
    (root / "c").write_text("a file where a folder should be")
    with pytest.raises(StorageError):
        storage.write_many([("s3://out/d/0.out", b"x"), ("s3://out/c/1.out", b"y")])
    assert not (root / "d" / "0.out").exists()  # nothing is renamed before every file is written and synced
    assert not [p for p in root.rglob(".tailor-tmp-*")]
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "e").symlink_to(outside)  # a folder link out of the bucket: refused, nothing written there
    with pytest.raises(ValidationError, match="escapes its bucket"):
        storage.write_many([("s3://out/e/0.out", b"x")])
    assert list(outside.iterdir()) == []


def test_read_many_reads_as_read_bytes_does_and_keeps_its_checks(settings: Settings, tmp_path: Path) -> None:
    storage = Storage(settings)
    bucket = settings.buckets_dir / "inputs"
    (bucket / "a").mkdir(parents=True)
    for i in range(3):
        (bucket / "a" / f"{i}.png").write_bytes(bytes([i]) * (i + 1))
    (bucket / "top.png").write_bytes(b"top")
    (bucket / "a" / "link.png").symlink_to(bucket / "top.png")  # a link inside the bucket: followed
    uris = [f"s3://inputs/a/{i}.png" for i in range(3)] + ["s3://inputs/top.png", "s3://inputs/a/link.png"]
    assert (
        storage.read_many(uris) == [storage.read_bytes(u) for u in uris] == [b"\0", b"\1\1", b"\2\2\2", b"top", b"top"]
    )
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    (bucket / "a" / "out.png").symlink_to(secret)  # a file link out of the bucket
    (bucket / "b").symlink_to(tmp_path)  # a folder link out of the bucket
    for uri in ("s3://inputs/a/out.png", "s3://inputs/b/secret"):
        with pytest.raises(ValidationError, match="escapes its bucket"):
            storage.read_many(["s3://inputs/a/0.png", uri])
    with pytest.raises(NotFoundError):
        storage.read_many(["s3://inputs/a/missing.png"])
    with pytest.raises(NotFoundError):
        storage.read_many(["s3://inputs/a"])  # a folder is no object


def test_write_into_unwritable_place_is_a_storage_error(settings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError):
        Storage(settings).write_bytes(str(blocker / "child"), b"x")


@pytest.mark.slow
def test_s3_server_round_trip(s3_settings: Settings, tmp_path: Path) -> None:
    storage = Storage(s3_settings)
    bucket = f"tailor-{uuid.uuid4().hex[:8]}"
    storage.ensure_bucket(bucket)
    # 9 MiB crosses the 8 MiB multipart threshold, so the multipart path is exercised too.
    big = tmp_path / "big.rec"
    big.write_bytes(bytes(range(256)) * (9 * 4096))
    storage.upload_file(big, f"s3://{bucket}/data/big.rec")
    storage.write_bytes(f"s3://{bucket}/data/small.lst", b"0\t1\ta.jpg\n")
    assert [o.key for o in storage.list(f"s3://{bucket}/data/")] == ["data/big.rec", "data/small.lst"]
    assert storage.size(f"s3://{bucket}/data/big.rec") == big.stat().st_size
    dl = storage.download_file(f"s3://{bucket}/data/big.rec", tmp_path / "back.rec")
    assert dl.read_bytes() == big.read_bytes()
    assert storage.local_path(f"s3://{bucket}/data/big.rec") is None
    outs = [(f"s3://{bucket}/preds/{i}.out", f"{i}\n".encode()) for i in range(12)]
    storage.write_many(outs)  # PUTs, several at once
    assert storage.read_many([uri for uri, _ in outs]) == [data for _, data in outs]
    with pytest.raises(NotFoundError):
        storage.read_bytes(f"s3://{bucket}/missing")
    _check_read_range(storage, f"s3://{bucket}/data/big.rec", big.read_bytes())
    with pytest.raises(NotFoundError):
        storage.read_range(f"s3://{bucket}/missing", 0, 10)


def test_read_range_in_a_local_bucket(settings: Settings) -> None:
    storage = Storage(settings)
    data = bytes(range(256)) * 40
    storage.write_bytes("s3://data/logs/training.log", data)
    _check_read_range(storage, "s3://data/logs/training.log", data)


def _check_read_range(storage: Storage, uri: str, data: bytes) -> None:
    """A middle slice, a slice cut by the end, from exactly the end, past it, and an empty length."""
    n = len(data)
    assert storage.read_range(uri, 1000, 300) == data[1000:1300]
    assert storage.read_range(uri, n - 5, 100) == data[n - 5 :]
    assert storage.read_range(uri, n, 10) == b""
    assert storage.read_range(uri, n + 50, 10) == b""
    assert storage.read_range(uri, 7, 0) == b""


def test_unreachable_s3_server_is_a_storage_error(settings: Settings) -> None:
    from tests.conftest import free_port

    bad = settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(StorageError):
        Storage(bad).read_bytes("s3://bucket/key")
