"""Authentication for the storefront API.

Secret keys come as `Authorization: Bearer tnb_sk_…` from the store's backend.
Publishable keys come as `X-Tanbih-Key: tnb_pk_…` (or `Authorization: Bearer
tnb_pk_…`) from browsers, and only from an Origin the key allows.
"""
import hmac

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from ..models import AnonymousId, ApiKey, ApiKeyKind, hash_key

MISSING_KEY_MESSAGE = (
    "Send an API key: a secret key as 'Authorization: Bearer tnb_sk_…' from your server, "
    "or a publishable key as 'X-Tanbih-Key: tnb_pk_…' from the browser."
)


class ApiKeyUser:
    """What request.user is for an API key: authenticated, not a Django user."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key):
        self.api_key = api_key
        self.pk = None

    def __str__(self):
        return f"api-key:{self.api_key.prefix}"


def _lookup(raw):
    key = ApiKey.objects.filter(key_hash=hash_key(raw), is_active=True).first()
    if key is None:
        raise exceptions.AuthenticationFailed("The API key is unknown or has been revoked.", code="invalid_key")
    # Touch last_used_at at most once a minute to keep writes off the hot path.
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = request.headers.get("X-Tanbih-Key", "").strip()
        header = request.headers.get("Authorization", "")
        if not raw and header.lower().startswith("bearer "):
            raw = header[7:].strip()
        if not raw:
            return None
        key = _lookup(raw)
        if key.kind == ApiKeyKind.PUBLISHABLE:
            origin = request.headers.get("Origin", "")
            if not key.allows_origin(origin):
                raise exceptions.PermissionDenied(
                    f"This publishable key may not be used from origin '{origin or '(none)'}'."
                )
        return ApiKeyUser(key), key

    def authenticate_header(self, request):
        return 'Bearer realm="tanbih"'


class IsSecretKey(permissions.BasePermission):
    message = "This endpoint needs a secret API key (Authorization: Bearer tnb_sk_…)."

    def has_permission(self, request, view):
        key = request.auth
        return isinstance(key, ApiKey) and key.kind == ApiKeyKind.SECRET


class IsApiKey(permissions.BasePermission):
    """Any active key: secret, or publishable from an allowed origin."""

    message = "This endpoint needs an API key."

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey)


def is_publishable(request):
    return isinstance(request.auth, ApiKey) and request.auth.kind == ApiKeyKind.PUBLISHABLE


def _identity_error(message, code):
    return exceptions.PermissionDenied({"user_hash": [exceptions.ErrorDetail(message, code)]})


def check_browser_identity(request, *, external_id, anonymous_id=None, user_hash=None, linking=False):
    """May a browser (publishable key) speak for the store customer `external_id`?

    A secret key always may. With a publishable key the browser proves it with
    `user_hash` = HMAC-SHA256(identity secret, external_id), made by the store's
    server. Keys that don't require verification let identify (`linking`) tie
    any customer id to the browser, and then let track/subscribe name that
    customer only together with a browser id already tied to them. Raises
    PermissionDenied (403) naming `user_hash` otherwise.
    """
    if not is_publishable(request) or not external_id:
        return
    key = request.auth
    if user_hash:
        if hmac.compare_digest(key.identity_hash(external_id), str(user_hash).lower()):
            return
        raise _identity_error(
            "user_hash does not match external_id; compute it on your server as the hex HMAC-SHA256 of the "
            "external_id with this key's identity secret.", "invalid_user_hash")
    if key.require_identity_verification:
        raise _identity_error(
            "This publishable key requires identity verification: send user_hash, the hex HMAC-SHA256 of the "
            "external_id with this key's identity secret, computed on your server.", "user_hash_required")
    if linking:
        return
    if anonymous_id and AnonymousId.objects.filter(value=anonymous_id, subscriber__external_id=external_id).exists():
        return
    raise _identity_error(
        "A browser may name a customer only after identify() tied its anonymous_id to them, "
        "or with user_hash.", "not_identified")
