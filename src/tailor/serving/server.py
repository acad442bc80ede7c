"""The model server: one process = one SageMaker "instance" serving one model.

HTTP contract (SageMaker containers): ``GET /ping`` (200 once the model is loaded) and ``POST /invocations``.

Requests
- ``application/x-image``, ``image/jpeg``, ``image/png``: one image -> JSON array of probabilities, class order.
- ``application/jsonlines``: one record per line, ``{"b64": "<base64 JPEG/PNG>"}`` or ``{"data": [[[...]]]}``
  (uint8 values shaped as the model's image_shape) -> JSON array of arrays.
- ``Accept: application/jsonlines`` answers one ``{"prediction": [...]}`` line per image.
- Verbose (opt-in): ``Accept: application/json;verbose=1;top_k=3`` or the query ``?verbose=1&top_k=3``. Each
  image then answers ``{"prediction": [...], "top_k": [{"label": "Shirt", "index": 6, "probability": 0.79}]}``
  (top_k defaults to 5; labels come from model.json's class names, or the class index as a string).
Errors (JSON ``{"__type": code, "message": ...}`` and header ``x-amzn-ErrorType``): 400 undecodable image or bad
record, 413 body over 6 MB or images over ``max_pixels`` (read from their headers, before decoding), 415
unsupported content type or Accept, 424 the model failed, 429 queue full, 503 model not loaded / request
deadline passed. Every request is answered: an unexpected exception anywhere in decoding, batching or
formatting becomes a 424 ModelError (its traceback goes to the worker's log), never a silent drop that leaves
the router waiting out its 60 s timeout.

Batching knobs (``tailor serve-model --max-batch-size --max-delay-ms --max-queue --timeout-s``) are documented
in ``tailor.serving.batcher``.

Against raw ONNX Runtime (``python -m bench serving --only tailor``, round two: the worker's own session, thread
count and cached optimised graph at batch 64, re-measured right before each load level). Run at load average
2.5 before / 6.9 after:

    conc   Tailor (auth on)           share of raw ORT batch 64   routed through FastAPI (same run, later)
    1       130 req/s  p50  7.0 p99  24 ms   21 % (632 img/s)        66 req/s  p99   55 ms
    16      336 req/s  p50 45   p99  92 ms   59 % (569 img/s)       142 req/s  p99  251 ms
    64      455 req/s  p50 137  p99 224 ms   70 % (652 img/s)       101 req/s  p99 1350 ms

c=1 beside the ORT batch-1 floor: p50 7.0 vs 1.1 ms, p99 23.5 vs 5.5 ms. A run at load 13-16: 41 / 83 / 83
req/s = 32 / 62 / 74 % (no-auth at c=16: 97 %). Goals c=64 >= 90 % and c=16 >= 1,600 req/s with p99 <= 20 ms:
not met on this shared machine. py-spy on the worker under c=64: ~47 % of its samples in
Session.run, ~24 % in the event loop's own C code (socket reads and writes), ~10 % handing results across the
model thread, PNG decode under 1 %: besides ONNX Runtime the cost is per frame and per thread hop, not per pixel.
What bounds it, round two, timed inside the processes (a throwaway build with perf_counter stamps around
each stage, 3 s windows, quiet machine): the worker's model thread. At c=16 it ran 275 batches of 7.9 images
in 3 s at 10.6 ms each (97 % busy; 1.34 ms per image), at c=64 83 batches of 32 at 35.7 ms (99 %; 1.11 ms per
image): that is raw ONNX Runtime at one thread on this machine (831-1,290 img/s at batch 64 across runs).
Everything else is small beside it: auth and routing before the hop 0.05-0.09 ms, PNG decode 0.13-0.28 ms,
the reply's JSON 0.03-0.06 ms (p50s); the latency a client sees is the wait for the model thread. /proc CPU
at c=16 / 64: worker 104 / 113 % (1.47 / 1.37 ms per request), server 34 % (0.47 / 0.40 ms), machine 145 / 156 %
of 200. A second intra-op thread uses the rest on a quiet machine: c=64 908 / 882 against 808 / 810 req/s, c=16
730 / 672 against 654 / 677 (alternating runs). Round three made every core the default after alternating
endpoints (1 vs 2 threads, auth on, 5 s per level, each row two rounds) under three loads:
    quiet (load 1.6)            c=16 642 / 642  vs 653 / 754    c=64 801 / 844 vs 899 / 927 req/s
    two CPU hogs (load 2.3-3.2)  c=16 400 / 456  vs 483 / 505    c=64 611 / 522 vs 593 / 597
    six CPU hogs (load 3.9-6.9)  c=16 352 / 393  vs 554 / 489    c=64 546 / 547 vs 612 / 654
and c=1 p50 2.6-3.7 ms either way. The old rule (one thread fewer than the cores, from a raw-ORT figure at load
~6: 1,300-1,400 vs 900-1,050 img/s) did not hold up through the endpoint: with spinning off, a second thread
never lost. A per-batch choice between the two (wide only while the other processes left a core idle) was
tried too and measured like one thread under load, so it was dropped. The 90 % goal would need the rest of a
request (HTTP, auth, frame, decode, JSON: ~0.75 ms of CPU here) near 0.1 ms.
Round four: a JPEG or plain PNG of the model's size and colour is decoded by Pillow's codecs straight into an
array (``tailor.data.images.plain_array``; 16-29 against 78-106 us of CPU per 28x28 PNG body). Old and new code in
alternating endpoints (auth on, wrk 5 s per level, 4 rounds each, quiet, load 1.2 -> 2.2), medians: c=1 381
vs 330 req/s, c=16 886 vs 844, c=64 1,084 vs 1,035 (new ahead in 11 of the 12 pairs); c=64 p99 73-84 vs 91-108 ms.
InvokeEndpoint is answered in front of FastAPI (``tailor.api.hosting.InvocationFront``): in-process, with the
worker replaced by a canned reply, 42 / 29 us of CPU per invocation against 446 / 372 us routed through FastAPI
(two runs), and 45-54 us against 47-89 us for the previous in-stack middleware (alternating processes, load ~15).

Round seven, a fast day (ceiling 3,067-3,307 img/s, load 1.6-2.2, two runs): c=1 / 16 / 64 650-790 / 1,527-1,576 /
1,973-2,135 req/s, p99 2.1-2.6 / 15.0-15.7 / 42-43 ms, c=64 62-65 % of the ceiling. Per request at c=64 the
worker spends 676-690 us of CPU (ONNX Runtime most of it) and this server 118-124 us. Two one-thread model lanes
served no faster than one batch on every core (docs/MEASURED.md, round seven), so the worker keeps one lane.

Round one's measured contract (``python -m bench serving``: wrk on loopback, 28x28 PNGs, ResNet-20, one worker; Tailor
through ``POST /endpoints/{name}/invocations`` with a bearer token; all four servers in one run on the 2-core
VM shared with other engineers, load average 3.0 before and 5.6 after, so every figure is a lower bound):

    conc   Tailor (auth on)        Tailor (AllowAll)        naive FastAPI+torch     BentoML adaptive batching
    1       633 req/s  p99   4 ms   481 req/s  p99   5 ms    135 req/s  p99   23 ms   86 req/s  p99  97 ms
    16      762 req/s  p99  32 ms   715 req/s  p99  33 ms    115 req/s  p99  188 ms  128 req/s  p99 274 ms
    64      850 req/s  p99 160 ms   820 req/s  p99 156 ms     89 req/s  p99 1700 ms 275 req/s  p99 525 ms

Tailor / naive: 4.7x / 6.7x / 9.5x at c=1/16/64 (goal >= 3x); Tailor / BentoML: 7.4x / 6.0x / 3.1x (goal
>= 1.5x). At c=16 p99 <= 50 ms was met and >= 1,000 req/s was not on that machine. Other runs of the same
code: Tailor-only at load 4.0: 746 / 872 / 944 req/s (p99 5 / 29 / 159 ms); by hand at load 3.3: 958 req/s,
p99 29 ms at c=16 (bearer auth, before the single-flight commit). Before this round (load 4-9): 229 req/s with
auth at c=16, p99 169 ms.
What bounds it, from /proc CPU times under wrk at c=16: the worker spends ~800 us of CPU per image, ~600-700
of them in ONNX Runtime (one core runs ResNet-20 at 1,300-1,600 img/s at any batch size 1-16), the Tailor
server ~230 us per request (uvicorn+httptools ~165, the ASGI path incl. auth ~37 measured in-process); so
1,000 req/s needs about 1.1 of the 2 cores free. The gains came from the key cache (no DB read or thread hop
per request), ONNX Runtime without thread spinning and with one intra-op thread on 2 cores, frames coalesced
per loop turn, the plain-ASGI invocation path, the route table refreshed off the loop, and lone small batches
run on the worker's loop thread (tailor.serving.batcher).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tailor.asgi import content_length, read_body
from tailor.errors import (
    InternalError,
    ModelError,
    TailorError,
    UnsupportedMediaTypeError,
    ValidationError,
    public_message,
)
from tailor.serving import preprocess, wire
from tailor.serving.batcher import Batcher

JSON = "application/json"
JSONLINES = "application/jsonlines"
log = logging.getLogger("tailor.serving.server")


class Predictor(Protocol):
    """What the server needs from a loaded model (``tailor.serving.loader.LoadedModel`` fits)."""

    meta: Any  # .image_shape (c, h, w), .num_classes, .class_names (list[str] | None)

    def predict(self, images: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Output:
    jsonlines: bool
    verbose: bool
    top_k: int


def parse_accept(accept: str | None, query: dict[str, str] | None = None) -> Output:
    """``Accept`` (first media range) plus ``verbose``/``top_k`` from its parameters or the query string."""
    first = (accept or "").split(",", 1)[0]
    parts = [p.strip() for p in first.split(";")]
    mtype = parts[0].lower()
    params = dict(query or {})
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    if mtype in ("", "*/*", JSON, "application/*"):
        jsonlines = False
    elif mtype in preprocess.JSONLINES_TYPES:
        jsonlines = True
    else:
        raise UnsupportedMediaTypeError(f"Accept {mtype!r} is not supported: use application/json or {JSONLINES}")
    verbose = params.get("verbose", "0").lower() in ("1", "true", "yes")
    try:
        top_k = int(params.get("top_k", params.get("top-k", "5")))
    except ValueError:
        raise ValidationError(f"top_k must be an integer, got {params.get('top_k')!r}") from None
    if top_k < 1:
        raise ValidationError(f"top_k must be >= 1, got {top_k}")
    return Output(jsonlines, verbose, top_k)


def error_reply(err: TailorError) -> wire.Reply:
    body = json.dumps({"__type": err.code, "message": public_message(err)}).encode()
    return wire.Reply(err.http_status, JSON, body)


class ModelService:
    """Decode -> batch -> format. Shared by the HTTP app and the Unix-socket frame server."""

    def __init__(self, predictor: Predictor, batcher: Batcher, *, max_pixels: int = preprocess.MAX_PIXELS) -> None:
        self.predictor = predictor
        self.batcher = batcher
        self.max_pixels = max_pixels
        meta = predictor.meta
        self.image_shape: tuple[int, int, int] = tuple(int(x) for x in meta.image_shape)  # type: ignore[assignment]
        names = getattr(meta, "class_names", None)
        self.labels = list(names) if names else [str(i) for i in range(int(meta.num_classes))]
        self.in_flight = 0
        self.ready = True
        self.inputs = preprocess.InputCounts()

    async def invoke(self, content_type: str, accept: str, body: bytes, query: dict[str, str] | None = None):
        self.in_flight += 1
        try:
            out = parse_accept(accept, query)
            images, is_batch = preprocess.decode_body(
                content_type, body, self.image_shape, self.max_pixels, self.inputs
            )
            probs = await self.batcher.submit(images)
            return wire.Reply(200, JSONLINES if out.jsonlines else JSON, self._format(probs, is_batch, out))
        except TailorError as err:
            return error_reply(err)
        except Exception as exc:  # noqa: BLE001 - a request is always answered, whatever failed
            log.exception("invocation failed")
            return error_reply(ModelError(f"the model server failed on this request ({type(exc).__name__})"))
        finally:
            self.in_flight -= 1

    def _format(self, probs: np.ndarray, is_batch: bool, out: Output) -> bytes:
        rows = probs.tolist()
        if out.verbose:
            k = min(out.top_k, probs.shape[1])
            order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
            items: list[Any] = [
                {
                    "prediction": row,
                    "top_k": [{"label": self.labels[j], "index": int(j), "probability": row[j]} for j in idx],
                }
                for row, idx in zip(rows, order.tolist(), strict=True)
            ]
        else:
            items = [{"prediction": r} for r in rows] if out.jsonlines else rows
        if out.jsonlines:
            return "".join(json.dumps(i) + "\n" for i in items).encode()
        return json.dumps(items if is_batch else items[0]).encode()

    def stats(self) -> dict[str, Any]:
        s = self.batcher.stats
        return {
            "pid": os.getpid(),
            "batches": s.batches,
            "images": s.images,
            "mean_batch_size": s.mean_batch_size,
            "batch_sizes": s.sizes,
            "expired": s.expired,
            "throttled": s.throttled,
            "failed_batches": s.failed_batches,
            "queued_images": self.batcher.queued_images,
            "in_flight": self.in_flight,
            # decoded images whose size or colour mode differed from the model's (resized / converted to fit)
            "mismatched_inputs": self.inputs.mismatched,
            "resized_inputs": self.inputs.resized,
            "recoloured_inputs": self.inputs.recoloured,
        }


# -- HTTP front-end: a bare ASGI app (no framework) keeps the per-request cost near uvicorn's own --------------
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _respond(send: Send, reply: wire.Reply, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", reply.content_type.encode()), (b"content-length", str(len(reply.body)).encode())]
    if reply.status >= 400:
        with contextlib.suppress(ValueError):
            headers.append((b"x-amzn-errortype", json.loads(reply.body).get("__type", "").encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": reply.body})


def query_params(scope: dict[str, Any]) -> dict[str, str]:
    qs = scope.get("query_string", b"")
    if not qs:
        return {}
    from urllib.parse import parse_qsl

    return dict(parse_qsl(qs.decode("latin-1")))


class ModelServerApp:
    """ASGI app: GET /ping, POST /invocations, GET /stats (batcher counters, JSON)."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await self.service.batcher.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/ping" and method in ("GET", "HEAD"):
            status = 200 if self.service.ready else 503
            await _respond(send, wire.Reply(status, JSON, b"{}" if status == 200 else b'{"status":"loading"}'))
        elif path == "/invocations" and method == "POST":
            headers = dict(scope["headers"])
            try:
                body = await read_body(receive, content_length(headers.items()), preprocess.MAX_BODY_BYTES)
            except TailorError as err:
                await _respond(send, error_reply(err))
                return
            reply = await self.service.invoke(
                headers.get(b"content-type", b"").decode("latin-1"),
                headers.get(b"accept", b"").decode("latin-1"),
                body,
                query_params(scope),
            )
            await _respond(send, reply)
        elif path == "/stats" and method == "GET":
            await _respond(send, wire.Reply(200, JSON, json.dumps(self.service.stats()).encode()))
        else:
            body = json.dumps({"__type": "NotFound", "message": f"no route {method} {path}"}).encode()
            await _respond(send, wire.Reply(404, JSON, body))


