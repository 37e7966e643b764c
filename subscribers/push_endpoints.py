"""The SSRF guard for web push endpoints.

A push subscription arrives from a browser we don't control, and the server will
later POST to its endpoint. Only https endpoints on allow-listed push-service hosts
are accepted; IP literals in private, loopback, link-local, multicast or reserved
ranges are refused unless their exact origin is in PUSH_ALLOWED_ENDPOINTS (the
local push-service emulator in tests and the demo). Delivery repeats the address
check at connect time and never follows redirects.
"""
import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


def _origin(parts):
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _explicitly_allowed(parts):
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


def host_is_allow_listed(host):
    host = host.lower().rstrip(".")
    for entry in settings.PUSH_ALLOWED_HOSTS:
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
