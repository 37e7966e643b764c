"""Shared test helpers: API keys, subscribers and API clients.

Other suites import these; keep the names and signatures stable.
"""
import base64
import itertools
import os

import pytest
from rest_framework.test import APIClient

from subscribers import services
from subscribers.models import ApiKey

SHOP_ORIGIN = "https://shop.example"
_counter = itertools.count(1)


def make_secret_key(name="Store backend"):
    """A secret API key; returns (ApiKey, raw key)."""
    return ApiKey.create_secret(name)


def make_publishable_key(origins=(SHOP_ORIGIN,), require_identity_verification=True, name="Storefront"):
    """A publishable API key allowed from `origins`; returns (ApiKey, raw key)."""
    return ApiKey.create_publishable(name, allowed_origins=list(origins),
                                     require_identity_verification=require_identity_verification)


def make_subscriber(external_id=None, **fields):
    """A known subscriber through the real write path."""
    external_id = external_id or f"customer-{next(_counter)}"
    return services.upsert_subscriber(external_id=external_id, **fields)[0]


def push_keys():
    """Keys shaped like a browser's PushSubscription (65-byte P-256 point, 16-byte auth)."""
    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"p256dh": b64(b"\x04" + os.urandom(64)), "auth": b64(os.urandom(16))}


def secret_client(raw_key=None):
    """An APIClient sending a secret key (a new one when none is given)."""
    raw_key = raw_key or make_secret_key()[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def browser_client(raw_key, origin=SHOP_ORIGIN):
    """An APIClient acting as the storefront SDK: publishable key, browser Origin."""
    client = APIClient()
    headers = {"HTTP_X_TANBIH_KEY": raw_key}
    if origin:
        headers["HTTP_ORIGIN"] = origin
    client.credentials(**headers)
    return client


@pytest.fixture
def isolated_cache(settings):
    """A private in-memory cache per test, so rate-limit counters never leak between tests or runs."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"tanbih-test-{next(_counter)}"}}
    from django.core.cache import cache
    cache.clear()
    yield cache
