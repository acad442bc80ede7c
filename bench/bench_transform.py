"""Batch transform throughput on the 10,000 Fashion-MNIST test images, beside two references, in one run.

(a) Tailor's transform job: ``CreateTransformJob`` over ``s3://bench/fm-test/<class>/<n>.png`` (local bucket),
    MultiRecord, one instance, through a real ``tailor server`` on loopback (the same server as (b)); images/s
    from TransformStartTime to TransformEndTime (listing, worker start, decoding, batching, writing 10,000
    ``.out`` files atomically) and create -> Completed as the client sees it.
(b) the same model behind an endpoint, invoked one request at a time by a client (``POST
    /endpoints/<name>/invocations`` with a bearer token, PNG bodies), ``--sequential`` images (default 2,000).
(c) raw ONNX Runtime at batch 64 (2 threads) on the already decoded images: the ceiling, no decoding or I/O;
    measured before and after the job, the ratio taken against their mean (the load moves within a minute).
Model: the serving bench's ResNet-20 (1x28x28, 10 classes, random weights: speed does not depend on them).

Quiet machine, after grouping the writes (nothing else running; two runs):
  load 1.10 before, 1.50 after: (a) 10,000 images in 10.72 s = 933 img/s (create -> Completed 911); (b) 173
  img/s; (c) 2,196 before, 1,964 after (mean 2,080); transform / sequential endpoint 5.4x, / raw ORT 0.45x.
  load 0.99 before, 1.59 after (``--sequential 500``): (a) 12.05 s = 830 img/s; (b) 186 img/s; (c) 1,858 /
  1,672 (mean 1,765); 4.5x and 0.47x. CPU per image: server (listing, reads, routing, .out writes) 0.51 ms,
  model worker (decode, batching, ONNX Runtime) 1.58 ms, raw ONNX Runtime 1.08 ms (2 busy threads): 2.1 ms of
  CPU per image on 2 cores bounds the job near 960 img/s. In the worker, Pillow's PNG open + load of a 28x28
  image is ~75-100 us (its Python layers; the zlib decode itself ~8 us), JSON Lines parsing ~10 us and the
  answer's formatting ~20 us per image. The model runs full batches of 64 throughout.
  Against the quiet run before the change (513 img/s, 0.30x, 3.6x): 1.8x the images per second.

Measured after grouping the writes (``python -m bench transform`` on the 2-core VM shared with other engineers;
one run, load average 5.82 before, 3.36 after):
  (a) transform job, MultiRecord, 1 instance:   10,000 images in 14.66 s = 682 img/s (create -> Completed 675)
  (b) endpoint, one request at a time (2,000):                               212 img/s
  (c) raw ONNX Runtime batch 64, 2 threads:      1,820 before, 1,601 after (mean 1,710) img/s
  transform / sequential endpoint: 3.2x; transform / raw ONNX batch 64: 0.40x.
Two earlier runs of the same code, with (c) measured only before the job, at load 3.6-5.0: 423 img/s (0.23x of
an ORT figure taken in a quiet minute, 1,818) and 369 img/s (0.42x of 882): single-sided ratios swing with the
load, hence (c) on both sides now.

Where the time goes (2,000-4,000-image jobs in-process, cProfile / py-spy and CPU times, load 3.5-7):
- Creating the 10,000 ``.out`` files is the largest cost after the model: ~0.35-1.3 ms of kernel CPU per file on
  this VM's ext4 (an ``open(O_CREAT)`` alone: ~1.1 ms), as much as ONNX Runtime spends per image (~1.2 ms of CPU
  on 2 threads). The same 4,000-image job with the writes replaced by a no-op ran at 682 img/s against 287 with
  them (server process CPU 0.6 s against 6.5 s). Without fsync it was no faster (sys time is the creation,
  not the sync), so every ``.out`` stays fsynced before its rename.
- Before the change the server process also spent 0.9-1.3 ms of user CPU per image (job start and the client's
  polling included): one thread hop and
  ``atomic_write`` per file on 8 threads, ``Path.resolve`` of every input and output path (~150-190 us each),
  ``rglob`` listing; and an invocation held its concurrency slot until its files were fsynced, so the worker
  waited. Now: one ``Storage.write_many`` per invocation on a writer thread, off the slot (files written,
  fsynced, then renamed: each atomic); inputs read by ``Storage.read_many`` a group ahead (a folder resolved
  once); ``os.walk`` listing. Server user CPU for 4,000 images: 3.4-5.0 s before, 1.1-1.6 s after.
  Wall time, old and new code alternated: 2,000 images 172 / 224 img/s before, 280 / 333 after (load 5-6);
  4,000 images 342 / 248 before, 339 / 244 after (load 5-7): where others' load takes the cores, the kernel's
  file creation and the model still share what is left.
- The worker (decode ~0.1-0.15 ms per 28x28 PNG, ONNX Runtime, JSON framing) runs at 1,370-1,580 img/s
  in-process at load ~4.5 with 4 invocations of 64 in flight (0.65-0.87x raw ORT in the same minute), so it
  is not the limit: on 2 cores the job is CPU-bound, the model and the file creation sharing them.

Before the change, one run while other engineers' installs and test suites ran (load average 13.9 before, 19.1
after; raw ONNX Runtime ~3,500 img/s on a quiet machine, docs/MEASURED.md):
  (a) 10,000 images in 111.4 s = 90 img/s (create -> Completed 86); (b) 30 img/s; (c) 132 img/s;
  3.0x and 0.68x.
Before the change, quiet machine (load average 1.34 before, 1.88 after), same run: transform job 10,000 images in
19.51 s = 513 img/s; the endpoint one request at a time 144 img/s (3.6x); raw ONNX Runtime batch 64 on 2 threads
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
        onnx_before = raw_onnx(model_dir, images)
        print(f"(c) raw ONNX Runtime batch 64, 2 threads, before the job: {onnx_before:,.0f} img/s", flush=True)

        key, _ = init_admin(settings)
        os.environ["TAILOR_ACCESS_KEY_ID"] = key.info.access_key_id
        os.environ["TAILOR_SECRET_ACCESS_KEY"] = key.secret_access_key
        url, server = serve(settings)
        try:
            with Client(url=url, settings=settings) as client:
                client.create_model(ModelName="rn20", PrimaryContainer={"ModelDataUrl": "s3://bench/model.tar.gz"})
                t0, cpu0 = time.perf_counter(), cpu_split()
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
                server_cpu, worker_cpu = (b - a for a, b in zip(cpu0, cpu_split(), strict=True))
                assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
                run_s = (desc["TransformEndTime"] - desc["TransformStartTime"]).total_seconds()
                done = desc["TransformProgress"]["RecordsDone"]
                batch = done / run_s
                print(f"(a) transform job: {done:,} images in {run_s:.2f} s = {batch:,.0f} img/s "
                      f"(create -> Completed {wall:.2f} s = {done / wall:,.0f} img/s)", flush=True)  # fmt: skip
                ms = 1e3 / done
                print(f"    CPU per image: server (listing, reads, routing, .out writes) {server_cpu * ms:.2f} ms, "
                      f"model worker (decode, batching, ONNX Runtime) {worker_cpu * ms:.2f} ms; raw ONNX Runtime "
                      f"{2e3 / onnx_before:.2f} ms (2 busy threads)", flush=True)  # fmt: skip
                seq = sequential(client, url, settings, pngs[: args.sequential])
                print(f"(b) endpoint, one request at a time: {seq:,.0f} img/s", flush=True)
        finally:
            server.should_exit = True  # type: ignore[attr-defined]
            time.sleep(1)
        # (c) again after the job: on a shared machine the load moves within a minute, so the job is compared
        # with the mean of the ceilings measured on either side of it
        onnx_after = raw_onnx(model_dir, images)
        onnx = (onnx_before + onnx_after) / 2
        print(f"(c) raw ONNX Runtime batch 64, 2 threads, after: {onnx_after:,.0f} img/s (mean {onnx:,.0f})")
        print(
            f"transform / sequential endpoint: {batch / seq:.1f}x; transform / raw ONNX batch 64: {batch / onnx:.2f}x"
        )
        print(f"load average after: {loadavg()}")


def cpu_split() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, which runs the server and the transform runner, and of its
    children (the model worker: those it reaped, and those still running)."""
    import psutil

    own = os.times()
    live = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            live += t.user + t.system
        except psutil.Error:
            continue
    return own.user + own.system, own.children_user + own.children_system + live


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
