"""The router-to-worker frame protocol: framing, multiplexing by request id, coalesced writes, failures."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tailor.serving import wire

from .frames import FrameServer


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_request_frame_round_trip() -> None:
    frame = wire.pack_request(7, wire.OP_INVOKE, "image/png", "application/json;verbose=1", b"\x89PNG body")

    async def parse() -> tuple[int, int, str, str, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(frame)
        reader.feed_eof()
        return await wire.read_request(reader)

    assert run(parse()) == (7, wire.OP_INVOKE, "image/png", "application/json;verbose=1", b"\x89PNG body")
    reply = wire.pack_reply(9, wire.Reply(424, "a/b", b"xyz"))
    assert wire.RESP.unpack(reply[: wire.RESP.size]) == (3, 9, 424, 3) and reply[wire.RESP.size :] == b"a/bxyz"


def test_one_connection_multiplexes_replies_out_of_order(tmp_path: Path) -> None:
    async def slow_first(op: int, ct: str, ac: str, body: bytes) -> wire.Reply:
        await asyncio.sleep(0.2 if body == b"first" else 0.0)  # the first request is answered last
        return wire.Reply(200, ct, body.upper())

    async def main() -> list[bytes]:
        async with FrameServer(tmp_path / "w.sock", slow_first) as server:
            conn = wire.WorkerConnection(server.path)
            replies = await asyncio.gather(*(conn.request(wire.OP_INVOKE, "t", "", b) for b in (b"first", b"2", b"3")))
            assert server.connections == 1 and conn.outstanding == 0
            await conn.close()
            return [r.body for r in replies]

    assert run(main()) == [b"FIRST", b"2", b"3"]


def test_a_worker_that_hangs_up_fails_every_pending_request(tmp_path: Path) -> None:
    async def hang_up(op: int, ct: str, ac: str, body: bytes) -> None:
        await asyncio.sleep(0.05)
        return None

    async def main() -> None:
        async with FrameServer(tmp_path / "w.sock", hang_up) as server:
            conn = wire.WorkerConnection(server.path)
            results = await asyncio.gather(
                *(conn.request(wire.OP_INVOKE, body=b"x") for _ in range(3)), return_exceptions=True
            )
            assert all(isinstance(r, wire.WorkerGone) for r in results), results
            await conn.close()

    run(main())


def test_unreachable_worker_is_worker_gone_which_is_a_503(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(wire.WorkerGone) as info:
            await wire.WorkerConnection(str(tmp_path / "none.sock")).request(wire.OP_PING)
        assert info.value.http_status == 503

    run(main())


def test_frames_written_in_one_loop_turn_go_out_in_one_write() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def is_closing(self) -> bool:
            return False

    async def main() -> list[bytes]:
        rec = Recorder()
        out = wire.CoalescingWriter(rec)  # type: ignore[arg-type]
        for i in range(3):
            out.write(bytes([i]))
        await asyncio.sleep(0)  # end of the turn
        out.write(b"\x09")
        await asyncio.sleep(0)
        return rec.writes

    assert run(main()) == [b"\x00\x01\x02", b"\x09"]


def test_blocking_ping_and_stats(tmp_path: Path) -> None:
    """The control plane's one-shot calls, against a worker served on another thread's loop."""
    ready, stop = threading.Event(), threading.Event()
    path = tmp_path / "w.sock"

    async def serve() -> None:
        async with FrameServer(path):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.01)

    t = threading.Thread(target=asyncio.run, args=(serve(),))
    t.start()
    try:
        assert ready.wait(10)
        assert wire.ping(str(path)) is True
        assert wire.stats(str(path)) == {"pid": 1, "batches": 2, "images": 5}
    finally:
        stop.set()
        t.join(10)
    assert wire.ping(str(path)) is False and wire.stats(str(path)) is None  # gone: False/None, no exception
