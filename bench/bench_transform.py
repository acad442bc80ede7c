"""Batch transform throughput on the 10,000 Fashion-MNIST test images, beside two references, in one run.

(a) Tailor's transform job: ``CreateTransformJob`` over ``s3://bench/fm-test/<class>/<n>.png`` (local bucket),
    MultiRecord, one instance, through a real ``tailor server`` on loopback (the same server as (b)); images/s
    from TransformStartTime to TransformEndTime (listing, worker start, decoding, batching, writing 10,000
    ``.out`` files atomically) and create -> Completed as the client sees it.
(b) the same model behind an endpoint, invoked one request at a time by a client (``POST
    /endpoints/<name>/invocations`` with a bearer token, PNG bodies), ``--sequential`` images (default 2,000).
(c) raw ONNX Runtime at batch 64 (2 threads) on the already decoded images: the ceiling, no decoding or I/O.
Model: the serving bench's ResNet-20 (1x28x28, 10 classes, random weights: speed does not depend on them).

Measured (`python -m bench transform`, one run on the 2-core VM while other engineers' installs and test suites
ran: load average 13.9 before, 19.1 after, so every figure is far below a quiet machine's, where raw ONNX
Runtime gives ~3,500 img/s (docs/MEASURED.md); the ratios of the same run are what to read):
  (a) transform job, MultiRecord, 1 instance:   10,000 images in 111.4 s =  90 img/s (create -> Completed 86)
  (b) endpoint, one request at a time (2,000):                                30 img/s
  (c) raw ONNX Runtime batch 64, 2 threads:                                  132 img/s
  transform / sequential endpoint: 3.0x; transform / raw ONNX batch 64: 0.68x (the rest: PNG decoding, base64
  framing, 10,000 atomic .out writes with fsync, progress rows).

Quiet machine (load average 1.34 before, 1.88 after), same run: transform job 10,000 images in 19.51 s =
513 img/s; the endpoint one request at a time 144 img/s (3.6x); raw ONNX Runtime batch 64 on 2 threads
1,716 img/s (0.30x: the job also decodes every PNG, and writes one atomic .out object per image).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import loadavg


def fashion_test_pngs(settings: object, bucket_dir: Path) -> tuple[list[Path], np.ndarray]:
    """The 10,000 test images as class-folder PNGs in the local bucket; returns their paths and the uint8 array."""
    from tailor.data.datasets import SPLIT_FILES, fetch, get_dataset
    from tailor.data.folders import import_idx
    from tailor.data.idx import read_idx

    files = fetch("fashion-mnist", settings)  # type: ignore[arg-type]
    images_gz, labels_gz = SPLIT_FILES["test"]
    import_idx(files[images_gz], files[labels_gz], bucket_dir, get_dataset("fashion-mnist").class_names, fmt="png")

    return sorted(bucket_dir.rglob("*.png")), read_idx(files[images_gz])


def raw_onnx(model_dir: Path, images: np.ndarray, rounds: int = 2) -> float:
    from tailor.serving.loader import load_model

    model = load_model(model_dir, runtime="onnx", threads=2)
    x = np.ascontiguousarray(images[:, None])
    model.predict(x[:64])  # warm-up
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(0, len(x), 64):
            model.predict(x[i : i + 64])
        best = max(best, len(x) / (time.perf_counter() - t0))
    model.close()
    return best


def serve(settings: object) -> tuple[str, object]:
    import socket

    import uvicorn

    from tailor.api.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))  # type: ignore[arg-type]
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="bench transform")
    p.add_argument("--sequential", type=int, default=2000, help="images sent one at a time to the endpoint")
    args = p.parse_args(argv)
    from bench.bench_serving import build_model
    from tailor.auth.keys import init_admin
    from tailor.client import Client
    from tailor.settings import load_settings

    print(f"load average before: {loadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        work = Path(tmp)
        settings = load_settings(home=str(work / "home")).ensure_dirs()
        tar, model_dir = build_model(work)
        pngs, images = fashion_test_pngs(settings, settings.buckets_dir / "bench" / "fm-test")
        (settings.buckets_dir / "bench" / "model.tar.gz").write_bytes(tar.read_bytes())
        print(f"{len(pngs):,} PNGs in the bucket", flush=True)
        onnx = raw_onnx(model_dir, images)
        print(f"(c) raw ONNX Runtime batch 64, 2 threads: {onnx:,.0f} img/s", flush=True)

        key, _ = init_admin(settings)
        os.environ["TAILOR_ACCESS_KEY_ID"] = key.info.access_key_id
        os.environ["TAILOR_SECRET_ACCESS_KEY"] = key.secret_access_key
        url, server = serve(settings)
        try:
            with Client(url=url, settings=settings) as client:
                client.create_model(ModelName="rn20", PrimaryContainer={"ModelDataUrl": "s3://bench/model.tar.gz"})
                t0 = time.perf_counter()
                client.create_transform_job(
                    TransformJobName="bench",
                    ModelName="rn20",
                    TransformInput={
                        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/fm-test/"}},
                        "ContentType": "application/x-image",
                    },  # fmt: skip
                    TransformOutput={"S3OutputPath": "s3://bench/preds/", "Accept": "application/jsonlines"},
                    TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
                )
                desc = client.wait_transform_job("bench", poll=0.2)
                wall = time.perf_counter() - t0
                assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
                run_s = (desc["TransformEndTime"] - desc["TransformStartTime"]).total_seconds()
                done = desc["TransformProgress"]["RecordsDone"]
                batch = done / run_s
                print(f"(a) transform job: {done:,} images in {run_s:.2f} s = {batch:,.0f} img/s "
                      f"(create -> Completed {wall:.2f} s = {done / wall:,.0f} img/s)", flush=True)  # fmt: skip
                seq = sequential(client, url, settings, pngs[: args.sequential])
                print(f"(b) endpoint, one request at a time: {seq:,.0f} img/s", flush=True)
        finally:
            server.should_exit = True  # type: ignore[attr-defined]
            time.sleep(1)
        print(
            f"transform / sequential endpoint: {batch / seq:.1f}x; transform / raw ONNX batch 64: {batch / onnx:.2f}x"
        )
        print(f"load average after: {loadavg()}")


def sequential(client: object, url: str, settings: object, pngs: list[Path]) -> float:
    import httpx

    from tailor.auth.keys import KeyStore

    client.create_endpoint_config(  # type: ignore[attr-defined]
        EndpointConfigName="rn20",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "rn20", "InitialInstanceCount": 1}],
    )
    client.create_endpoint(EndpointName="rn20", EndpointConfigName="rn20")  # type: ignore[attr-defined]
    client.wait_endpoint("rn20", timeout=120)  # type: ignore[attr-defined]
    token = KeyStore(settings).issue_token(os.environ["TAILOR_ACCESS_KEY_ID"])[0]  # type: ignore[arg-type]
    bodies = [p.read_bytes() for p in pngs]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/png"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for body in bodies[:50]:  # warm-up
            http.post("/endpoints/rn20/invocations", content=body).raise_for_status()
        t0 = time.perf_counter()
        for body in bodies:
            http.post("/endpoints/rn20/invocations", content=body).raise_for_status()
        return len(bodies) / (time.perf_counter() - t0)
