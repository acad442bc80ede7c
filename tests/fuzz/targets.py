"""Fuzz targets: every parser that takes outside bytes, each fed through its real entry point.

A :class:`Target` pairs a strategy (valid samples mutated, raw bytes, structure-aware cases) with a function
that feeds one input to the parser, and names the errors the parser documents. The property, for every target:
the parser returns a valid result or raises one of those errors (the ``tailor.errors`` hierarchy) - never
IndexError, struct.error, UnicodeDecodeError, RecursionError, MemoryError, a bare 5xx or a hang.

``tests/fuzz`` runs each target briefly in ``make test``; ``python -m bench fuzz`` runs them for 100,000+ cases.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tailor.errors import AuthError, TailorError, ValidationError
from tests.fuzz.strategies import (
    fuzz_bytes,
    image_bytes,
    images,
    json_bytes,
    json_values,
    mutated,
    nesting_bombs,
    sample_images,
    text_lines,
)


class PropertyViolation(AssertionError):
    """The parser did not raise, but its answer breaks the property (a 5xx, a malformed result)."""


@dataclass(frozen=True)
class Target:
    name: str
    what: str  # the parser and entry point, for people reading the bench's table
    build: Callable[[], st.SearchStrategy[Any]]
    run: Callable[[Any], object]
    allowed: tuple[type[BaseException], ...]

    @property
    def strategy(self) -> st.SearchStrategy[Any]:
        return _strategy(self.name)

    def check(self, value: Any) -> None:
        """Feed one input; a documented error is a pass, anything else propagates."""
        with contextlib.suppress(*self.allowed):
            self.run(value)


@cache
def _strategy(name: str) -> st.SearchStrategy[Any]:
    return BY_NAME[name].build()


# -- scratch files (one directory per process, overwritten case after case) --------------------------------
_scratch: Path | None = None
_scratch_lock = threading.Lock()


def scratch(*parts: str) -> Path:
    global _scratch
    with _scratch_lock:
        if _scratch is None:
            _scratch = Path(tempfile.mkdtemp(prefix="tailor-fuzz-"))
            atexit.register(shutil.rmtree, _scratch, True)
    path = _scratch.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@cache
def _jpeg() -> bytes:
    return image_bytes("JPEG", (10, 10), "L", 11)


@cache
def _png() -> bytes:
    return image_bytes("PNG", (10, 10), "L", 12)


# -- RecordIO (.rec) ----------------------------------------------------------------------------------------
@cache
def recordio_samples() -> list[bytes]:
    from tailor.data.recordio import MAGIC, IRHeader, encode_record, pack

    magic = MAGIC.to_bytes(4, "little")
    single = [pack(IRHeader(0, float(i % 3), i, 0), (_jpeg(), _png())[i % 2]) for i in range(3)]
    multi = [pack(IRHeader(0, np.array([1.0, 0.0, float(i)]), i, 0), _jpeg()) for i in range(2)]
    # A payload holding the magic word at an aligned offset is written as several parts.
    split = [pack(IRHeader(0, 1.0, 9, 0), magic * 2 + _jpeg()), pack(IRHeader(0, 0.0, 10, 0), _png())]
    return [b"".join(map(encode_record, recs)) for recs in (single[:1], single, multi, split)]


def run_recordio(data: bytes) -> None:
    from tailor.data.recordio import RecordReader, unpack

    path = scratch("rec", "x.rec")
    path.write_bytes(data)
    reader = RecordReader(path, idx_path=os.devnull)
    try:
        for _, record in reader.iter_with_offsets():
            unpack(record)
        offsets = reader.offsets()
        spans = reader.spans()
        if spans[0] != offsets:
            raise PropertyViolation(f"spans() offsets {spans[0]} differ from offsets() {offsets}")
    finally:
        reader.close()


def run_recordio_channel(data: bytes) -> None:
    """The training loader's path over a .rec: header scan, labels from IRHeaders, image decoding."""
    from tailor.data.loader import load_channel

    path = scratch("rec-channel", "train.rec")
    path.write_bytes(data)
    out = load_channel(path.parent, "application/x-recordio", channels=1, size=(8, 8))
    if out.images.shape[1:] != (1, 8, 8) or len(out.labels) != len(out):
        raise PropertyViolation(f"loader returned images {out.images.shape} and labels {out.labels.shape}")


