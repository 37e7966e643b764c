"""Web push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

Sends go through subscribers.push_endpoints.GuardedPushSession: its pooled
connections check the resolved address at connect time, and nothing here
follows a redirect. The requests are made on the session's own urllib3 pools
rather than through `session.post`: same connections, same guard, a third of
the CPU per push (requests' per-call preparation costs more than the
encryption). The VAPID header comes from a per-origin cache (delivery.vapid)
and the payload is encrypted here with `cryptography` (one ECDH, two HMAC
rounds of HKDF, one AES-GCM record), which is what pywebpush does through
http_ece, minus its per-call overheads.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
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
from delivery.vapid import VapidSigner
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
        endpoint = subscription.endpoint
        headers = push_headers(content, self.signer.authorization(endpoint))
        response = self._post(endpoint, body, headers)
        return self._result(response)

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

    def _pool(self, endpoint):
        pool_kwargs = {"cert_reqs": "CERT_REQUIRED", "ca_certs": certifi.where()} \
            if endpoint.startswith("https:") else None
        return self.session.get_adapter(endpoint).poolmanager.connection_from_url(endpoint, pool_kwargs=pool_kwargs)

    def _post(self, endpoint, body, headers):
        parts = urlsplit(endpoint)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            return self._pool(endpoint).urlopen(
                "POST", path, body=body, headers=headers, timeout=self.timeout,
                redirect=False, retries=False, assert_same_host=False, preload_content=True,
            )
        except PushEndpointRefused as error:
            raise DeliveryError(str(error), permanent=True, code="endpoint_refused") from error
        except urllib3.exceptions.TimeoutError as error:
            raise DeliveryError(f"The push service did not answer in time: {error}", code="timeout") from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise DeliveryError(f"Could not reach the push service: {error}", code="connection") from error

    def _result(self, response):
        status = response.status
        if 200 <= status < 300:
            return SendResult(provider_id=response.headers.get("Location", "")[:200], status="sent",
                              detail={"status": status})
        reason = (response.data or b"")[:300].decode("utf-8", "replace")
        text = f"The push service answered {status}" + (f": {reason}" if reason else "")
        if status in (404, 410):
            # The subscription is gone for good: the outbox expires it.
            raise DeliveryError(text, permanent=True, code="410")
        if status == 429 or status >= 500:
            raise DeliveryError(text, code=str(status),
                                retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if 300 <= status < 400:
            raise DeliveryError(f"{text} (redirects are not followed)", permanent=True, code=str(status))
        # 400 malformed, 401/403 VAPID refused, 413 too large: sending again cannot help.
        raise DeliveryError(text, permanent=True, code=str(status))
