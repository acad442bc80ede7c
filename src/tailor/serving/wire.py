"""The frame protocol between the Tailor server's router and its model workers, over a Unix socket or TCP.

Why not HTTP for this hop: measured on this 2-core VM (shared, load average ~6), 16 concurrent clients
relaying the same 28x28 PNG to one worker cost the relaying process 30-35 us of CPU per request over frames
versus 3,500-4,100 us over ``httpx.AsyncClient`` -> uvicorn (689/578 vs 180/106 req/s wall, two rounds), and
the worker parses HTTP on top. The Tailor server already paid for one HTTP parse; a frame is one
``struct.pack`` and one write, and one persistent connection per worker multiplexes every in-flight request
by id, so the batcher on the other end sees them concurrently. The worker still speaks the SageMaker HTTP
contract (GET /ping, POST /invocations) when run alone (``tailor serve-model``); both front-ends call the
same ``ModelService``.

Writes are coalesced per event-loop turn on both ends (requests in the router, replies in the worker): at 16
concurrent clients the requests that arrive in one turn, and the replies of one batch, go out in one
``write`` (one syscall, one wake-up of the peer) instead of one each.

Request frame:  !IIBHH  body_len, request_id, op, content_type_len, accept_len, then content_type, accept, body
Response frame: !IIHH   body_len, request_id, status, content_type_len, then content_type, body

Addresses: a path is a Unix socket (local workers; the socket's 0600 mode is the access control). A worker on
another machine (an endpoint instance on a Ray cluster) listens on TCP, on its node's IP only, and its address
is ``tcp://TOKEN@HOST:PORT``: TOKEN is a per-instance secret (32 random bytes, hex) that the client sends first
on every connection (``TLR1``, !H length, the token); the worker compares it in constant time and closes a
connection that does not present it within 5 s, before reading any frame. The address (secret included) lives
only in the metadata database, as the socket paths do. Frames are not encrypted: keep the cluster's network
private (the token stops strangers from invoking models, not an eavesdropper on the wire).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import socket
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tailor.errors import ServiceUnavailableError

REQ = struct.Struct("!IIBHH")
RESP = struct.Struct("!IIHH")
OP_INVOKE = 1
OP_PING = 2
OP_STATS = 3
_STREAM_LIMIT = 8 * 1024 * 1024  # > the 6 MB body cap
HELLO_MAGIC = b"TLR1"
HELLO_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 3.0  # a dead remote host never answers SYN: fail over instead of waiting out the kernel's ~2 min
# A host that vanished is noticed in ~8-10 s instead of the kernel's ~15 min of retransmissions: an idle
# connection by keepalive (5 s idle, then 3 probes 1 s apart), one with requests unacknowledged for 10 s by
# TCP_USER_TIMEOUT; the router then fails its requests over instead of waiting out the 60 s invocation timeout.
_KEEPALIVE = (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3), ("TCP_USER_TIMEOUT", 10_000))


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int
    token: str


def tcp_address(host: str, port: int, token: str) -> str:
    return f"tcp://{token}@{host}:{port}"


def parse_tcp(address: str) -> TcpAddress | None:
    """The parts of a ``tcp://TOKEN@HOST:PORT`` address; None for a Unix socket path."""
    if not address.startswith("tcp://"):
        return None
    parts = urlsplit(address)
    if not parts.hostname or parts.port is None or not parts.username:
        raise ValueError(f"bad worker address {address.split('@')[-1]!r}: expected tcp://TOKEN@HOST:PORT")
    return TcpAddress(parts.hostname, parts.port, parts.username)


def hello(token: str) -> bytes:
    raw = token.encode("ascii")
    return HELLO_MAGIC + struct.pack("!H", len(raw)) + raw


async def check_hello(reader: asyncio.StreamReader, token: str) -> bool:
    """Worker side: True when the connection opens with ``token`` (compared in constant time) within 5 s."""
    try:
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            head = await reader.readexactly(len(HELLO_MAGIC) + 2)
            if head[: len(HELLO_MAGIC)] != HELLO_MAGIC:
                return False
            got = await reader.readexactly(struct.unpack("!H", head[len(HELLO_MAGIC) :])[0])
    except (asyncio.IncompleteReadError, OSError, TimeoutError):
        return False
    return hmac.compare_digest(got, token.encode("ascii"))


def keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE:
        if hasattr(socket, name):  # Linux has all four; other systems keep their defaults for those they lack
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes


class WorkerGone(ServiceUnavailableError):
    """The worker's connection failed or closed: the request never got an answer (safe to retry)."""


def pack_request(req_id: int, op: int, content_type: str, accept: str, body: bytes) -> bytes:
    ct, ac = content_type.encode("latin-1", "replace"), accept.encode("latin-1", "replace")
    return b"".join((REQ.pack(len(body), req_id, op, len(ct), len(ac)), ct, ac, body))


def pack_reply(req_id: int, reply: Reply) -> bytes:
    ct = reply.content_type.encode("latin-1")
    return b"".join((RESP.pack(len(reply.body), req_id, reply.status, len(ct)), ct, reply.body))


