"""Worker process entry: ``python -m tailor.serving.worker MODEL_DIR [--socket PATH] [--port N]``.

The endpoint runtime starts one per instance with ``--socket`` (frames from the router); ``tailor serve-model``
runs the same code with ``--port`` (the SageMaker HTTP contract). Knobs come as flags, never through
private environment variables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


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
    p.add_argument("--threads", type=int, default=None, help="model intra-op threads (default: cores - 1)")
    p.add_argument("--max-image-pixels", type=int, default=None, help="pixels one request may decode (413 above)")
    p.add_argument(
        "--quantize", default="fp32", choices=["fp32", "int8"], help="int8: an INT8 graph calibrated on the artifact"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from tailor.serving.server import event_loop_policy, load_service, run_worker

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
        print(f"tailor worker {os.getpid()} ready: {where}", flush=True)

    asyncio.run(run_worker(service, socket_path=args.socket, host=args.host, port=args.port, on_ready=ready))


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
