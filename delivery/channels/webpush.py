"""Web push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

Sends go through subscribers.push_endpoints.GuardedPushSession: its pooled
connections check the resolved address at connect time (and verify TLS), and
nothing here follows a redirect. Each push is one HTTP/1.1 exchange written and
read here on a connection taken from the session's own pool, rather than
`session.post`: same connections, same guard, a fraction of the CPU (requests
spends more per call than the encryption; see docs/benchmarks.md). A batch's
exchanges run from one thread on non-blocking sockets and a selector, not a
thread each (GIL hand-offs and context switches cost more than the HTTP). The VAPID
header comes from a per-origin cache (delivery.vapid) and the payload is
encrypted here with `cryptography` (one ECDH, HKDF as single HMAC blocks, one
AES-GCM record): what pywebpush does through http_ece, minus its overheads.
"""
import binascii
import hmac
import json
import os
import re
import selectors
import ssl
import threading
import time
from collections import deque
from concurrent import futures
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


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _b64decode(value):
    """base64url (padded or not) as base64.urlsafe_b64decode reads it, without its per-call overheads."""
    value = value.strip()
    return binascii.a2b_base64((value + "=" * (-len(value) % 4)).encode("ascii").translate(_URLSAFE_TO_STANDARD))


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
    ikm = hmac.digest(hmac.digest(auth_secret, shared, "sha256"),
                      b"WebPush: info\x00" + ua_public + as_public + b"\x01", "sha256")
    salt = os.urandom(16)
    prk = hmac.digest(salt, ikm, "sha256")
    cek = hmac.digest(prk, b"Content-Encoding: aes128gcm\x00\x01", "sha256")[:16]
    nonce = hmac.digest(prk, b"Content-Encoding: nonce\x00\x01", "sha256")[:12]
    # One record: the payload, then the last-record delimiter 0x02 (no padding).
    ciphertext = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    return salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(as_public)]) + as_public + ciphertext


