"""SageMaker's data-capture records, encoded in batches for the capture writer (``tailor.hosting.capture``).

A record is the line ``json.dumps`` gives for SageMaker's dict (default separators, ASCII escapes, keys in the
order below), but built from pre-formatted pieces: per record only the body (``binascii.b2a_base64`` of the raw
bytes, or the JSON-escaped text), the event id and the inference time vary. The id is a version-4 UUID spelled
as ``str(uuid.uuid4())`` is, cut from one ``os.urandom`` call per batch; the time's text is kept per second.
Measured (``bench/bench_capture.py``, 2-core VM): ~44 us per record for ``json.dumps`` of the dict with
``uuid.uuid4()`` and ``strftime`` per record, 4-6 us this way; the format is checked against ``json.dumps`` in
``tests/hosting/test_capture.py``.
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


def event_ids(n: int) -> list[str]:
    """``n`` random version-4 UUIDs as ``str(uuid.uuid4())`` spells them (one urandom call, ~1 us each)."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = raw[6::16].translate(_VERSION)
    raw[8::16] = raw[8::16].translate(_VARIANT)
    h = raw.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def file_name(t: float) -> str:
    """A capture file's name from its first record's time: ``<mm>-<ss>-<ms>-<uuid>.jsonl`` (UTC)."""
    sec = int(t)
    return f"{time.strftime('%M-%S', time.gmtime(sec))}-{int((t - sec) * 1000):03d}-{event_ids(1)[0]}.jsonl"


class Encoder:
    """Turns queued invocations into (file key, time, line ending in a newline); keeps small caches between
    batches."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = self._hour = ""
        # (content type, mode, JSON types, CSV types) -> (the payload's text up to its data, its encoding)
        self._types: dict[tuple[str, str, frozenset[str], frozenset[str]], tuple[str, str]] = {}

    def encode(self, items: Iterable[Item], n: int) -> list[tuple[Key, float, str]]:
        """The lines of ``n`` items, in order."""
        out = []
        for (plan, endpoint, variant, t, ctype, body, rtype, reply), eid in zip(items, event_ids(n), strict=True):
            if int(t) != self._second:  # records come in time order: one strftime a second, not per record
                self._second = int(t)
                gm = time.gmtime(self._second)
                self._stamp, self._hour = time.strftime("%Y-%m-%dT%H:%M:%SZ", gm), time.strftime("%Y/%m/%d/%H", gm)
            if plan.inputs and plan.outputs:
                data = (
                    '"endpointInput": '
                    + self._payload(plan, ctype, body, "INPUT")
                    + ', "endpointOutput": '
                    + self._payload(plan, rtype, reply, "OUTPUT")
                )
            elif plan.inputs:
                data = '"endpointInput": ' + self._payload(plan, ctype, body, "INPUT")
            else:
                data = '"endpointOutput": ' + self._payload(plan, rtype, reply, "OUTPUT")
            line = (
                '{"captureData": {'
                + data
                + '}, "eventMetadata": {"eventId": "'
                + eid
                + '", "inferenceTime": "'
                + self._stamp
                + '"}, "eventVersion": "0"}\n'
            )
            out.append(((plan.destination, endpoint, variant, self._hour), t, line))
        return out

    def _payload(self, plan: Sampled, content_type: str, data: bytes, mode: str) -> str:
        key = (content_type, mode, plan.json, plan.csv)
        try:
            head, encoding = self._types[key]
        except KeyError:
            if len(self._types) >= _TYPES_MAX:
                self._types.clear()
            media = content_type.split(";", 1)[0].strip().lower()
            encoding = "JSON" if media in plan.json else "CSV" if media in plan.csv else "BASE64"
            head = f'{{"observedContentType": {encode_basestring_ascii(content_type)}, "mode": "{mode}", "data": '
            self._types[key] = head, encoding
        if encoding != "BASE64":
            try:
                return head + encode_basestring_ascii(data.decode("utf-8")) + ', "encoding": "' + encoding + '"}'
            except UnicodeDecodeError:  # not text after all: SageMaker's default
                pass
        return head + '"' + binascii.b2a_base64(data, newline=False).decode("ascii") + '", "encoding": "BASE64"}'


def decode(payload: dict[str, str]) -> bytes:
    """A captured body back as bytes (for readers and tests)."""
    if payload["encoding"] == "BASE64":
        try:
            return base64.b64decode(payload["data"], validate=True)
        except binascii.Error as err:
            raise ValidationError(f"captured data is not base64: {err}") from None
    return payload["data"].encode("utf-8")
