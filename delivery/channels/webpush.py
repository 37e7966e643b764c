"""Web push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

Sends go through subscribers.push_endpoints.GuardedPushSession: its pooled
connections check the resolved address at connect time (and verify TLS), and
nothing here follows a redirect. Each push is one HTTP/1.1 exchange written and
read here on a connection taken from the session's own pool, rather than
`session.post`: same connections, same guard, a fraction of the CPU (requests
spends more per call than the encryption; see docs/benchmarks.md). The VAPID
header comes from a per-origin cache (delivery.vapid) and the payload is
encrypted here with `cryptography` (one ECDH, HKDF as single HMAC blocks, one
AES-GCM record): what pywebpush does through http_ece, minus its overheads.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import certifi
import urllib3
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.utils import timezone

from delivery.channels.base import ChannelBackend, DeliveryError, SendResult
from delivery.vapid import VapidSigner, push_service_origin
from subscribers.push_endpoints import GuardedPushSession, PushEndpointRefused

RECORD_SIZE = 4096
# Push services accept at most 4096 bytes of encrypted body (RFC 8030 §7.2).
MAX_BODY_BYTES = 4096
DEFAULT_TTL = 24 * 3600
URGENCIES = {"very-low", "low", "normal", "high"}
TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
RTL_LANGUAGES = {"ar", "fa", "he", "ur"}
_CURVE = ec.SECP256R1()


def _b64decode(value):
    value = value.strip()
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def encrypt_payload(payload, *, p256dh, auth):
    """The aes128gcm body (RFC 8291) of `payload` (bytes) for one subscription's keys.

    A fresh ECDH key pair per message, as the RFC requires; the salt is random.
    """
    ua_public = _b64decode(p256dh)
    auth_secret = _b64decode(auth)
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, ua_public)
    as_private = ec.generate_private_key(_CURVE)
    as_public = as_private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    shared = as_private.exchange(ec.ECDH(), ua_key)
    # HKDF with SHA-256 written out: each expansion needs a single HMAC block.
    ikm = hmac.digest(hmac.digest(auth_secret, shared, hashlib.sha256),
                      b"WebPush: info\x00" + ua_public + as_public + b"\x01", hashlib.sha256)
    salt = os.urandom(16)
    prk = hmac.digest(salt, ikm, hashlib.sha256)
    cek = hmac.digest(prk, b"Content-Encoding: aes128gcm\x00\x01", hashlib.sha256)[:16]
    nonce = hmac.digest(prk, b"Content-Encoding: nonce\x00\x01", hashlib.sha256)[:12]
    # One record: the payload, then the last-record delimiter 0x02 (no padding).
    ciphertext = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    return salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(as_public)]) + as_public + ciphertext


def build_payload(message):
    """The JSON the service worker (static/tanbih/sw.js) reads, from the message's rendered push content."""
    content = message.content or {}
    payload = {
        "title": content.get("title") or "",
        "body": content.get("body") or "",
        "url": content.get("url") or "",
        "code": message.code,
    }
    for name in ("icon", "image", "badge", "tag"):
        if content.get(name):
            payload[name] = content[name]
    actions = [
        {"action": str(item.get("action") or ""), "title": str(item.get("title") or ""), "url": item.get("url") or ""}
        for item in (content.get("actions") or [])[:2]
        if isinstance(item, dict) and item.get("action") and item.get("title")
    ]
    if actions:
        payload["actions"] = actions
    locale = (message.locale or "").strip()
    if locale:
        payload["lang"] = locale
        payload["dir"] = "rtl" if locale.split("-")[0].lower() in RTL_LANGUAGES else "ltr"
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def push_headers(content, authorization):
    """Request headers for one push: VAPID, encoding, TTL, and Urgency/Topic when the content sets them."""
    ttl = content.get("ttl")
    try:
        ttl = max(0, int(ttl)) if ttl not in (None, "") else DEFAULT_TTL
    except (TypeError, ValueError):
        ttl = DEFAULT_TTL
    headers = {
        "Authorization": authorization,
        "Content-Encoding": "aes128gcm",
        # Without it some push services (web-push-testing) read an empty body.
        "Content-Type": "application/octet-stream",
        "TTL": str(ttl),
    }
    urgency = content.get("urgency")
    if urgency in URGENCIES:
        headers["Urgency"] = urgency
    topic = content.get("topic")
    if topic and TOPIC_RE.match(str(topic)):
        headers["Topic"] = str(topic)
    return headers


def parse_retry_after(value, *, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, int((when - (now or timezone.now())).total_seconds()))


# --- One HTTP/1.1 exchange on a pooled connection ----------------------------------
# requests (and urllib3's urlopen) spend more CPU preparing and parsing one request
# than the encryption costs; a push is one small POST whose answer only needs its
# status and two headers. So the request is written in one send and the answer read
# here, on the guarded session's own pooled connections.

