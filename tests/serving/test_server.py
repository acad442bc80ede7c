"""The model server over real HTTP on loopback: the SageMaker container contract and every error status."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from tailor.serving import preprocess, wire
from tailor.serving.batcher import Batcher
from tailor.serving.server import ModelService, load_service
from tests.serving.artifacts import CLASS_NAMES, ServerThread, jpeg_bytes, png_bomb, png_bytes


@pytest.fixture(scope="module")
def served(model_dir: Path):
    service = load_service(model_dir, max_delay_ms=1)
    with ServerThread(service) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, service


def offline(model_dir: Path, images: np.ndarray) -> np.ndarray:
    from tailor.serving.loader import load_model

    return load_model(model_dir).predict(images)


def test_ping_and_png_prediction_equals_offline_model(served, model_dir: Path) -> None:
    client, _ = served
    assert client.get("/ping").status_code == 200
    body = png_bytes(3)
    r = client.post("/invocations", content=body, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    got = np.array(r.json(), dtype=np.float32)
    from tailor.serving.preprocess import decode_image

    want = offline(model_dir, decode_image(body, (1, 28, 28))[None])[0]
    assert got.shape == (10,) and np.allclose(got, want, atol=1e-6)
    assert abs(got.sum() - 1) < 1e-4


def test_colour_jpeg_of_any_size_is_converted_and_resized(served) -> None:
    client, _ = served
    for ctype in ("image/jpeg", "application/x-image"):
        r = client.post("/invocations", content=jpeg_bytes(1, size=(97, 41)), headers={"Content-Type": ctype})
        assert r.status_code == 200 and len(r.json()) == 10


def test_jsonlines_batch_and_jsonlines_answer(served) -> None:
    client, _ = served
    lines = [json.dumps({"b64": base64.b64encode(png_bytes(i)).decode()}) for i in range(3)]
    lines.append(json.dumps({"data": np.zeros((1, 28, 28), int).tolist()}))
    body = "\n".join(lines).encode()
    r = client.post("/invocations", content=body, headers={"Content-Type": "application/jsonlines"})
    assert r.status_code == 200 and np.array(r.json()).shape == (4, 10)
    r = client.post(
        "/invocations",
        content=body,
        headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert r.headers["content-type"] == "application/jsonlines" and len(rows) == 4
    assert all(len(row["prediction"]) == 10 for row in rows)


def test_verbose_answer_has_labels_and_top_k(served) -> None:
    client, _ = served
    body = png_bytes(5)
    plain = np.array(client.post("/invocations", content=body, headers={"Content-Type": "image/png"}).json())
    for kwargs in (
        {"headers": {"Content-Type": "image/png", "Accept": "application/json;verbose=1;top_k=3"}},
        {"headers": {"Content-Type": "image/png"}, "params": {"verbose": "1", "top_k": "3"}},
    ):
        r = client.post("/invocations", content=body, **kwargs)
        top = r.json()["top_k"]
        order = np.argsort(-plain)[:3]
        assert [t["index"] for t in top] == order.tolist()
        assert [t["label"] for t in top] == [CLASS_NAMES[i] for i in order]


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [
        (b"not an image", "image/png", 400),
        (png_bytes(1), "text/csv", 415),
        (b"{oops\n", "application/jsonlines", 400),
        (b"\0" * (6 * 1024 * 1024 + 1), "image/png", 413),
    ],
)
def test_client_errors_are_sagemaker_shaped(served, content: bytes, ctype: str, status: int) -> None:
    client, _ = served
    r = client.post("/invocations", content=content, headers={"Content-Type": ctype})
    assert r.status_code == status
    err = r.json()
    assert err["message"] and r.headers["x-amzn-errortype"] == err["__type"]


def test_unsupported_accept_is_415(served) -> None:
    client, _ = served
    r = client.post("/invocations", content=png_bytes(1), headers={"Content-Type": "image/png", "Accept": "text/csv"})
    assert r.status_code == 415


def solid_png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (28, 28), value).save(buf, format="PNG")
    return buf.getvalue()


def fake_meta() -> SimpleNamespace:
    return SimpleNamespace(image_shape=(1, 28, 28), num_classes=2, class_names=None)


def test_model_failure_is_424_and_overload_is_429_then_503() -> None:
    gate = threading.Event()

    def predict(images: np.ndarray) -> np.ndarray:
        if images[0, 0, 0, 0] == 255:
            raise RuntimeError("bad weights")
        gate.wait(10)
        return np.full((images.shape[0], 2), 0.5, np.float32)

    service = ModelService(
        SimpleNamespace(meta=fake_meta(), predict=predict),
        Batcher(predict, max_batch_size=1, max_delay_s=0, max_queue=1, timeout_s=0.5),
    )
    white, black = solid_png(255), solid_png(0)
    with ServerThread(service) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/invocations", content=white, headers={"Content-Type": "image/png"})
        assert r.status_code == 424 and r.json()["__type"] == "ModelError" and "bad weights" in r.json()["message"]
        # The gate is shut: the first request holds the model, the second fills the 1-image queue, a third is
        # refused at once (429); the held ones answer 503 when their 0.5 s deadline passes instead of hanging.
        results: list[int] = []

        def send() -> None:
            results.append(
                client.post("/invocations", content=black, headers={"Content-Type": "image/png"}).status_code
            )

        threads = [threading.Thread(target=send) for _ in range(2)]
        for t in threads:
            t.start()
        while service.batcher.queued_images < 1:
            threading.Event().wait(0.005)
        third = client.post("/invocations", content=black, headers={"Content-Type": "image/png"})
        assert third.status_code == 429 and third.json()["__type"] == "ThrottlingException"
        for t in threads:
            t.join(10)
        gate.set()
        assert sorted(results) == [503, 503]


def test_ping_is_503_until_ready() -> None:
    service = ModelService(SimpleNamespace(meta=fake_meta(), predict=None), Batcher(lambda x: x))
    service.ready = False
    with ServerThread(service) as server:
        assert httpx.get(server.url + "/ping").status_code == 503


def frame_invoke(socket_path: str, content_type: str, body: bytes, timeout: float = 5.0) -> tuple[wire.Reply, float]:
    """One invocation over the router's frame protocol; (reply, seconds)."""

    async def go() -> tuple[wire.Reply, float]:
        conn = wire.WorkerConnection(socket_path)
        t0 = time.monotonic()
        try:
            reply = await asyncio.wait_for(conn.request(wire.OP_INVOKE, content_type, "", body), timeout)
        finally:
            await conn.close()
        return reply, time.monotonic() - t0

    return asyncio.run(go())


