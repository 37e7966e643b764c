"""Per-provider token buckets shared by every worker (e.g. Twilio messages per second).

Production (REDIS_URL set): one Lua script does refill-and-take atomically in
Redis, on Redis's clock, so every worker on every machine draws from the same
bucket. The embedded default (one machine, no Redis) keeps the bucket in the
Django cache behind an exclusive file lock, which holds across the processes of
that machine.

Limits come from DELIVERY_RATE_LIMITS ("twilio=10,webpush=1000": tokens per
second per provider); the burst is one second's worth unless given as
"twilio=10/20".
"""
import fcntl
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

KEY_PREFIX = "tanbih:ratelimit:"

# KEYS[1] bucket; ARGV rate/s, burst, n. Returns the milliseconds to wait (0 = taken).
TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= n then
  tokens = tokens - n
else
  wait = math.ceil((n - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 60000)
return wait
"""


@dataclass(frozen=True)
class Limit:
    rate: float   # tokens per second
    burst: float  # bucket size


def parse_limits(text):
    """"twilio=10,webpush=1000/2000" -> {"twilio": Limit(10, 10), "webpush": Limit(1000, 2000)}"""
    limits = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        rate, _, burst = value.partition("/")
        rate = float(rate)
        if rate <= 0:
            continue
        limits[name.strip()] = Limit(rate=rate, burst=max(1.0, float(burst) if burst else rate))
    return limits


def limit_for(provider):
    limits = settings.DELIVERY_RATE_LIMITS
    if isinstance(limits, str):
        limits = parse_limits(limits)
    limit = limits.get(provider)
    if limit is not None and not isinstance(limit, Limit):
        limit = Limit(rate=float(limit), burst=max(1.0, float(limit)))
    return limit


def take(provider, n=1, *, limit=None):
    """Take `n` tokens from the provider's bucket. -> 0 when taken, else seconds to wait before asking again.

    Nothing is taken when the answer is a wait.
    """
    limit = limit or limit_for(provider)
    if limit is None:
        return 0.0
    if n > limit.burst:
        raise ValueError(f"cannot take {n} tokens from a bucket of {limit.burst}")
    if settings.REDIS_URL:
        return _take_redis(provider, n, limit)
    return _take_locked_cache(provider, n, limit)


@lru_cache(maxsize=4)
def _redis_script(url):
    import redis

    client = redis.Redis.from_url(url)
    return client.register_script(TAKE_SCRIPT)


def _take_redis(provider, n, limit):
    script = _redis_script(settings.REDIS_URL)
    wait_ms = script(keys=[KEY_PREFIX + provider], args=[limit.rate, limit.burst, n])
    return int(wait_ms) / 1000.0


def _lock_path():
    path = Path(settings.DATA_DIR) / "ratelimit.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _take_locked_cache(provider, n, limit):
    key = KEY_PREFIX + provider
    with open(_lock_path(), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            now = time.time()
            state = cache.get(key)
            state = json.loads(state) if state else {"tokens": limit.burst, "at": now}
            tokens = min(limit.burst, state["tokens"] + max(0.0, now - state["at"]) * limit.rate)
            wait = 0.0
            if tokens >= n:
                tokens -= n
            else:
                wait = (n - tokens) / limit.rate
            cache.set(key, json.dumps({"tokens": tokens, "at": now}), timeout=int(limit.burst / limit.rate) + 60)
            return wait
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reset(provider):
    """Forget a provider's bucket (tests, or after changing its limit)."""
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).delete(KEY_PREFIX + provider)
    cache.delete(KEY_PREFIX + provider)