# -- RecordIO index (.idx) ----------------------------------------------------------------------------------
def idx_index_samples() -> list[bytes]:
    from tailor.data.recordio import RecordReader

    rec = scratch("idx-index", "x.rec")
    if not rec.exists():
        rec.write_bytes(recordio_samples()[1])
    with RecordReader(rec, idx_path=os.devnull) as r:
        offsets = r.offsets()
    return ["".join(f"{k}\t{off}\n" for k, off in enumerate(offsets)).encode(), b"0\t0\n", b"a\t0\n"]


def build_idx_index() -> st.SearchStrategy[bytes]:
    return fuzz_bytes(idx_index_samples()) | text_lines()


def run_idx_index(data: bytes) -> None:
    from tailor.data.recordio import RecordReader, unpack

    rec = scratch("idx-index", "x.rec")
    if not rec.exists():
        idx_index_samples()
    idx = scratch("idx-index", "x.idx")
    idx.write_bytes(data)
    with RecordReader(rec, idx) as reader:
        for key in reader.keys:
            unpack(reader.read_idx(key))


# -- IDX (MNIST) --------------------------------------------------------------------------------------------
@cache
def idx_samples() -> list[bytes]:
    from tailor.data.idx import write_idx

    arrays = [
        np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3),
        np.arange(4, dtype=np.uint8),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.linspace(0, 1, 4, dtype=">f8"),
        np.arange(6, dtype=np.int8).reshape(3, 2),
    ]
    out = []
    for i, arr in enumerate(arrays):
        path = scratch("idx-samples", f"{i}.idx")
        write_idx(path, arr)
        out.append(path.read_bytes())
    return out


def build_idx() -> st.SearchStrategy[bytes]:
    samples = idx_samples()
    # The reader sniffs gzip: mutate inside the compressed stream and in the data it carries.
    gz = mutated(st.sampled_from(samples)).map(gzip.compress)
    return fuzz_bytes(samples) | gz | mutated(gz)


def run_idx(data: bytes) -> None:
    from tailor.data.idx import read_idx

    path = scratch("idx", "x-ubyte")
    path.write_bytes(data)
    read_idx(path)


# -- image lists (.lst) -------------------------------------------------------------------------------------
def _image_channel(sub: str) -> Path:
    d = scratch(sub, "images", "a", "x")
    d.parent.joinpath("0.png").write_bytes(_png())
    d.parent.joinpath("1.jpg").write_bytes(_jpeg())
    d.parent.parent.joinpath("b").mkdir(exist_ok=True)
    d.parent.parent.joinpath("b", "2.png").write_bytes(_png())
    return d.parent.parent


@cache
def lst_samples() -> list[bytes]:
    return [
        b"0\t0.000000\ta/0.png\n1\t0.000000\ta/1.jpg\n2\t1.000000\tb/2.png\n",
        b"0\t1\t0\ta/0.png\n1\t0\t1\tb/2.png\n",  # multi-label
        b"5\t3\t../b/2.png\n",
    ]


def build_lst() -> st.SearchStrategy[bytes]:
    return fuzz_bytes(lst_samples()) | text_lines(st.sampled_from("0123456789.-eEinfa/b\t\\ "))


def run_lst(data: bytes) -> None:
    """``read_lst`` and the image loader that uses it (paths stay in the root, labels become class names)."""
    from tailor.data.loader import load_channel

    root = _image_channel("lst")
    lst_dir = scratch("lst", "lists", "x").parent
    (lst_dir / "train.lst").write_bytes(data)
    load_channel(root, "application/x-image", channels=1, size=(8, 8), lst_dir=lst_dir)


# -- augmented manifests ------------------------------------------------------------------------------------
@cache
def manifest_samples() -> list[bytes]:
    lines = [
        {"source-ref": "a/0.png", "class": 0, "class-metadata": {"class-name": "zero"}},
        {"source-ref": "a/1.jpg", "class": "1", "class-metadata": {"class-name": "one"}},
        {"source-ref": "b/2.png", "class": 1.0},
    ]
    multi = [{"source-ref": "a/0.png", "labels": [1, 0, 1]}, {"source-ref": "b/2.png", "labels": "[0, 1, 1]"}]
    s3 = [{"source-ref": "s3://bucket/a.png", "class": 0}]
    return ["\n".join(json.dumps(x) for x in group).encode() + b"\n" for group in (lines, multi, s3)]