def test_decompression_bomb_is_refused_413_from_its_header_on_both_front_ends(model_dir: Path, tmp_path: Path) -> None:
    """A 0.4 MB PNG of 20000x20000 pixels: 413 in SageMaker's shape at once, over HTTP and over frames (the
    router's path), never decoded; the image header parser reads PNG and JPEG sizes."""
    bomb = png_bomb()
    assert len(bomb) < 600_000 and preprocess.image_size(bomb) == (20_000, 20_000)
    assert preprocess.image_size(jpeg_bytes(1, size=(97, 41))) == (97, 41)
    assert preprocess.image_size(b"GIF89a") is None
    service = load_service(model_dir)
    sock = str(tmp_path / "w.sock")
    with ServerThread(service, socket_path=sock) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        t0 = time.monotonic()
        r = client.post("/invocations", content=bomb, headers={"Content-Type": "image/png"})
        took = time.monotonic() - t0
        assert r.status_code == 413 and r.json()["__type"] == r.headers["x-amzn-errortype"] == "ValidationError"
        assert "20000x20000" in r.json()["message"] and took < 2.0
        reply, took = frame_invoke(sock, "application/x-image", bomb)
        assert reply.status == 413 and json.loads(reply.body)["__type"] == "ValidationError" and took < 2.0
        line = json.dumps({"b64": base64.b64encode(bomb).decode()}).encode()
        r = client.post("/invocations", content=line, headers={"Content-Type": "application/jsonlines"})
        assert r.status_code == 413
        # The limit is the service's (setting max_image_pixels, passed to workers as --max-image-pixels).
        service.max_pixels = 28 * 28 - 1
        assert (
            client.post("/invocations", content=png_bytes(1), headers={"Content-Type": "image/png"}).status_code == 413
        )
        service.max_pixels = preprocess.MAX_PIXELS
        assert (
            client.post("/invocations", content=png_bytes(1), headers={"Content-Type": "image/png"}).status_code == 200
        )


def test_an_unexpected_exception_in_decoding_is_answered_not_dropped(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise ZeroDivisionError("a decoder bug")

    service = load_service(model_dir)
    sock = str(tmp_path / "w.sock")
    with ServerThread(service, socket_path=sock) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        monkeypatch.setattr(preprocess, "decode_body", broken)
        reply, took = frame_invoke(sock, "image/png", png_bytes(1))
        err = json.loads(reply.body)
        assert reply.status == 424 and err["__type"] == "ModelError" and took < 2.0
        assert "ZeroDivisionError" in err["message"] and "a decoder bug" not in err["message"]
        r = client.post("/invocations", content=png_bytes(1), headers={"Content-Type": "image/png"})
        assert r.status_code == 424 and r.headers["x-amzn-errortype"] == "ModelError"
        monkeypatch.undo()
        reply, _ = frame_invoke(sock, "image/png", png_bytes(1))
        assert reply.status == 200 and service.in_flight == 0
