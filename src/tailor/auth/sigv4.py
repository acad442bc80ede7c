"""AWS Signature Version 4: verify signed requests (server) and sign them (Tailor's SDK and CLI).

The canonical form is AWS's, byte for byte as botocore builds it for non-S3 services, so requests that boto3's
``sagemaker`` and ``sagemaker-runtime`` clients sign (both use signing name ``sagemaker``) verify here:

- canonical URI: the path as sent, dot segments removed, then percent-encoded once more (``safe='/~'``);
- canonical query: ``key=value`` pairs, each URI-encoded (``safe='-_.~'``), sorted;
- canonical headers: the ``SignedHeaders`` list, lower-cased, values trimmed and inner spaces collapsed;
- payload hash: ``x-amz-content-sha256`` when sent (it must equal the body's SHA-256), else SHA-256 of the body;
- string to sign: ``AWS4-HMAC-SHA256``, ``X-Amz-Date``, the scope ``date/region/sagemaker/aws4_request`` and the
  hex SHA-256 of the canonical request; key = HMAC chain over ``"AWS4"+secret``, date, region, service.

Rules beyond the arithmetic: the request must be at most 5 minutes off the server clock either way (AWS's
replay window), ``host`` and every ``x-amz-*`` header present must be signed (so none can be swapped after
signing, ``X-Amz-Target`` included), ``UNSIGNED-PAYLOAD`` is refused, and signatures compare in constant time.
Error messages are AWS's and never include a secret or the expected signature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, urlsplit

from tailor.errors import AuthError, InvalidSignatureError, UnrecognizedClientError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sagemaker"
MAX_SKEW = dt.timedelta(minutes=5)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*"
    r"Signature=(?P<sig>[0-9a-fA-F]{64})\s*$"
)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
_BAD_TOKEN = "The security token included in the request is invalid."


class IncompleteSignatureError(AuthError):
    """The Authorization header is malformed (AWS: 400 IncompleteSignatureException)."""

    http_status = 400
    code = "IncompleteSignatureException"


@dataclass(frozen=True)
class Credential:
    """What the ``Authorization`` header claims, before the signature is checked."""

    access_key_id: str
    date: str  # YYYYMMDD
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def is_sigv4(authorization: str | None) -> bool:
    return bool(authorization) and authorization.lstrip().startswith(ALGORITHM)


def parse_authorization(authorization: str) -> Credential:
    m = _AUTH_RE.match(authorization.strip())
    if not m:
        raise IncompleteSignatureError(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters "
            "in the form 'AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…'."
        )
    parts = m.group("cred").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not re.fullmatch(r"\d{8}", parts[1]) or not parts[0]:
        raise IncompleteSignatureError(
            "Credential must have the form '<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request'."
        )
    signed = tuple(m.group("signed").split(";"))
    if list(signed) != sorted(set(signed)) or any(h != h.lower() for h in signed):
        raise IncompleteSignatureError("SignedHeaders must be lower-case, unique and sorted.")
    return Credential(parts[0], parts[1], parts[2], parts[3], signed, m.group("sig").lower())


# -- canonical form --------------------------------------------------------------------------------------
def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4, and (as AWS requires) empty segments from repeated slashes dropped too.
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if out:
                out.pop()
        elif seg and seg != ".":
            out.append(seg)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def canonical_uri(raw_path: str) -> str:
    """botocore's form for non-S3 services: normalise dot segments, then URI-encode the (encoded) path again."""
    return quote(_remove_dot_segments(raw_path or "/") or "/", safe="/~")


def canonical_query(query_string: str) -> str:
    pairs = []
    for pair in query_string.split("&") if query_string else []:
        key, _, value = pair.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header_map(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name.lower(), []).append(value)
    return out


def canonical_headers(headers: dict[str, list[str]], signed: Iterable[str]) -> str:
    return "".join(f"{n}:{','.join(' '.join(v.split()) for v in headers.get(n, []))}\n" for n in signed)


def canonical_request(
    method: str, raw_path: str, query_string: str, headers: dict[str, list[str]], signed: tuple[str, ...], payload: str
) -> str:
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(query_string),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload,
        ]
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, amz_date: str, region: str, service: str, creq: str) -> str:
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    return hmac.new(signing_key(secret, amz_date[:8], region, service), sts.encode(), hashlib.sha256).hexdigest()