MAX_RESPONSE_BYTES = 64 * 1024


class StaleConnection(Exception):
    """The connection was closed before any byte of an answer arrived."""


class PushResponse:
    __slots__ = ("status", "headers", "body", "keep_alive")

    def __init__(self, status, headers, body, keep_alive):
        self.status, self.headers, self.body, self.keep_alive = status, headers, body, keep_alive


def build_request(target, host, headers, body):
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append(f"Content-Length: {len(body)}")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError("A header may not contain a line break.")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(sock, request):
    """Send one request and read its answer; raise StaleConnection if the peer closed first."""
    sock.sendall(request)
    buffer = b""
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > MAX_RESPONSE_BYTES:
                raise ValueError("The push service's answer has oversized headers.")
            data = sock.recv(65536)
            if not data:
                if not buffer:
                    raise StaleConnection()
                raise ValueError("The push service closed the connection mid-answer.")
            buffer += data
            continue
        status_line, *header_lines = buffer[:head_end].decode("latin-1").split("\r\n")
        rest = buffer[head_end + 4:]
        version, _, remainder = status_line.partition(" ")
        if not version.startswith("HTTP/1.") or not remainder[:3].isdigit():
            raise ValueError(f"Not an HTTP/1.x answer: {status_line[:80]!r}")
        status = int(remainder[:3])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            buffer = rest
            continue
        break
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if status in (204, 304):
        return PushResponse(status, headers, b"", keep_alive)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return PushResponse(status, headers, _read_chunked(sock, rest), keep_alive)
    length = headers.get("content-length")
    if length is not None:
        length = int(length)
        if length > MAX_RESPONSE_BYTES:
            raise ValueError("The push service's answer is oversized.")
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                raise ValueError("The push service closed the connection mid-answer.")
            rest += data
        return PushResponse(status, headers, rest[:length], keep_alive and len(rest) == length)
    # No length: the body runs until the service closes the connection.
    while len(rest) <= MAX_RESPONSE_BYTES:
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return PushResponse(status, headers, rest[:MAX_RESPONSE_BYTES], False)


def _read_chunked(sock, data):
    body = b""
    while True:
        line_end = data.find(b"\r\n")
        while line_end < 0:
            more = sock.recv(65536)
            if not more:
                raise ValueError("The push service closed the connection mid-answer.")
            data += more
            line_end = data.find(b"\r\n")
        size = int(data[:line_end].split(b";", 1)[0].strip() or b"0", 16)
        data = data[line_end + 2:]
        if size == 0:
            # Trailers (usually none) end with an empty line.
            while not (data.startswith(b"\r\n") or b"\r\n\r\n" in data):
                more = sock.recv(65536)
                if not more:
                    break
                data += more
            return body
        while len(data) < size + 2:
            more = sock.recv(65536)
            if not more:
                raise ValueError("The push service closed the connection mid-answer.")
            data += more
        body += data[:size]
        if len(body) > MAX_RESPONSE_BYTES:
            raise ValueError("The push service's answer is oversized.")
        data = data[size + 2:]


@dataclass(frozen=True)
class Route:
    """Where pushes for one push-service origin go: the guarded pool, the VAPID audience, the Host header."""

    pool: object
    audience: str
    host: str