# -- frame front-ends (used by the Tailor server's router): a Unix socket, or TCP with a token ----------------
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def frame_handler(service: ModelService) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: set[asyncio.Task[None]] = set()
        out = wire.CoalescingWriter(writer)  # a batch's replies leave in one write

        async def one(req_id: int, op: int, ct: str, ac: str, body: bytes) -> None:
            try:
                if op == wire.OP_INVOKE:
                    reply = await service.invoke(ct, ac, body)
                elif op == wire.OP_PING:
                    reply = wire.Reply(200 if service.ready else 503, JSON, b"{}")
                else:
                    reply = wire.Reply(200, JSON, json.dumps(service.stats()).encode())
            except Exception:  # noqa: BLE001 - the router waits for this id: it must get an answer
                log.exception("frame op %d failed", op)
                reply = error_reply(InternalError("model server error"))
            if not writer.is_closing():
                out.write(wire.pack_reply(req_id, reply))

        try:
            while True:
                req = await wire.read_request(reader)
                task = asyncio.get_running_loop().create_task(one(*req))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()

    return handle


async def serve_frames(service: ModelService, socket_path: str) -> asyncio.AbstractServer:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    server = await asyncio.start_unix_server(frame_handler(service), socket_path, limit=8 * 1024 * 1024)
    os.chmod(socket_path, 0o600)  # only this user may invoke the model without going through auth
    return server


