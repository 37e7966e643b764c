"""VAPID (RFC 8292): the signed token that tells a push service which server sends.

A push service only checks that the JWT's `aud` is its own origin, that `exp`
is less than 24 hours away and that the signature matches the key the browser
subscribed with. Nothing in the token depends on the message, so one token per
push-service origin is signed and reused until it nears expiry, instead of an
ECDSA signature per message (pywebpush signs on every call).
"""
import base64
import json
import threading
import time
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid

# Push services refuse an `exp` more than 24 hours ahead; 12 hours leaves room for clock skew.
TOKEN_LIFETIME = 12 * 3600
# A token is replaced this long before it expires, so none is sent that could expire in flight.
RENEW_BEFORE = 3600


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def push_service_origin(endpoint):
    """The `aud` of a push endpoint: scheme://host[:port] (the port only when not the default)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme}://{host}{port}"


def load_private_key(private_key):
    """An EC private key from VAPID_PRIVATE_KEY: base64url raw scalar (what generate_vapid_keys writes) or DER."""
    return Vapid.from_string(private_key).private_key


class VapidSigner:
    """Signs and caches one VAPID Authorization header per push-service origin.

    Thread-safe: a worker's sending threads share one signer. `clock` returns
    Unix seconds (time.time, which tests move with time-machine).
    """

    def __init__(self, *, private_key, subject, lifetime=TOKEN_LIFETIME, renew_before=RENEW_BEFORE, clock=time.time):
        self._key = load_private_key(private_key) if isinstance(private_key, str) else private_key
        self.public_key = b64url(self._key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
        self.subject = subject
        self.lifetime = lifetime
        self.renew_before = renew_before
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = {}  # origin -> (jwt, exp)
        self.signatures = 0  # how many tokens were signed: the cache's effect, visible to tests and the bench

    def token(self, endpoint=None, *, origin=None):
        """The JWT for the push service of `endpoint` (or `origin`), signed at most once per origin per lifetime."""
        origin = origin or push_service_origin(endpoint)
        now = self._clock()
        cached = self._tokens.get(origin)
        if cached is not None and cached[1] - now > self.renew_before:
            return cached[0]
        with self._lock:
            cached = self._tokens.get(origin)
            if cached is not None and cached[1] - now > self.renew_before:
                return cached[0]
            expires = int(now) + self.lifetime
            token = self._sign({"aud": origin, "exp": expires, "sub": self.subject})
            self._tokens[origin] = (token, expires)
            self.signatures += 1
            return token

    def authorization(self, endpoint=None, *, origin=None):
        """The Authorization header value for a push to `endpoint` (RFC 8292 "vapid" scheme).

        `origin` (what push_service_origin returns) may be given instead, by callers that already have it.
        """
        return f"vapid t={self.token(endpoint, origin=origin)}, k={self.public_key}"

    def _sign(self, claims):
        header = b64url(b'{"typ":"JWT","alg":"ES256"}')
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        r, s = decode_dss_signature(self._key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{header}.{payload}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
