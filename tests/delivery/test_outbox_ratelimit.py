"""Per-provider token buckets, shared by every worker process: in Redis, or in the file cache under a lock."""
import multiprocessing
import os

import pytest

from delivery import ratelimit

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/6"


@pytest.fixture(params=["redis", "embedded"])
def bucket_store(request, settings, tmp_path):
    if request.param == "redis":
        settings.REDIS_URL = REDIS_URL
    else:
        settings.REDIS_URL = ""
        settings.DATA_DIR = tmp_path
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                       "LOCATION": str(tmp_path / "cache")}}
    provider = f"test-{request.param}-{os.getpid()}-{request.node.name}"
    ratelimit.reset(provider)
    yield provider
    ratelimit.reset(provider)


def test_limits_are_read_as_rate_and_burst():
    limits = ratelimit.parse_limits("twilio=10, webpush=1000/4000,off=0")
    assert limits == {"twilio": ratelimit.Limit(10, 10), "webpush": ratelimit.Limit(1000, 4000)}


def test_a_full_bucket_gives_its_burst_then_says_how_long_to_wait(bucket_store):
    limit = ratelimit.Limit(rate=2, burst=3)

    granted = [ratelimit.take(bucket_store, 1, limit=limit) for _ in range(3)]
    wait = ratelimit.take(bucket_store, 1, limit=limit)

    assert granted == [0, 0, 0]
    assert 0 < wait <= 0.5


def test_asking_for_more_than_the_bucket_holds_is_an_error(bucket_store):
    with pytest.raises(ValueError):
        ratelimit.take(bucket_store, 5, limit=ratelimit.Limit(rate=1, burst=2))


def _take_many(provider, attempts, results):
    limit = ratelimit.Limit(rate=0.001, burst=20)
    results.put(sum(1 for _ in range(attempts) if ratelimit.take(provider, 1, limit=limit) == 0))


def test_worker_processes_draw_from_one_bucket(bucket_store):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_take_many, args=(bucket_store, 15, results)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    granted = [results.get(timeout=10) for _ in workers]
    # 45 asks, 20 tokens, no refill to speak of: exactly the burst is handed out, across all processes.
    assert sum(granted) == 20
