"""The periodic work runs on a real Celery worker over the configured broker
(Redis in CI, the embedded filesystem broker by default)."""
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from config.celery import app
from subscribers import services, tasks
from subscribers.models import Cart, CartStatus, Event


@pytest.fixture
def worker(settings, tmp_path):
    queues = ["default", "schedule", "ingest"]
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=queues,
                      shutdown_timeout=20):
        yield


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_abandonment_task_runs_on_a_real_worker_and_records_the_event(worker):
    shopper = services.upsert_subscriber(external_id="w-1")[0]
    services.record_event(
        subscriber=shopper, name="cart_updated", occurred_at=timezone.now() - timedelta(hours=2),
        properties={"cart_id": "wc-1", "items": [{"product_id": "p", "title": "T", "price": "9", "quantity": 1}]},
    )

    result = tasks.detect_abandoned_carts.apply_async()
    deadline = timezone.now() + timedelta(seconds=30)
    while timezone.now() < deadline and not Event.objects.filter(name="cart_abandoned").exists():
        import time
        time.sleep(0.2)

    assert result.id
    assert Cart.objects.get(external_id="wc-1").status == CartStatus.ABANDONED
    assert Event.objects.filter(name="cart_abandoned", subscriber=shopper).count() == 1
