"""Rate limits per API key.

Publishable keys live in browsers, so their limit is per key *and* client IP
(scope "publishable"); secret keys are limited per key (scope "secret"). Rates
come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (env API_PUBLIC_RATE_LIMIT,
API_SECRET_RATE_LIMIT).

DRF's SimpleRateThrottle keeps a list of every request time in the cache and
rewrites it on each call, which grows with the rate (thousands of entries at
6000/min). A fixed-window counter costs one cache increment per request
whatever the rate; the price is that a client may send up to twice the rate
across a window boundary.
"""
import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from ..models import ApiKey, ApiKeyKind

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate):
    """'120/min' -> (120, 60)."""
    count, period = rate.split("/")
    return int(count), PERIODS[period.strip()[0].lower()]


def count_in_window(cache_key, *, timeout):
    """Add one to the counter `cache_key` (created with `timeout`) and return it."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # One round trip instead of Django's add + exists + incr.
        client = backend._cache.get_client(write=True)
        key = backend.make_and_validate_key(cache_key)
        pipe = client.pipeline(transaction=False)
        pipe.set(key, 0, ex=timeout, nx=True)
        pipe.incr(key)
        return pipe.execute()[1]
    if backend.add(cache_key, 1, timeout=timeout):
        return 1
    try:
        return backend.incr(cache_key)
    except ValueError:  # the window expired between add and incr
        backend.add(cache_key, 1, timeout=timeout)
        return 1


class _ApiKeyRateThrottle(BaseThrottle):
    scope = None
    kind = None

    def __init__(self):
        self.wait_seconds = None

    def identity(self, request, key):
        return str(key.pk)

    def allow_request(self, request, view):
        key = request.auth
        if not isinstance(key, ApiKey) or key.kind != self.kind:
            return True
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if not rate:
            return True
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        cache_key = f"throttle:{self.scope}:{self.identity(request, key)}:{period}:{window}"
        count = count_in_window(cache_key, timeout=period + 1)
        if count > limit:
            self.wait_seconds = (window + 1) * period - now
            return False
        return True

    def wait(self):
        return self.wait_seconds


class PublishableKeyThrottle(_ApiKeyRateThrottle):
    scope = "publishable"
    kind = ApiKeyKind.PUBLISHABLE

    def identity(self, request, key):
        return f"{key.pk}:{self.get_ident(request)}"


class SecretKeyThrottle(_ApiKeyRateThrottle):
    scope = "secret"
    kind = ApiKeyKind.SECRET