async def serve_frames_tcp(service: ModelService, host: str, token: str, port: int = 0) -> asyncio.AbstractServer:
    """Frames over TCP on ``host`` only (a cluster node's IP, never 0.0.0.0): a connection must first present
    ``token`` (``wire.check_hello``), or it is closed before any frame is read."""
    if not token:
        raise ValueError("a TCP frame server needs a token")
    handle = frame_handler(service)

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await wire.check_hello(reader, token):
            await handle(reader, writer)
        else:
            writer.close()

    return await asyncio.start_server(guarded, host, port, limit=8 * 1024 * 1024)


# -- process entry --------------------------------------------------------------------------------------------
def load_service(
    model_dir: str | Path,
    *,
    max_batch_size: int | None = None,
    max_delay_ms: float | None = None,
    max_queue: int | None = None,
    timeout_s: float | None = None,
    runtime: str = "auto",
    threads: int | None = None,
    max_pixels: int | None = None,
    quantize: str = "fp32",
) -> ModelService:
    """``threads``: model intra-op threads; default every core this process may use, at most 8
    (``loader.default_threads``). Through the endpoint on the 2-core VM two threads beat one quiet (+10 % at
    c=64) and under 2 or 6 CPU hogs (the module docstring has the table); with ONNX Runtime's spinning on, 2
    threads fell to 600-800 img/s, so it is off."""
    from tailor.serving.loader import load_model  # imports onnxruntime/torch lazily

    # No NVIDIA device node: say "cpu" so load_model need not import torch (~2 s) just to ask CUDA.
    device = None if Path("/dev/nvidiactl").exists() else "cpu"
    model = load_model(model_dir, runtime=runtime, device=device, threads=threads, quantize=quantize)  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    if max_batch_size is not None:
        kwargs["max_batch_size"] = max_batch_size
    if max_delay_ms is not None:
        kwargs["max_delay_s"] = max_delay_ms / 1000.0
    if max_queue is not None:
        kwargs["max_queue"] = max_queue
    if timeout_s is not None:
        kwargs["timeout_s"] = timeout_s
    pixels = preprocess.MAX_PIXELS if max_pixels is None else max_pixels
    return ModelService(model, Batcher(model.predict, **kwargs), max_pixels=pixels)


