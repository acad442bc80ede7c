"""A scripted frame server on a Unix socket: what a model worker looks like to the router and the wire client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from tailor.serving import wire

Handler = Callable[[int, str, str, bytes], Awaitable[wire.Reply | None]]


async def echo(op: int, content_type: str, accept: str, body: bytes) -> wire.Reply:
    """Invocations echo their body; /ping answers 200; stats answer a small JSON object."""
    if op == wire.OP_STATS:
        return wire.Reply(200, "application/json", json.dumps({"pid": 1, "batches": 2, "images": 5}).encode())
    return wire.Reply(200, content_type or "application/octet-stream", body)


class FrameServer:
    """Serves ``handler`` on ``path``; a handler returning None closes the connection without answering."""

    def __init__(self, path: Path, handler: Handler = echo) -> None:
        self.path = str(path)
        self.handler = handler
        self.requests: list[tuple[int, bytes]] = []  # (op, body) in arrival order
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> FrameServer:
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        Path(self.path).unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                req_id, op, ct, ac, body = await wire.read_request(reader)
                self.requests.append((op, body))
                asyncio.get_running_loop().create_task(self._answer(writer, req_id, op, ct, ac, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def _answer(self, writer: asyncio.StreamWriter, req_id: int, op: int, ct: str, ac: str, body: bytes) -> None:
        reply = await self.handler(op, ct, ac, body)
        if reply is None:
            writer.close()
            return
        writer.write(wire.pack_reply(req_id, reply))
        await writer.drain()