def build_manifest() -> st.SearchStrategy[tuple[bytes, list[str] | None]]:
    keys = st.sampled_from(["source-ref", "class", "class-metadata", "labels", "x"]) | st.text(max_size=8)
    line = st.dictionaries(keys, json_values, max_size=4).map(json_bytes)
    structured = st.lists(line, max_size=4).map(b"\n".join)
    body = fuzz_bytes(manifest_samples()) | structured | nesting_bombs
    attrs = st.none() | st.just(["source-ref", "class"]) | st.lists(st.text(max_size=8), max_size=3)
    return st.tuples(body, attrs)


def run_manifest(case: tuple[bytes, list[str] | None]) -> None:
    from tailor.data.loader import load_channel

    body, attrs = case
    root = _image_channel("manifest")
    (root / "train.manifest").write_bytes(body)
    load_channel(root, "application/jsonlines", channels=1, size=(8, 8), attribute_names=attrs)


# -- model artifacts (model.tar.gz, unpacked by safe_extract) -----------------------------------------------
@cache
def artifact_samples() -> list[bytes]:
    """Uncompressed tars: a valid artifact, one with a directory, one with a link (which must be refused)."""
    meta = json.dumps({"format_version": 1, "image_shape": [1, 28, 28], "num_classes": 10}).encode()

    def tar(members: list[tuple[str, bytes | None, bytes]]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
            for name, kind, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                if kind is not None:
                    info.type = kind
                    info.size = 0
                    info.linkname = data.decode() if kind == tarfile.SYMTYPE else ""
                t.addfile(info, io.BytesIO(data) if kind is None else None)
        return buf.getvalue()

    return [
        tar([("model.json", None, meta), ("weights.safetensors", None, b"\0" * 64)]),
        tar([("sub", tarfile.DIRTYPE, b""), ("sub/model.onnx", None, b"x" * 10), ("model.json", None, meta)]),
        tar([("model.json", None, meta), ("link", tarfile.SYMTYPE, b"../../etc/passwd")]),
    ]


def build_artifact() -> st.SearchStrategy[bytes]:
    tars = fuzz_bytes(artifact_samples(), raw_max=2048)
    gz = tars.map(lambda b: gzip.compress(b, compresslevel=1))
    return gz | gz | tars | mutated(gz)


def run_artifact(data: bytes) -> None:
    from tailor.artifact import read_model_json, safe_extract

    path = scratch("artifact", "model.tar.gz")
    path.write_bytes(data)
    dest = scratch("artifact", "out", "x").parent
    shutil.rmtree(dest, ignore_errors=True)
    written = safe_extract(path, dest)
    for p in written:
        if not p.resolve().is_relative_to(dest.resolve()):
            raise PropertyViolation(f"safe_extract wrote {p} outside {dest}")
    read_model_json(path)
    read_model_json(dest)


# -- invocation bodies: images and JSON Lines ---------------------------------------------------------------
IMAGE_TYPES = ["image/png", "image/jpeg", "application/x-image", "image/png; charset=binary"]


def build_image() -> st.SearchStrategy[tuple[str, bytes, tuple[int, int, int]]]:
    return st.tuples(st.sampled_from(IMAGE_TYPES), images(), st.sampled_from([(1, 28, 28), (3, 16, 16)]))


def run_image(case: tuple[str, bytes, tuple[int, int, int]]) -> None:
    from tailor.serving.preprocess import decode_body

    ctype, body, shape = case
    arr, batch = decode_body(ctype, body, shape)
    if arr.shape != (1, *shape) or arr.dtype != np.uint8 or batch:
        raise PropertyViolation(f"decode_body returned {arr.shape} {arr.dtype} batch={batch}")


@cache
def jsonlines_samples() -> list[bytes]:
    data = np.arange(16, dtype=np.uint8).reshape(1, 4, 4).tolist()
    b64 = [base64.b64encode(img).decode() for img in sample_images()[:5]]
    lines = [json.dumps({"b64": b}) for b in b64] + [json.dumps({"data": data})]
    return ["\n".join(lines[i : i + 2]).encode() for i in range(0, len(lines), 2)] + [lines[-1].encode()]


def build_jsonlines() -> st.SearchStrategy[tuple[bytes, tuple[int, int, int]]]:
    keys = st.sampled_from(["b64", "data"]) | st.text(max_size=4)
    b64_images = images().map(lambda b: base64.b64encode(b).decode())
    value = json_values | b64_images | st.lists(st.lists(st.lists(st.integers(-1, 300), max_size=5), max_size=5))
    line = st.dictionaries(keys, value, max_size=2).map(json_bytes)
    structured = st.lists(line | json_values.map(json_bytes), min_size=1, max_size=3).map(b"\n".join)
    body = fuzz_bytes(jsonlines_samples(), raw_max=256) | structured | nesting_bombs
    return st.tuples(body, st.sampled_from([(1, 4, 4), (3, 4, 4)]))


def run_jsonlines(case: tuple[bytes, tuple[int, int, int]]) -> None:
    from tailor.serving.preprocess import decode_body

    body, shape = case
    with np.errstate(all="raise"):  # a NaN pixel cast to uint8 is garbage, not an image: make it fail loudly
        arr, batch = decode_body("application/jsonlines", body, shape)
    if arr.ndim != 4 or arr.shape[1:] != shape or arr.dtype != np.uint8 or not batch:
        raise PropertyViolation(f"decode_body returned {arr.shape} {arr.dtype} batch={batch}")


# -- SigV4 Authorization headers ----------------------------------------------------------------------------
SIGV4_KEY = "AKIAFUZZFUZZFUZZFUZZ"
SIGV4_SECRET = "fuzz-secret-fuzz-secret-fuzz-secret-0000"
SIGV4_NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@cache
def sigv4_sample() -> dict[str, str]:
    from tailor.auth.sigv4 import sign

    return sign(
        method="POST",
        url="http://127.0.0.1:8023/",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.ListModels"},
        body=b"{}",
        access_key_id=SIGV4_KEY,
        secret=SIGV4_SECRET,
        region="us-east-1",
        now=SIGV4_NOW,
    )


def _latin1(data: bytes) -> str:
    return data.decode("latin-1")  # what the ASGI server hands over for header bytes


def build_sigv4() -> st.SearchStrategy[dict[str, Any]]:
    headers = sigv4_sample()
    fields = {k: st.just(v.encode()) for k, v in headers.items()}
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "Host"):
        fields[name] = st.one_of(st.just(headers[name].encode()), mutated(st.just(headers[name].encode())))
    extra = st.dictionaries(
        st.sampled_from(["Date", "X-Amz-Security-Token", "x-amz-date", "authorization", "X-Amz-Target"]),
        st.binary(max_size=40) | st.sampled_from([b"Fri, 02 Jan 2026 03:04:05 GMT", b"Mon, 1 Jan 0001 00:00:00 +0100"]),
        max_size=2,
    )
    return st.fixed_dictionaries(
        {
            "headers": st.fixed_dictionaries(fields),
            "extra": extra,
            "path": st.just(b"/") | mutated(st.just(b"/endpoints/x/invocations")),
            "query": st.just(b"") | mutated(st.just(b"a=1&b=%20&c")),
            "body": st.just(b"{}") | mutated(st.just(b"{}")),
            "method": st.sampled_from(["POST", "GET", "post"]),
        }
    )