async def read_request(reader: asyncio.StreamReader) -> tuple[int, int, str, str, bytes]:
    body_len, req_id, op, ct_len, ac_len = REQ.unpack(await reader.readexactly(REQ.size))
    rest = await reader.readexactly(ct_len + ac_len + body_len)
    ct = rest[:ct_len].decode("latin-1")
    ac = rest[ct_len : ct_len + ac_len].decode("latin-1")
    return req_id, op, ct, ac, rest[ct_len + ac_len :]


class CoalescingWriter:
    """Buffers frames written during one event-loop turn and writes them together at the end of the turn."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._frames: list[bytes] = []

    def write(self, frame: bytes) -> None:
        if not self._frames:
            asyncio.get_running_loop().call_soon(self._flush)
        self._frames.append(frame)

    def _flush(self) -> None:
        frames, self._frames = self._frames, []
        if frames and not self.writer.is_closing():
            self.writer.write(frames[0] if len(frames) == 1 else b"".join(frames))


class WorkerConnection:
    """A multiplexed client connection to one worker socket; used by the router on one event loop."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._tcp = parse_tcp(socket_path)
        self.outstanding = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._out: CoalescingWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def _connect(self) -> CoalescingWriter:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.connected:
                assert self._out is not None
                return self._out
            try:
                reader, writer = await self._open()
            except (OSError, TimeoutError) as exc:
                detail = getattr(exc, "strerror", None) or exc or "timed out"
                raise WorkerGone(f"model worker is not reachable ({detail})") from None
            self._writer = writer
            self._out = CoalescingWriter(writer)
            self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(reader, writer))
            return self._out

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._tcp is None:
            return await asyncio.open_unix_connection(self.socket_path, limit=_STREAM_LIMIT)
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(self._tcp.host, self._tcp.port, limit=_STREAM_LIMIT)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            keepalive(sock)
        writer.write(hello(self._tcp.token))
        return reader, writer

    async def _read_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                body_len, req_id, status, ct_len = RESP.unpack(await reader.readexactly(RESP.size))
                rest = await reader.readexactly(ct_len + body_len)
                fut = self._pending.pop(req_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(Reply(status, rest[:ct_len].decode("latin-1"), rest[ct_len:]))
        except (asyncio.IncompleteReadError, OSError, asyncio.CancelledError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            pending, self._pending = self._pending, {}
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(WorkerGone("model worker closed the connection mid-request"))

    async def request(self, op: int, content_type: str = "", accept: str = "", body: bytes = b"") -> Reply:
        writer = self._out if self.connected and self._out is not None else await self._connect()
        req_id = next(self._ids) & 0xFFFFFFFF
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        self.outstanding += 1
        try:
            writer.write(pack_request(req_id, op, content_type, accept, body))
            return await fut
        finally:
            self.outstanding -= 1
            self._pending.pop(req_id, None)

    async def close(self) -> None:
        """Close the connection and wait for its reader task to end, so no task outlives its event loop
        (Python prints "Task was destroyed but it is pending!" at exit otherwise)."""
        task, self._reader_task = self._reader_task, None
        if self._writer is not None:
            self._writer.close()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- blocking one-shot calls (health checks and counters from the control plane) -------------------------


def call(socket_path: str, op: int, timeout: float) -> Reply | None:
    """One request on a fresh connection; the reply, or None when the worker is unreachable or hangs up."""
    tcp = parse_tcp(socket_path)
    try:
        with _blocking_socket(socket_path, tcp, timeout) as s:
            s.sendall((hello(tcp.token) if tcp else b"") + pack_request(1, op, "", "", b""))
            data = b""
            while len(data) < RESP.size or len(data) < RESP.size + _frame_rest(data):
                chunk = s.recv(65536)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    body_len, _, status, ct_len = RESP.unpack(data[: RESP.size])
    rest = data[RESP.size : RESP.size + ct_len + body_len]
    return Reply(status, rest[:ct_len].decode("latin-1"), rest[ct_len:])


def _blocking_socket(address: str, tcp: TcpAddress | None, timeout: float) -> socket.socket:
    if tcp is not None:
        return socket.create_connection((tcp.host, tcp.port), timeout=timeout)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(address)
    except OSError:
        s.close()
        raise
    return s


def _frame_rest(data: bytes) -> int:
    body_len, _, _, ct_len = RESP.unpack(data[: RESP.size])
    return ct_len + body_len


def ping(socket_path: str, timeout: float = 2.0) -> bool:
    """The container's /ping over the worker socket."""
    reply = call(socket_path, OP_PING, timeout)
    return reply is not None and reply.status == 200


def stats(socket_path: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The worker's batcher counters (realised batch sizes, queue, refusals); None if it is gone."""
    reply = call(socket_path, OP_STATS, timeout)
    if reply is None or reply.status != 200:
        return None
    try:
        return json.loads(reply.body)
    except ValueError:
        return None
