"""Worker process entry: ``python -m tailor.serving.worker MODEL_DIR [--socket PATH] [--port N]``.

The endpoint runtime starts one per instance with ``--socket`` (frames from the router); ``tailor serve-model``
runs the same code with ``--port`` (the SageMaker HTTP contract). Knobs come as flags, never through
private environment variables. ``ThreadedWorker`` runs the same worker on a thread of a process that already
exists (an endpoint instance's Ray actor), serving frames over TCP with a per-instance token.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tailor-worker", description=__doc__)
    p.add_argument("model_dir")
    p.add_argument("--socket", default=None, help="Unix socket for the router's frame protocol")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="serve GET /ping and POST /invocations over HTTP")
    p.add_argument("--max-batch-size", type=int, default=None)
    p.add_argument("--max-delay-ms", type=float, default=None)
    p.add_argument("--max-queue", type=int, default=None)
    p.add_argument("--timeout-s", type=float, default=None)
    p.add_argument("--owner-pid", type=int, default=None, help="exit when this process (the launcher) is gone")
    p.add_argument("--runtime", default="auto", choices=["auto", "onnx", "torch"])
    p.add_argument("--threads", type=int, default=None, help="model intra-op threads (default: every core, at most 8)")
    p.add_argument("--max-image-pixels", type=int, default=None, help="pixels one request may decode (413 above)")
    p.add_argument(
        "--quantize", default="fp32", choices=["fp32", "int8"], help="int8: an INT8 graph calibrated on the artifact"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Errors (an invocation's traceback) go to stderr, which the endpoint runtime log collects.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from tailor.serving.server import event_loop_policy, load_service, run_worker

    t0 = time.monotonic()
    service = load_service(
        args.model_dir,
        max_batch_size=args.max_batch_size,
        max_delay_ms=args.max_delay_ms,
        max_queue=args.max_queue,
        timeout_s=args.timeout_s,
        runtime=args.runtime,
        threads=args.threads,
        max_pixels=args.max_image_pixels,
        quantize=args.quantize,
    )
    event_loop_policy()
    if args.owner_pid:
        _watch_owner(args.owner_pid)

    def ready() -> None:
        where = " ".join(x for x in (args.socket and f"socket={args.socket}", args.port and f"port={args.port}") if x)
        print(f"tailor worker {os.getpid()} ready: model loaded in {loaded_s:.2f} s, serving {where}", flush=True)

    loaded_s = time.monotonic() - t0
    asyncio.run(run_worker(service, socket_path=args.socket, host=args.host, port=args.port, on_ready=ready))
    print(f"tailor worker {os.getpid()} stopped", flush=True)


class ThreadedWorker:
    """The model worker on a thread of this process: ``load_service`` (the one load path: a model directory or
    ``model.tar.gz``) and ``run_worker`` with frames over TCP on ``host`` only, guarded by ``token``."""

    def __init__(self, model_path: str | Path, *, host: str, token: str, options: dict[str, Any]) -> None:
        from tailor.serving.server import load_service

        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        knobs = ("max_batch_size", "max_delay_ms", "max_queue", "timeout_s", "threads", "quantize")
        kwargs = {k: options[k] for k in knobs if options.get(k) is not None}
        self.service = load_service(model_path, max_pixels=options.get("max_image_pixels"), **kwargs)
        self.address = ""
        self._listening = threading.Event()
        self._loop = _new_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(host, token), name="tailor-worker", daemon=True)
        self._thread.start()
        self._listening.wait()
        if self._error is not None:
            raise self._error

    def _run(self, host: str, token: str) -> None:
        from tailor.serving.server import run_worker

        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()

        def listening(address: str) -> None:
            self.address = address
            self._listening.set()

        try:
            self._loop.run_until_complete(
                run_worker(self.service, tcp_host=host, token=token, on_tcp=listening, stop=self._stop)
            )
        except BaseException as err:  # noqa: BLE001 - reported to the constructor, which raises it
            self._error = err
        finally:
            self._listening.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop accepting, let in-flight requests finish (the worker waits <= 10 s), then return."""
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, as ``event_loop_policy`` gives the process entry."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _watch_owner(owner_pid: int) -> None:
    """When the launching Tailor process dies we are re-parented: stop gracefully (SIGTERM to ourselves)."""
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == owner_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="owner-watch").start()


if __name__ == "__main__":
    main()