def run_sigv4(case: dict[str, Any]) -> None:
    from tailor.auth.sigv4 import verify

    headers = [(k.lower(), _latin1(v)) for k, v in case["headers"].items()]
    headers += [(k.lower(), _latin1(v)) for k, v in case["extra"].items()]
    key = verify(
        method=case["method"],
        raw_path=_latin1(case["path"]),
        query_string=_latin1(case["query"]),
        headers=headers,
        body=case["body"],
        secret_of=lambda k: SIGV4_SECRET if k == SIGV4_KEY else None,
        region="us-east-1",
        now=SIGV4_NOW,
    )
    if key != SIGV4_KEY:
        raise PropertyViolation(f"verify accepted the request for {key!r}")


# -- IAM-style policy documents -----------------------------------------------------------------------------
ARN = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/"


@cache
def policy_samples() -> list[bytes]:
    docs = [
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Invoke", "Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint"], "Resource": ARN + "a*"},
                {"Effect": "Deny", "NotAction": "sagemaker:Describe*", "NotResource": [ARN + "a?c"]},
            ],
        },
        {"Version": "2008-10-17", "Id": "x", "Statement": {"Effect": "Deny", "Action": "s*:*", "Resource": "*"}},
    ]
    return [json.dumps(d).encode() for d in docs]


