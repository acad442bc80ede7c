"""SageMaker's data-capture records, encoded in batches for the capture writer (``tailor.hosting.capture``).

A record is the line ``json.dumps`` gives for SageMaker's dict (default separators, ASCII escapes, keys in
``_LINE``'s order), but built in ASCII bytes from pre-formatted pieces: per record only the body
(``binascii.b2a_base64`` of the raw bytes, or the JSON-escaped text), the event id and the inference time vary.
The id is a version-4 UUID spelled as ``str(uuid.uuid4())`` is, cut from one ``os.urandom`` call per batch; the
time's text is kept per second. Lines are bytes so a file is one ``b"".join`` (a 2,000-record file is ~1.6 MB:
each extra copy of it is ~1 ms with the GIL held). Measured (``bench/bench_capture.py``, 2-core VM at load 4):
~44 us per record for ``json.dumps`` of the dict with ``uuid.uuid4()`` and ``strftime`` per record, ~5 us this
way. The format is checked against ``json.dumps`` in ``tests/hosting/test_capture.py``.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii  # what json.dumps writes a str with (ensure_ascii=True)
from typing import Any, Protocol

from tailor.errors import ValidationError

# Version 4, RFC 4122 variant: the bits uuid.UUID(version=4) sets, applied to a batch's bytes at once.
_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))
_LINE = b'{"captureData": {%b}, "eventMetadata": {"eventId": "%b", "inferenceTime": "%b"}, "eventVersion": "0"}\n'
_TYPES_MAX = 256  # content types are the callers' strings: the cache of their encodings stays bounded


class Sampled(Protocol):
    """What the encoder reads of an endpoint's capture plan."""

    destination: str
    inputs: bool
    outputs: bool
    csv: frozenset[str]
    json: frozenset[str]


# (plan, endpoint, variant, time.time(), content type, body, reply's content type, reply): what offer() queues
Item = tuple[Any, str, str, float, str, bytes, str, bytes]
# (destination, endpoint, variant, "yyyy/mm/dd/hh"): one file's worth of records
Key = tuple[str, str, str, str]


def event_ids(n: int) -> list[bytes]:
    """``n`` random version-4 UUIDs as ``str(uuid.uuid4())`` spells them, in ASCII (one urandom call, ~1 us each)."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = raw[6::16].translate(_VERSION)
    raw[8::16] = raw[8::16].translate(_VARIANT)
    h = raw.hex().encode("ascii")
    return [
        b"%b-%b-%b-%b-%b"
        % (h[i : i + 8], h[i + 8 : i + 12], h[i + 12 : i + 16], h[i + 16 : i + 20], h[i + 20 : i + 32])
        for i in range(0, 32 * n, 32)
    ]


def file_name(t: float) -> str:
    """A capture file's name from its first record's time: ``<mm>-<ss>-<ms>-<uuid>.jsonl`` (UTC)."""
    sec = int(t)
    return f"{time.strftime('%M-%S', time.gmtime(sec))}-{int((t - sec) * 1000):03d}-{event_ids(1)[0].decode()}.jsonl"


class Encoder:
    """Turns queued invocations into (file key, time, line): the line in ASCII bytes, ending in a newline, so a
    file is one ``b"".join`` of its lines. Keeps small caches between batches."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = b""
        self._hour = ""
        # (content type, mode, JSON types, CSV types) -> (the payload's text up to its data, its encoding)
        self._types: dict[tuple[str, str, frozenset[str], frozenset[str]], tuple[bytes, str]] = {}

    def encode(self, items: Iterable[Item], n: int) -> list[tuple[Key, float, bytes]]:
        """The lines of ``n`` items, in order."""
        out = []
        for (plan, endpoint, variant, t, ctype, body, rtype, reply), eid in zip(items, event_ids(n), strict=True):
            if int(t) != self._second:  # records come in time order: one strftime a second, not per record
                self._second = int(t)
                gm = time.gmtime(self._second)
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", gm).encode("ascii")
                self._hour = time.strftime("%Y/%m/%d/%H", gm)
            if plan.inputs and plan.outputs:
                data = (
                    b'"endpointInput": '
                    + self._payload(plan, ctype, body, "INPUT")
                    + b', "endpointOutput": '
                    + self._payload(plan, rtype, reply, "OUTPUT")
                )
            elif plan.inputs:
                data = b'"endpointInput": ' + self._payload(plan, ctype, body, "INPUT")
            else:
                data = b'"endpointOutput": ' + self._payload(plan, rtype, reply, "OUTPUT")
            line = _LINE % (data, eid, self._stamp)
            out.append(((plan.destination, endpoint, variant, self._hour), t, line))
        return out

    def _payload(self, plan: Sampled, content_type: str, data: bytes, mode: str) -> bytes:
        key = (content_type, mode, plan.json, plan.csv)
        try:
            head, encoding = self._types[key]
        except KeyError:
            if len(self._types) >= _TYPES_MAX:
                self._types.clear()
            media = content_type.split(";", 1)[0].strip().lower()
            encoding = "JSON" if media in plan.json else "CSV" if media in plan.csv else "BASE64"
            quoted = encode_basestring_ascii(content_type)
            head = f'{{"observedContentType": {quoted}, "mode": "{mode}", "data": '.encode("ascii")
            self._types[key] = head, encoding
        if encoding != "BASE64":
            try:
                text = encode_basestring_ascii(data.decode("utf-8")).encode("ascii")
                return head + text + (b', "encoding": "JSON"}' if encoding == "JSON" else b', "encoding": "CSV"}')
            except UnicodeDecodeError:  # not text after all: SageMaker's default
                pass
        return head + b'"' + binascii.b2a_base64(data, newline=False) + b'", "encoding": "BASE64"}'


def decode(payload: dict[str, str]) -> bytes:
    """A captured body back as bytes (for readers and tests)."""
    if payload["encoding"] == "BASE64":
        try:
            return base64.b64decode(payload["data"], validate=True)
        except binascii.Error as err:
            raise ValidationError(f"captured data is not base64: {err}") from None
    return payload["data"].encode("utf-8")