async def run_worker(
    service: ModelService,
    *,
    socket_path: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    on_ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
    tcp_host: str | None = None,
    token: str | None = None,
    on_tcp: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``), then stop accepting, let in-flight requests finish (<= 10 s).
    ``tcp_host`` + ``token``: frames over TCP on a port the kernel picks; ``on_tcp`` gets the full address."""
    import uvicorn

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    frames = await serve_frames(service, socket_path) if socket_path else None
    tcp = await serve_frames_tcp(service, tcp_host, token or "") if tcp_host else None
    if tcp is not None and on_tcp is not None:
        on_tcp(wire.tcp_address(tcp_host or "", tcp.sockets[0].getsockname()[1], token or ""))
    http_server = None
    http_task = None
    if port is not None:
        config = uvicorn.Config(
            ModelServerApp(service),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=_http_impl(),
        )
        http_server = uvicorn.Server(config)
        http_server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        http_task = loop.create_task(http_server.serve())
        while not http_server.started and not http_task.done():
            await asyncio.sleep(0.01)
    if on_ready:
        on_ready()
    await stop.wait()
    service.ready = False
    if tcp is not None:
        tcp.close()
    if frames is not None:
        frames.close()
        with contextlib.suppress(OSError):
            os.unlink(socket_path)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10.0
    while service.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if http_server is not None and http_task is not None:
        http_server.should_exit = True
        await http_task
    await service.batcher.close()


def _http_impl() -> str:
    """httptools parses HTTP/1.1 several times faster than h11 (pure Python); use it when installed."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def event_loop_policy() -> None:
    """uvloop when installed: ~2x cheaper socket I/O per request than asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