def payload_parts(content, locale):
    """The JSON the service worker (static/tanbih/sw.js) reads, from a message's rendered push content and
    locale, as the bytes before and after the message's code: build_payload puts the code between them, and
    the messages of a campaign's chunk, which share their content, share these parts."""
    payload = {
        "title": content.get("title") or "",
        "body": content.get("body") or "",
        "url": content.get("url") or "",
        "code": "",
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
    locale = (locale or "").strip()
    if locale:
        payload["lang"] = locale
        payload["dir"] = "rtl" if locale.split("-")[0].lower() in RTL_LANGUAGES else "ltr"
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    # Inside a JSON string a quote is escaped, so this is the top-level "code" member and nothing else.
    at = text.index(b',"code":""') + len(b',"code":')
    return text[:at], text[at + 2:]


def build_payload(message, parts=None):
    """The payload of one message: `parts` (payload_parts of its content and locale) around its code."""
    before, after = parts or payload_parts(message.content or {}, message.locale)
    return before + json.dumps(message.code, ensure_ascii=False).encode() + after


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


# --- HTTP/1.1 exchanges on pooled connections, many in flight from one thread --------
# requests (and urllib3's urlopen) spend more CPU preparing and parsing one request
# than the encryption costs; a push is one small POST whose answer only needs its
# status and two headers. So each request is written in one send and its answer read
# with a minimal parser, on the guarded session's own pooled connections. The
# exchanges of a batch run on non-blocking sockets from one thread waiting on a
# selector: a thread per exchange in flight cost more CPU in GIL hand-offs and
# context switches than the HTTP itself (docs/benchmarks.md).

MAX_RESPONSE_BYTES = 64 * 1024
# While connections are being opened (in the executor's threads), how often the sending loop looks at them.
CONNECT_POLL_SECONDS = 0.005
_WAIT_ERRORS = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_DROPPED_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class StaleConnection(Exception):
    """The connection was closed before any byte of an answer arrived."""


class PushResponse:
    __slots__ = ("status", "headers", "body", "keep_alive")

    def __init__(self, status, headers, body, keep_alive):
        self.status, self.headers, self.body, self.keep_alive = status, headers, body, keep_alive


def request_head(host, headers):
    """The header lines of a push request, from Host to the last header before Content-Length."""
    lines = [f"Host: {host}", *(f"{name}: {value}" for name, value in headers.items())]
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError("A header may not contain a line break.")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def build_request(target, head, body):
    """One POST: the request line for `target`, `head` (request_head), Content-Length and the body."""
    if "\r" in target or "\n" in target or " " in target:
        raise ValueError("The request target may not contain a space or a line break.")
    return b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (target.encode("latin-1"), head, len(body), body)


class Rendering:
    """What the messages of a batch share while their content and locale are the same (a campaign's chunk):
    the payload around the code, and per push service and VAPID header, the request's header lines."""

    __slots__ = ("content", "locale", "parts", "route", "authorization", "head")

    def __init__(self, content, locale):
        self.content, self.locale = content, locale
        self.parts = payload_parts(content, locale)
        self.route = self.authorization = self.head = None

    def fits(self, content, locale):
        return locale == self.locale and content == self.content

    def request(self, route, authorization, target, body):
        if route is not self.route or authorization != self.authorization:
            self.head = request_head(route.host, push_headers(self.content, authorization))
            self.route, self.authorization = route, authorization
        return build_request(target, self.head, body)


class AnswerReader:
    """One HTTP/1.1 answer read from the pieces a socket gives.

    `feed(data)` returns the PushResponse once it is whole, else None; `closed()`
    is called when the service closed the connection and returns the answer if
    that ended it, or raises StaleConnection (nothing arrived) or ValueError.
    Interim 1xx answers are skipped; bodies by Content-Length, chunked, or until
    the connection closes, each at most MAX_RESPONSE_BYTES.
    """

    __slots__ = ("data", "seen", "status", "headers", "keep_alive", "length", "chunked", "body", "trailers")

    def __init__(self):
        self.data = b""
        self.seen = False
        self.status = None

    def feed(self, data):
        self.seen = True
        self.data = self.data + data if self.data else data
        if self.status is None and not self._read_head():
            return None
        if self.chunked:
            return self._read_chunks()
        data = self.data
        if self.length is None:  # until the service closes the connection
            if len(data) > MAX_RESPONSE_BYTES:
                return PushResponse(self.status, self.headers, data[:MAX_RESPONSE_BYTES], False)
            return None
        if len(data) < self.length:
            return None
        # Bytes beyond the answer: the connection's state is unclear, so it is not reused.
        return PushResponse(self.status, self.headers, data[:self.length],
                            self.keep_alive and len(data) == self.length)

    def closed(self):
        if not self.seen:
            raise StaleConnection()
        if self.status is not None:
            if self.chunked and self.trailers:
                return PushResponse(self.status, self.headers, self.body, False)
            if not self.chunked and self.length is None:
                return PushResponse(self.status, self.headers, self.data[:MAX_RESPONSE_BYTES], False)
        raise ValueError("The push service closed the connection mid-answer.")

    def _read_head(self):
        data = self.data
        while True:
            head_end = data.find(b"\r\n\r\n")
            if head_end < 0:
                if len(data) > MAX_RESPONSE_BYTES:
                    raise ValueError("The push service's answer has oversized headers.")
                self.data = data
                return False
            status_line, *header_lines = data[:head_end].decode("latin-1").split("\r\n")
            data = data[head_end + 4:]
            version, _, remainder = status_line.partition(" ")
            if not version.startswith("HTTP/1.") or not remainder[:3].isdigit():
                raise ValueError(f"Not an HTTP/1.x answer: {status_line[:80]!r}")
            status = int(remainder[:3])
            if not 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                break
        self.data = data
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        self.status, self.headers = status, headers
        self.keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        self.chunked = self.trailers = False
        if status in (204, 304):
            self.length = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.chunked, self.body, self.length = True, b"", None
        elif "content-length" in headers:
            self.length = int(headers["content-length"])
            if self.length > MAX_RESPONSE_BYTES or self.length < 0:
                raise ValueError("The push service's answer is oversized.")
        else:
            self.length = None
        return True

    def _read_chunks(self):
        data = self.data
        while True:
            if self.trailers:
                # Trailers (usually none) end with an empty line.
                if data.startswith(b"\r\n") or b"\r\n\r\n" in data:
                    return PushResponse(self.status, self.headers, self.body, self.keep_alive)
                self.data = data
                return None
            line_end = data.find(b"\r\n")
            if line_end < 0:
                if len(data) > MAX_RESPONSE_BYTES:
                    raise ValueError("The push service's answer is oversized.")
                self.data = data
                return None
            size = int(data[:line_end].split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                data = data[line_end + 2:]
                self.trailers = True
                continue
            if size > MAX_RESPONSE_BYTES:
                raise ValueError("The push service's answer is oversized.")
            start = line_end + 2
            if len(data) < start + size + 2:
                self.data = data
                return None
            self.body += data[start:start + size]
            if len(self.body) > MAX_RESPONSE_BYTES:
                raise ValueError("The push service's answer is oversized.")
            data = data[start + size + 2:]


def connection_error(error):
    """The DeliveryError for an exception raised while connecting or exchanging; None for one that is a bug."""
    if isinstance(error, PushEndpointRefused):
        failure = DeliveryError(str(error), permanent=True, code="endpoint_refused")
    elif isinstance(error, (TimeoutError, urllib3.exceptions.TimeoutError)):
        failure = DeliveryError(f"The push service did not answer in time: {error}", code="timeout")
    elif isinstance(error, (urllib3.exceptions.HTTPError, OSError, ValueError)):
        failure = DeliveryError(f"Could not reach the push service: {error}", code="connection")
    else:
        return None
    failure.__cause__ = error
    return failure


@dataclass(frozen=True)
class Route:
    """Where pushes for one push-service origin go: the guarded pool, the VAPID audience, the Host header."""

    pool: object
    audience: str
    host: str


class _Push:
    """One message's request on its way: which connection carries it, how much is written, its answer so far."""

    __slots__ = ("index", "pool", "request", "conn", "sock", "written", "reader", "deadline", "reused", "retried",
                 "connecting", "writing")

    def __init__(self, index, pool, request):
        self.index, self.pool, self.request = index, pool, request
        self.conn = self.sock = self.connecting = self.reader = None
        self.written = 0
        self.deadline = 0.0
        self.reused = self.retried = self.writing = False


class _Batch:
    """The sending loop of one send_many call: up to `limit` exchanges in flight on non-blocking sockets.

    Connections come from the routes' guarded pools and go back to them at the
    end; one that has to be opened is opened by `connect` in an executor thread
    (the guarded connection checks the resolved address and verifies TLS there),
    since that blocks on DNS and handshakes. A reused keep-alive connection that
    the service closed before answering is replaced once by a fresh one.
    """

    def __init__(self, backend, messages):
        self.backend = backend
        self.messages = messages
        self.results = [None] * len(messages)
        self.read_timeout = backend.timeout.read_timeout
        self.limit = backend.sends_in_flight
        self.selector = selectors.DefaultSelector()
        self.owner = {}  # conn -> the _Push it carries, or None while idle in this batch
        self.watched = set()  # sockets registered with the selector
        self.idle = {}  # pool -> conns idle in this batch
        self.held = []  # (pool, conn): every connection taken from a pool, given back at the end
        self.connecting = []  # pushes whose connection is being opened
        self.opening = []  # every connect submitted, so that none is still running when the batch ends
        self.timers = deque()  # (deadline, push) in the order requests were written
        self.active = 0

    def run(self):
        messages = self.messages
        prepare = self.backend._prepare
        total = len(messages)
        following = 0
        rendering = None
        try:
            while True:
                while self.active < self.limit and following < total:
                    index = following
                    following += 1
                    try:
                        rendering, pool, request = prepare(messages[index], rendering)
                    except DeliveryError as error:
                        self.results[index] = error
                        continue
                    self.active += 1
                    self._start(_Push(index, pool, request))
                if not self.active:
                    return self.results
                self._wait()
        finally:
            self._close()

    # --- connections ---------------------------------------------------------------

    def _start(self, push):
        conns = self.idle.get(push.pool)
        if conns:
            conn = conns.pop()
            push.reused = True
        else:
            try:
                conn = push.pool._get_conn()  # one the pool still holds open, or a new (unconnected) one
            except urllib3.exceptions.ClosedPoolError as error:
                # Its pool was evicted (more push-service origins than the session keeps): the next try opens anew.
                self.results[push.index] = connection_error(error)
                self.active -= 1
                return
            self.held.append((push.pool, conn))
            push.reused = conn.sock is not None
        push.conn = conn
        if conn.sock is None:
            self._connect(push)
        else:
            self._write(push)

    def _connect(self, push):
        self.owner[push.conn] = push
        push.deadline = 0.0  # the connection's own timeouts apply until the request is written
        push.connecting = self.backend._get_executor().submit(push.conn.connect)
        self.connecting.append(push)
        self.opening.append(push.connecting)

    def _connected(self, push):
        future, push.connecting = push.connecting, None
        error = future.exception()
        if error is not None:
            push.conn.close()
            failure = connection_error(error)
            if failure is None:
                raise error
            self._finish(push, failure, keep=False)
            return
        push.conn.sock.setblocking(False)
        self._write(push)

    def _forget(self, conn):
        self.owner.pop(conn, None)
        sock = conn.sock
        if sock is not None and sock in self.watched:
            self.watched.discard(sock)
            self.selector.unregister(sock)

    # --- one exchange --------------------------------------------------------------

    def _write(self, push):
        conn = push.conn
        sock = push.sock = conn.sock
        self.owner[conn] = push
        push.written = 0
        push.reader = AnswerReader()
        push.deadline = time.monotonic() + self.read_timeout
        self.timers.append((push.deadline, push))
        push.writing = False
        if sock not in self.watched:  # else registered by an earlier exchange of this batch
            self.selector.register(sock, selectors.EVENT_READ, conn)
            self.watched.add(sock)
        self._send(push)

    def _send(self, push):
        request = push.request
        try:
            push.written += push.sock.send(request[push.written:] if push.written else request)
        except _WAIT_ERRORS:
            pass
        except _DROPPED_ERRORS as error:
            self._dropped(push, error)
            return
        except OSError as error:
            self._failed(push, error)
            return
        writing = push.written < len(request)
        if writing != push.writing:
            push.writing = writing
            events = selectors.EVENT_READ | selectors.EVENT_WRITE if writing else selectors.EVENT_READ
            self.selector.modify(push.sock, events, push.conn)

    def _read(self, push):
        sock = push.sock
        reader = push.reader
        while True:
            try:
                data = sock.recv(65536)
            except _WAIT_ERRORS:
                return
            except _DROPPED_ERRORS as error:
                if reader.seen:
                    self._failed(push, error)
                else:
                    self._dropped(push, error)
                return
            except OSError as error:
                self._failed(push, error)
                return
            try:
                response = reader.closed() if not data else reader.feed(data)
            except StaleConnection as error:
                self._dropped(push, error)
                return
            except ValueError as error:
                self._failed(push, error)
                return
            if response is not None:
                try:
                    result = self.backend._result(response)
                except DeliveryError as error:
                    result = error
                self._finish(push, result, keep=bool(data) and response.keep_alive)
                return
            if not data:
                return
            # TLS may hold decrypted bytes the selector cannot see; a plain socket waits for the next event.
            if not getattr(sock, "pending", None) or not sock.pending():
                return

    def _dropped(self, push, error):
        """The service closed the connection before answering: once more on a fresh connection if it was reused."""
        if push.reused and not push.retried:
            push.retried = True
            push.reused = False
            self._forget(push.conn)
            push.conn.close()
            self._connect(push)
            return
        failure = DeliveryError("The push service closed the connection without answering.", code="connection")
        failure.__cause__ = error if isinstance(error, OSError) else None
        self._finish(push, failure, keep=False)

    def _failed(self, push, error):
        failure = connection_error(error)
        if failure is None:
            raise error
        self._finish(push, failure, keep=False)

    def _finish(self, push, result, *, keep):
        self.results[push.index] = result
        self.active -= 1
        conn = push.conn
        push.deadline = 0.0
        if keep:
            self.owner[conn] = None
            self.idle.setdefault(push.pool, []).append(conn)
        else:
            self._forget(conn)
            conn.close()

    # --- waiting -------------------------------------------------------------------

    def _wait(self):
        timers = self.timers
        while timers and timers[0][1].deadline != timers[0][0]:
            timers.popleft()  # answered (or written again since)
        now = time.monotonic()
        timeout = max(0.0, timers[0][0] - now) if timers else None
        if self.connecting:
            if len(self.connecting) == self.active:
                # Nothing in flight but connections being opened (each within its connect timeout): wait on them.
                futures.wait([push.connecting for push in self.connecting], return_when=futures.FIRST_COMPLETED)
                timeout = 0.0
            else:
                timeout = CONNECT_POLL_SECONDS if timeout is None else min(timeout, CONNECT_POLL_SECONDS)
        for key, events in self.selector.select(timeout):
            conn = key.data
            push = self.owner.get(conn)
            if push is None:
                self._idle_readable(conn)
                continue
            if push.written < len(push.request):
                self._send(push)
                if self.owner.get(conn) is not push:
                    continue
            if events & selectors.EVENT_READ:
                self._read(push)
        if self.connecting:
            connecting, self.connecting = self.connecting, []
            for push in connecting:
                if push.connecting.done():
                    self._connected(push)
                else:
                    self.connecting.append(push)
        now = time.monotonic()
        while timers and (timers[0][1].deadline != timers[0][0] or timers[0][0] <= now):
            deadline, push = timers.popleft()
            if push.deadline == deadline:
                self._finish(push, DeliveryError(f"The push service did not answer in {self.read_timeout:g} s.",
                                                 code="timeout"), keep=False)

    def _idle_readable(self, conn):
        """An idle keep-alive connection became readable: unless that was TLS's own bookkeeping (a session
        ticket), the service closed it or sent what no one asked for, and it is not used again."""
        try:
            conn.sock.recv(65536)  # whatever it is (nothing: closed), the connection is done with
        except _WAIT_ERRORS:
            return
        except OSError:
            pass
        self._forget(conn)
        conn.close()
        for conns in self.idle.values():
            if conn in conns:
                conns.remove(conn)
                return

    def _close(self):
        pending = [future for future in self.opening if not future.done()]
        if pending:
            futures.wait(pending)
        for pool, conn in self.held:
            if conn.sock is not None:
                busy = self.owner.get(conn) is not None
                self._forget(conn)
                if busy:
                    conn.close()  # an exchange left unfinished: the connection's state is unknown
            pool._put_conn(conn)
        self.selector.close()


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
        (result,) = _Batch(self, [message]).run()
        if isinstance(result, DeliveryError):
            raise result
        return result

    def send_many(self, messages):
        """Send with up to PUSH_SENDS_IN_FLIGHT requests in flight; results in the order of `messages`."""
        return _Batch(self, list(messages)).run()

    def _prepare(self, message, rendering=None):
        """(Rendering, pool, request bytes) for one message, or DeliveryError when it cannot be sent.

        `rendering` is the previous message's: reused when this one has the same content and locale.
        """
        subscription = message.push_subscription
        if subscription is None:
            raise DeliveryError("The message has no push subscription.", permanent=True, code="no_subscription")
        content = message.content or {}
        if rendering is None or not rendering.fits(content, message.locale):
            rendering = Rendering(content, message.locale)
        try:
            body = encrypt_payload(build_payload(message, rendering.parts), p256dh=subscription.p256dh,
                                   auth=subscription.auth)
        except (ValueError, TypeError) as error:
            raise DeliveryError(f"The subscription's keys are unusable: {error}", permanent=True,
                                code="invalid_keys") from error
        if len(body) > MAX_BODY_BYTES:
            raise DeliveryError(f"The encrypted payload is {len(body)} bytes; push services take {MAX_BODY_BYTES}.",
                                permanent=True, code="payload_too_large")
        route, target = self._route(subscription.endpoint)
        try:
            return rendering, route.pool, rendering.request(route, self.signer.authorization(origin=route.audience),
                                                            target, body)
        except ValueError as error:
            raise DeliveryError(f"The push endpoint cannot be requested: {error}", permanent=True,
                                code="invalid_endpoint") from error

    def _get_executor(self):
        if self._executor is None:
            with self._signer_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=self.sends_in_flight,
                                                        thread_name_prefix="webpush-connect")
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