# -- verification ----------------------------------------------------------------------------------------
def _request_time(headers: dict[str, list[str]]) -> tuple[dt.datetime, str]:
    if "x-amz-date" in headers:
        raw = headers["x-amz-date"][0].strip()
        try:
            when = dt.datetime.strptime(raw, AMZ_DATE_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            raise IncompleteSignatureError(f"X-Amz-Date {raw!r} must have the form YYYYMMDD'T'HHMMSS'Z'.") from None
        return when, raw
    if "date" in headers:
        try:
            when = parsedate_to_datetime(headers["date"][0]).astimezone(dt.UTC)
        except (TypeError, ValueError):
            raise IncompleteSignatureError("Date header is not an RFC 1123 date.") from None
        return when, when.strftime(AMZ_DATE_FORMAT)
    raise IncompleteSignatureError(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def verify(
    *,
    method: str,
    raw_path: str,
    query_string: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    secret_of: Callable[[str], str | None],
    region: str,
    service: str = SERVICE,
    now: dt.datetime | None = None,
) -> str:
    """Check a SigV4-signed request; return the access key id it was signed with, or raise an AuthError.

    ``secret_of(access_key_id)`` returns the secret of an active key, or None for an unknown or disabled one.
    """
    hmap = _header_map(headers)
    auth = (hmap.get("authorization") or [""])[0]
    cred = parse_authorization(auth)
    when, amz_date = _request_time(hmap)
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - when) > MAX_SKEW:
        raise InvalidSignatureError(
            f"Signature expired: {amz_date} is now earlier than {(now - MAX_SKEW).strftime(AMZ_DATE_FORMAT)} "
            f"({now.strftime(AMZ_DATE_FORMAT)} - 5 min.)"
            if when < now
            else f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_SKEW).strftime(AMZ_DATE_FORMAT)} ({now.strftime(AMZ_DATE_FORMAT)} + 5 min.)"
        )
    if cred.date != amz_date[:8]:
        raise InvalidSignatureError("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date.")
    if cred.service != service:
        raise InvalidSignatureError(f"Credential should be scoped to correct service: '{service}'.")
    if cred.region != region:
        raise InvalidSignatureError(
            f"Credential should be scoped to a valid region, not '{cred.region}'; this server's region is '{region}'."
        )
    required = {"host"} | {n for n in hmap if n.startswith("x-amz-")}
    if "x-amz-date" not in hmap:
        required.add("date")
    missing = sorted(required - set(cred.signed_headers))
    if missing:
        raise InvalidSignatureError(f"Headers present in the request must be signed: {';'.join(missing)}.")
    absent = [n for n in cred.signed_headers if n not in hmap]
    if absent:
        raise InvalidSignatureError(f"Signed header(s) missing from the request: {';'.join(absent)}.")

    secret = secret_of(cred.access_key_id)
    if secret is None:
        raise UnrecognizedClientError(_BAD_TOKEN)

    body_hash = hashlib.sha256(body).hexdigest()
    claimed = hmap.get("x-amz-content-sha256", [body_hash])[0].strip().lower()
    # As bytes: compare_digest refuses str with non-ASCII characters (TypeError), and headers can hold any byte.
    if not hmac.compare_digest(claimed.encode("utf-8", "surrogatepass"), body_hash.encode()):
        # Covers UNSIGNED-PAYLOAD too: Tailor always checks the body it acts on.
        raise InvalidSignatureError("The provided 'x-amz-content-sha256' header does not match what was computed.")
    creq = canonical_request(method, raw_path, query_string, hmap, cred.signed_headers, claimed)
    expected = signature(secret, amz_date, cred.region, cred.service, creq)
    if not hmac.compare_digest(expected.encode(), cred.signature.encode()):
        raise InvalidSignatureError(_MISMATCH)
    return cred.access_key_id


# -- signing (Tailor's own SDK) ------------------------------------------------------------------------
def sign(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    access_key_id: str,
    secret: str,
    region: str,
    service: str = SERVICE,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Return ``headers`` plus ``Host``, ``X-Amz-Date``, ``X-Amz-Content-SHA256`` and ``Authorization``."""
    parts = urlsplit(url)
    amz_date = (now or dt.datetime.now(dt.UTC)).strftime(AMZ_DATE_FORMAT)
    payload = hashlib.sha256(body).hexdigest()
    out = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-amz-date", "host")}
    out["Host"] = parts.netloc
    out["X-Amz-Date"] = amz_date
    out["X-Amz-Content-SHA256"] = payload
    hmap = _header_map(out.items())
    signed = tuple(sorted(hmap))
    creq = canonical_request(method, parts.path or "/", parts.query, hmap, signed, payload)
    sig = signature(secret, amz_date, region, service, creq)
    out["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{amz_date[:8]}/{region}/{service}/aws4_request, "
        f"SignedHeaders={';'.join(signed)}, Signature={sig}"
    )
    return out
