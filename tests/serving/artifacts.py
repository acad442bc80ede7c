"""A small real model artifact for serving tests: ResNet-20, 1x28x28, 10 classes, random weights (seeded)."""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
IMAGE_SHAPE = (1, 28, 28)


def build_artifact(tar_path: Path, *, arch: str = "resnet20", calibration: bool = False) -> Path:
    """``calibration``: keep 64 images (seeded, uint8) as the artifact's INT8 calibration sample."""
    import torch
    from safetensors.torch import save_file

    from tailor.algorithms.image_classification.export import export_onnx
    from tailor.algorithms.image_classification.networks import create_model
    from tailor.artifact import write_artifact

    torch.manual_seed(0)
    kwargs = {"num_classes": 10, "in_channels": 1, "image_size": 28, "mean": [72.9], "std": [90.0]}
    model = create_model(arch, **kwargs).eval()
    # Non-trivial BN statistics so the outputs differ between images.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, IMAGE_SHAPE, onnx_path, tta=False)
        meta = {
            "algorithm": "tailor/image-classification",
            "model": {"name": arch, "kwargs": kwargs},
            "image_shape": list(IMAGE_SHAPE),
            "num_classes": 10,
            "class_names": CLASS_NAMES,
            "multi_label": False,
            "tta": None,
        }
        calib = None
        if calibration:
            calib = Path(tmp) / "calibration.npy"
            np.save(calib, np.random.default_rng(7).integers(0, 256, (64, *IMAGE_SHAPE), dtype=np.uint8))
        return write_artifact(
            tar_path, model_json=meta, weights_path=weights, onnx_path=onnx_path, calibration_path=calib
        )


def png_bytes(seed: int, size: tuple[int, int] = (28, 28), mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` zero pixels: ~0.4 MB on the wire, ``width*height`` bytes
    decoded (400 MB for the default). Built in ~0.2 s: one deflate chunk of 100 rows, made independent by a
    full flush, repeated; only the Adler-32 checksum passes over every byte."""
    rows = 100
    assert height % rows == 0
    block = (b"\x00" + bytes(width)) * rows  # filter byte 0 + a row of zeros
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(height // rows):
        adler = zlib.adler32(block, adler)
    idat = b"\x78\xda" + chunk * (height // rows) + b"\x03\x00" + struct.pack(">I", adler)

    def png_chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_bytes(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


class ServerThread:
    """Runs `run_worker` for a ModelService on its own event loop thread (HTTP on a free port + a socket)."""

    def __init__(self, service, socket_path: str | None = None) -> None:  # noqa: ANN001
        import asyncio
        import socket
        import threading

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.service = service
        self.socket_path = socket_path
        self._ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import asyncio

        from tailor.serving.server import run_worker

        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await run_worker(
                self.service, socket_path=self.socket_path, port=self.port, on_ready=self._ready.set, stop=self._stop
            )

        self.loop.run_until_complete(main())

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self._ready.wait(30), "model server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(20)
