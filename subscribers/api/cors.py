"""CORS for the storefront API, decided by the publishable keys.

A browser may call /api/v1/ from an origin that some active publishable key
lists in its allowed origins. django-cors-headers asks us through its
`check_request_enabled` signal (connected in SubscribersConfig.ready); the key
itself is checked against the Origin again on every request (auth.py), so this
only decides whether the browser may read the answer.
"""
import re

from django.conf import settings

from ..models import ApiKey, ApiKeyKind


def origin_allowed_by_a_publishable_key(origin):
    if not origin or origin == "null":
        return False
    keys = ApiKey.objects.filter(kind=ApiKeyKind.PUBLISHABLE, is_active=True).only("allowed_origins")
    return any(key.allows_origin(origin) for key in keys)


def allow_publishable_key_origins(sender, request, **kwargs):
    # corsheaders also asks for paths outside CORS_URLS_REGEX; the admin and the
    # marketer pages never get CORS headers from a publishable key.
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    return origin_allowed_by_a_publishable_key(request.headers.get("Origin"))
