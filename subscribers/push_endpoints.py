"""The SSRF guard for web push endpoints.

A push subscription arrives from a browser we don't control, and the server will
later POST to its endpoint. Only https endpoints on allow-listed push-service hosts
are accepted; IP literals in private, loopback, link-local, multicast or reserved
ranges are refused unless their exact origin is in PUSH_ALLOWED_ENDPOINTS (the
local push-service emulator in tests and the demo). Delivery repeats the address
check at connect time and never follows redirects: it sends through
GuardedPushSession (below).
"""
import ipaddress
import socket
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


def _origin(parts):
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _explicitly_allowed(parts):
    """True when the URL's exact origin is in PUSH_ALLOWED_ENDPOINTS (a local emulator or receiver in development)."""
    allowed = set()
    for entry in settings.PUSH_ALLOWED_ENDPOINTS:
        entry_parts = urlsplit(entry)
        if entry_parts.scheme and entry_parts.hostname:
            allowed.add(_origin(entry_parts))
    return _origin(parts) in allowed


def is_public_address(ip):
    """True for a globally routable unicast address."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def is_development_origin(url):
    """True when `url`'s exact origin is one of PUSH_ALLOWED_ENDPOINTS."""
    return _explicitly_allowed(urlsplit(url))


def host_is_allow_listed(host, allowed=None):
    """True when `host` is in `allowed` (default PUSH_ALLOWED_HOSTS); a leading dot allows subdomains."""
    host = (host or "").lower().rstrip(".")
    for entry in settings.PUSH_ALLOWED_HOSTS if allowed is None else allowed:
        entry = entry.lower()
        if entry.startswith("."):
            if host.endswith(entry) and len(host) > len(entry):
                return True
        elif host == entry:
            return True
    return False


def validate_push_endpoint(url):
    """Raise ValidationError (with the reason) unless `url` is a push endpoint we may call."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValidationError(_("The endpoint is not a valid URL."), code="invalid_endpoint")
    if not host or parts.scheme not in ("https", "http"):
        raise ValidationError(_("The endpoint must be an https URL of a push service."), code="invalid_endpoint")
    if parts.username or parts.password:
        raise ValidationError(_("The endpoint must not carry credentials."), code="invalid_endpoint")
    if _explicitly_allowed(parts):
        return url
    if parts.scheme != "https":
        raise ValidationError(_("The endpoint must use https."), code="endpoint_not_https")
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if is_ip:
        if not is_public_address(host):
            raise ValidationError(
                _("The endpoint points at a private, loopback or link-local address."), code="endpoint_not_allowed"
            )
        raise ValidationError(_("The endpoint must name a push service host, not an IP address."),
                              code="endpoint_not_allowed")
    if not host_is_allow_listed(host):
        raise ValidationError(
            _("'%(host)s' is not an allowed push service (allowed: %(allowed)s)."),
            code="endpoint_not_allowed",
            params={"host": host, "allowed": ", ".join(settings.PUSH_ALLOWED_HOSTS)},
        )
    return url


# --- The outbound side: what delivery sends pushes through ---------------------------

class PushEndpointRefused(Exception):
    """The endpoint's host resolved to an address we never send to.

    Deliberately not an OSError: urllib3 and requests would wrap that as a
    transient connection error and retry it.
    """


def _resolve_checked(host, port, scheme):
    """Resolve `host` and return one address that may be contacted, or raise PushEndpointRefused.

    Checked at connect time (not only when the subscription was stored) so that
    DNS that changes its answer later — rebinding — can't turn a push service
    name into an internal address; the socket then connects to the very
    address that was checked.
    """
    if _explicitly_allowed(urlsplit(f"{scheme}://{_bracket(host)}:{port}")):
        return host
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return host  # let the connection fail as a normal resolution error
    for info in infos:
        address = info[4][0]
        if not is_public_address(address):
            raise PushEndpointRefused(f"{host} resolves to {address}, a private, loopback or link-local address.")
    return infos[0][4][0]


def _bracket(host):
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self):
        checked = _resolve_checked(self.host, self.port, "http")
        original, self._dns_host = self._dns_host, checked
        try:
            return super()._new_conn()
        finally:
            self._dns_host = original


class _GuardedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self):
        checked = _resolve_checked(self.host, self.port, "https")
        original, self._dns_host = self._dns_host, checked
        try:
            return super()._new_conn()
        finally:
            self._dns_host = original


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class GuardedPushSession(requests.Session):
    """A requests Session for push services: pooled connections, no redirects, no internal addresses.

    A push endpoint answering 3xx is not followed (pywebpush would follow it and
    POST elsewhere); the 3xx response comes back to the caller as a failure.
    """

    def __init__(self, pool_maxsize=32):
        super().__init__()
        self.trust_env = False  # no proxies or netrc from the environment for user-supplied URLs
        adapter = _GuardedAdapter(pool_connections=16, pool_maxsize=pool_maxsize, max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def get_redirect_target(self, response):
        return None
