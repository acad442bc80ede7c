"""The one bounded ASGI request-body reader, shared by the API's body limit, its auth layer, the invocation route
and the model server: each refuses a body (413) as soon as its declared or received size passes its own limit.
``replay`` hands a body read this way on to the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tailor.errors import PayloadTooLargeError

Receive = Callable[[], Awaitable[dict[str, Any]]]


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for k, v in headers:
        if k.lower() == b"content-length" and v.isdigit():
            return int(v)
    return None


async def read_body(receive: Receive, declared: int | None, limit: int) -> bytes:
    """The whole body; ``declared`` is the Content-Length header (None when absent)."""
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands an already-read body to the app, then waits on the real one (disconnects)."""
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the server's own receive would

    return replayed