def build_policy() -> st.SearchStrategy[bytes]:
    # Wildcards against long ARNs: a matcher that backtracks ('*a*a*a…') would hang here.
    pattern = st.text(alphabet="*?a:/-", max_size=80) | st.sampled_from(["*a" * 30 + "b", "?" * 200, "*" * 500])
    actions = st.sampled_from(["*", "sagemaker:*", "sagemaker:Invoke*", "tailor:RunCustomCode"])
    statement = st.fixed_dictionaries(
        {
            "Effect": st.sampled_from(["Allow", "Deny"]) | json_values,
            "Action": actions | pattern.map(lambda p: f"sagemaker:{p}") | json_values,
        },
        optional={"Resource": st.lists(pattern, max_size=3) | pattern, "NotResource": pattern, "Sid": json_values},
    )
    doc = st.fixed_dictionaries(
        {"Version": st.sampled_from(["2012-10-17", "2008-10-17"]) | json_values},
        optional={"Statement": st.lists(statement, max_size=3) | statement | json_values, "Id": json_values},
    )
    return fuzz_bytes(policy_samples()) | doc.map(json_bytes) | json_values.map(json_bytes) | nesting_bombs


def run_policy(data: bytes) -> None:
    from tailor.auth.policy import evaluate, parse_policy

    policy = parse_policy(data)
    for action, resource in (
        ("sagemaker:InvokeEndpoint", ARN + "a" * 120),
        ("sagemaker:DescribeEndpoint", ARN + "abc"),
        ("tailor:RunCustomCode", "arn:aws:sagemaker:us-east-1:000000000000:training-job/" + "a-" * 31 + "a"),
    ):
        evaluate([policy], action, resource)


# -- SageMaker JSON requests through the real ASGI app ------------------------------------------------------
class _SageMakerApp:
    """One Tailor app per process (temp home, admin key), driven by Starlette's in-process HTTP client."""

    def __init__(self) -> None:
        from fastapi.testclient import TestClient

        from tailor.api.app import create_app
        from tailor.auth.keys import init_admin
        from tailor.settings import load_settings

        home = scratch("sagemaker-home", "x").parent
        self.settings = load_settings(home=str(home)).ensure_dirs()
        new, _ = init_admin(self.settings)
        self.key, self.secret = new.info.access_key_id, new.secret_access_key
        self.client = TestClient(create_app(self.settings), base_url="http://127.0.0.1:8023")
        self.client.__enter__()
        atexit.register(self.close)

    def close(self) -> None:
        self.client.__exit__(None, None, None)

    def post(self, target: str, body: bytes) -> Any:
        from tailor.auth.sigv4 import sign

        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
        signed = sign(
            method="POST",
            url="http://127.0.0.1:8023/",
            headers=headers,
            body=body,
            access_key_id=self.key,
            secret=self.secret,
            region=self.settings.region,
        )
        # Header bytes as a client puts them on the wire (the server reads them as latin-1).
        return self.client.post("/", content=body, headers={k: v.encode("latin-1") for k, v in signed.items()})


_app_lock = threading.Lock()


@cache
def sagemaker_app() -> _SageMakerApp:
    with _app_lock:
        return _SageMakerApp()


