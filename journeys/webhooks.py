"""A journey's webhook step: a signed POST to an allow-listed host (e.g. alert the sales team of a big cart).

The URL is written by a marketer, so the server only calls hosts ops allowed
(JOURNEY_WEBHOOK_ALLOWED_HOSTS, https) and connects through the same guard as web
push: the address is checked when the socket connects (no private, loopback or
link-local address, whatever DNS says then), redirects are never followed, and no
proxy settings come from the environment. Each call carries

    X-Tanbih-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">
    X-Tanbih-Delivery: <enrolment>.<visit>   (the same on a retry: deduplicate on it)

signed with JOURNEY_WEBHOOK_SECRET (derived from SECRET_KEY when empty).
"""
import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from subscribers.push_endpoints import (
    GuardedPushSession,
    PushEndpointRefused,
    host_is_allow_listed,
    is_development_origin,
)

USER_AGENT = "Tanbih-Webhook/1"


class WebhookRefused(Exception):
    """The URL is not one the server may call."""


def secret():
    configured = getattr(settings, "JOURNEY_WEBHOOK_SECRET", "")
    if configured:
        return configured.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"tanbih journey webhooks", hashlib.sha256).digest()


def sign(body, timestamp=None):
    """The X-Tanbih-Signature header for `body` (bytes)."""
    timestamp = int(timestamp if timestamp is not None else time.time())
    digest = hmac.new(secret(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(body, header, *, tolerance=300, now=None):
    """What a receiver does: True when `header` signs `body` and is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(body, timestamp), header)


def check_url(url):
    """Raise WebhookRefused with the reason unless the server may call `url`."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises
    except ValueError:
        raise WebhookRefused(_("not a valid URL.")) from None
    if parts.username or parts.password:
        raise WebhookRefused(_("a webhook URL may not carry a user name or password."))
    if not host_is_allow_listed(parts.hostname, getattr(settings, "JOURNEY_WEBHOOK_ALLOWED_HOSTS", [])):
        raise WebhookRefused(_("%(host)s is not in JOURNEY_WEBHOOK_ALLOWED_HOSTS.") % {"host": parts.hostname})
    if parts.scheme != "https" and not is_development_origin(url):
        raise WebhookRefused(_("a webhook URL must use https."))


_session = None


def _http():
    global _session
    if _session is None:
        _session = GuardedPushSession(pool_maxsize=4)
    return _session


def call(url, payload, *, delivery_id):
    """POST the signed payload; -> (status code, None) or (None, reason). Never follows a redirect."""
    check_url(url)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
               "X-Tanbih-Signature": sign(body), "X-Tanbih-Delivery": delivery_id}
    try:
        response = _http().post(url, data=body, headers=headers,
                                timeout=getattr(settings, "JOURNEY_WEBHOOK_TIMEOUT_SECONDS", 10))
    except PushEndpointRefused as refused:
        raise WebhookRefused(str(refused)) from None
    return response.status_code