class WebPushBackend(ChannelBackend):
    """Web push to a message's push subscription, many in flight per worker over pooled connections."""

    channel = "push"
    provider = "webpush"

    def __init__(self):
        self.sends_in_flight = max(1, int(getattr(settings, "PUSH_SENDS_IN_FLIGHT", 32)))
        total = float(getattr(settings, "PUSH_SEND_TIMEOUT_SECONDS", 10))
        self.timeout = urllib3.Timeout(connect=min(5.0, total), read=total)
        self.session = GuardedPushSession(pool_maxsize=self.sends_in_flight)
        self._signer = None
        self._signer_lock = threading.Lock()
        self._executor = None
        self._routes = {}

    def is_configured(self):
        return bool(settings.VAPID_PUBLIC_KEY and settings.VAPID_PRIVATE_KEY)

    @property
    def signer(self):
        if self._signer is None:
            with self._signer_lock:
                if self._signer is None:
                    if not self.is_configured():
                        raise DeliveryError("Web push is not configured (VAPID_PUBLIC_KEY / VAPID_PRIVATE_KEY).",
                                            code="not_configured")
                    self._signer = VapidSigner(private_key=settings.VAPID_PRIVATE_KEY, subject=settings.VAPID_SUBJECT)
        return self._signer

    def send(self, message):
        subscription = message.push_subscription
        if subscription is None:
            raise DeliveryError("The message has no push subscription.", permanent=True, code="no_subscription")
        content = message.content or {}
        try:
            body = encrypt_payload(build_payload(message), p256dh=subscription.p256dh, auth=subscription.auth)
        except (ValueError, TypeError) as error:
            raise DeliveryError(f"The subscription's keys are unusable: {error}", permanent=True,
                                code="invalid_keys") from error
        if len(body) > MAX_BODY_BYTES:
            raise DeliveryError(f"The encrypted payload is {len(body)} bytes; push services take {MAX_BODY_BYTES}.",
                                permanent=True, code="payload_too_large")
        route, target = self._route(subscription.endpoint)
        headers = push_headers(content, self.signer.authorization(origin=route.audience))
        return self._result(self._post(route, target, body, headers))

    def send_many(self, messages):
        """Send with up to PUSH_SENDS_IN_FLIGHT requests in flight; results in the order of `messages`."""
        messages = list(messages)
        if len(messages) <= 1:
            return super().send_many(messages)
        results = [None] * len(messages)
        positions = iter(range(len(messages)))
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    index = next(positions, None)
                if index is None:
                    return
                try:
                    results[index] = self.send(messages[index])
                except DeliveryError as error:
                    results[index] = error

        # A few long-lived loops rather than one task per message: cheaper under the GIL.
        executor = self._get_executor()
        futures = [executor.submit(work) for _ in range(min(self.sends_in_flight, len(messages)))]
        for future in futures:
            future.result()
        return results

    def _get_executor(self):
        if self._executor is None:
            with self._signer_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=self.sends_in_flight,
                                                        thread_name_prefix="webpush")
        return self._executor

    def _route(self, endpoint):
        """(Route, request target) for an endpoint; routes are kept per scheme://host:port."""
        scheme, _, rest = endpoint.partition("://")
        netloc, _, path = rest.partition("/")
        target = "/" + path.split("#", 1)[0]
        key = f"{scheme}://{netloc}"
        route = self._routes.get(key)
        if route is None or route.pool.pool is None:  # new, or its pool was evicted and closed
            parts = urlsplit(key)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise DeliveryError("The push endpoint is not an http(s) URL.", permanent=True, code="invalid_endpoint")
            pool_kwargs = {"timeout": self.timeout}
            if parts.scheme == "https":
                pool_kwargs.update(cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
            pool = self.session.get_adapter(key).poolmanager.connection_from_url(key, pool_kwargs=pool_kwargs)
            audience = push_service_origin(key)
            route = Route(pool=pool, audience=audience, host=audience.split("://", 1)[1])
            if len(self._routes) > 1000:
                self._routes.clear()
            self._routes[key] = route
        return route, target

    def _post(self, route, target, body, headers):
        request = build_request(target, route.host, headers, body)
        pool = route.pool
        for attempt in (1, 2):
            conn = pool._get_conn()
            reused = conn.sock is not None
            try:
                if conn.sock is None:
                    conn.connect()  # the guarded connection: address checked at connect time, TLS verified
                conn.sock.settimeout(self.timeout.read_timeout)
                response = exchange(conn.sock, request)
            except PushEndpointRefused as error:
                conn.close()
                pool._put_conn(conn)
                raise DeliveryError(str(error), permanent=True, code="endpoint_refused") from error
            except (StaleConnection, ConnectionResetError, BrokenPipeError):
                conn.close()
                pool._put_conn(conn)
                if reused and attempt == 1:
                    continue  # the service closed an idle keep-alive connection before reading: once more, fresh
                raise DeliveryError("The push service closed the connection without answering.", code="connection")
            except (TimeoutError, urllib3.exceptions.TimeoutError) as error:
                conn.close()
                pool._put_conn(conn)
                raise DeliveryError(f"The push service did not answer in time: {error}", code="timeout") from error
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                conn.close()
                pool._put_conn(conn)
                raise DeliveryError(f"Could not reach the push service: {error}", code="connection") from error
            if not response.keep_alive:
                conn.close()
            pool._put_conn(conn)
            return response

    def _result(self, response):
        status = response.status
        if 200 <= status < 300:
            return SendResult(provider_id=response.headers.get("location", "")[:200], status="sent",
                              detail={"status": status})
        reason = response.body[:300].decode("utf-8", "replace")
        text = f"The push service answered {status}" + (f": {reason}" if reason else "")
        if status in (404, 410):
            # The subscription is gone for good: the outbox expires it.
            raise DeliveryError(text, permanent=True, code="410")
        if status == 429 or status >= 500:
            raise DeliveryError(text, code=str(status),
                                retry_after=parse_retry_after(response.headers.get("retry-after")))
        if 300 <= status < 400:
            raise DeliveryError(f"{text} (redirects are not followed)", permanent=True, code=str(status))
        # 400 malformed, 401/403 VAPID refused, 413 too large: sending again cannot help.
        raise DeliveryError(text, permanent=True, code=str(status))