@cache
def sagemaker_samples() -> list[tuple[str, bytes]]:
    """One valid request per operation (in an empty home every Create* fails validation: no data, no model)."""
    job = {
        "TrainingJobName": "fuzz-job",
        "AlgorithmSpecification": {"TrainingImage": "image-classification", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::000000000000:role/x",
        "HyperParameters": {"num_classes": "10", "num_training_samples": "100", "epochs": "1"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://fuzz/train/"}},
                "ContentType": "application/x-recordio",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://fuzz/out/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    model = {"ModelName": "m", "PrimaryContainer": {"Image": "x", "ModelDataUrl": "s3://fuzz/model.tar.gz"}}
    config = {"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "v", "ModelName": "m"}]}
    return [
        ("CreateTrainingJob", json.dumps(job).encode()),
        ("DescribeTrainingJob", b'{"TrainingJobName": "fuzz-job"}'),
        ("ListTrainingJobs", b'{"MaxResults": 5, "SortBy": "CreationTime", "NameContains": "f"}'),
        ("StopTrainingJob", b'{"TrainingJobName": "fuzz-job"}'),
        ("CreateModel", json.dumps(model).encode()),
        ("ListModels", b"{}"),
        ("CreateEndpointConfig", json.dumps(config).encode()),
        ("CreateEndpoint", b'{"EndpointName": "e", "EndpointConfigName": "c"}'),
        ("UpdateEndpoint", b'{"EndpointName": "e", "EndpointConfigName": "c"}'),
        ("DescribeEndpoint", b'{"EndpointName": "e"}'),
        ("DeleteEndpoint", b'{"EndpointName": "e"}'),
        ("ListEndpoints", b'{"NextToken": "abc"}'),
    ]


def build_sagemaker() -> st.SearchStrategy[tuple[str, bytes]]:
    samples = sagemaker_samples()
    ops = [op for op, _ in samples]
    mutated_case = st.sampled_from(samples).flatmap(lambda s: st.tuples(st.just(s[0]), mutated(st.just(s[1]))))
    other = st.tuples(
        st.sampled_from(ops) | st.text(max_size=20),
        json_values.map(json_bytes) | nesting_bombs | st.binary(max_size=64),
    )
    return mutated_case | mutated_case | st.sampled_from(samples) | other


def run_sagemaker(case: tuple[str, bytes]) -> None:
    op, body = case
    target = op if op.startswith("SageMaker.") else f"SageMaker.{op}"
    resp = sagemaker_app().post(target.encode("utf-8", "surrogatepass").decode("latin-1"), body)
    if resp.status_code >= 500:
        raise PropertyViolation(f"{target} answered {resp.status_code}: {resp.text[:200]}")
    if resp.status_code >= 400 and "__type" not in resp.json():
        raise PropertyViolation(f"{target} answered {resp.status_code} without SageMaker's error shape")


# -- the list ------------------------------------------------------------------------------------------------
def _samples_strategy(fn: Callable[[], list[bytes]], raw_max: int = 512) -> Callable[[], st.SearchStrategy[bytes]]:
    return lambda: fuzz_bytes(fn(), raw_max=raw_max)


TARGETS: list[Target] = [
    Target(
        "recordio",
        "RecordReader: iterate, offsets, spans, IRHeader unpack",
        _samples_strategy(recordio_samples),
        run_recordio,
        (ValidationError,),
    ),
    Target(
        "recordio-channel",
        "load_channel(.rec): header scan, labels, JPEG/PNG decoding",
        _samples_strategy(recordio_samples),
        run_recordio_channel,
        (ValidationError,),
    ),
    Target(
        "recordio-idx",
        "RecordReader(.rec, .idx): read_idx, read by key",
        build_idx_index,
        run_idx_index,
        (ValidationError,),
    ),
    Target("idx", "data.idx.read_idx: raw and gzip MNIST IDX", build_idx, run_idx, (ValidationError,)),
    Target("lst", "read_lst + load_channel(images, .lst)", build_lst, run_lst, (ValidationError,)),
    Target("manifest", "load_channel(augmented manifest)", build_manifest, run_manifest, (ValidationError,)),
    Target(
        "artifact", "safe_extract + read_model_json of model.tar.gz", build_artifact, run_artifact, (ValidationError,)
    ),
    Target("image", "serving.preprocess.decode_body: JPEG/PNG bodies", build_image, run_image, (ValidationError,)),
    Target(
        "jsonlines",
        "serving.preprocess.decode_body: JSON Lines bodies",
        build_jsonlines,
        run_jsonlines,
        (ValidationError,),
    ),
    Target("sigv4", "auth.sigv4.verify: Authorization, dates, path, query", build_sigv4, run_sigv4, (AuthError,)),
    Target("policy", "auth.policy.parse_policy + evaluate", build_policy, run_policy, (ValidationError,)),
    Target("sagemaker-json", "POST / (X-Amz-Target) through the ASGI app, signed", build_sagemaker, run_sagemaker, ()),
]
BY_NAME = {t.name: t for t in TARGETS}
assert all(issubclass(e, TailorError) for t in TARGETS for e in t.allowed)
