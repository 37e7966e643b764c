"""Celery wrappers for journeys: they take ids and call journeys.engine."""
import time

from celery import shared_task
from django.utils import timezone

from subscribers.models import Event

from . import engine

TICK_BATCH = 500
# A tick stops claiming after this long, well inside its soft time limit: a batch cut off by the limit is rolled
# back and its claim waits out the lease (found with 100,000 enrolments due at once, bench/journeys). The ticks
# celery-beat sends meanwhile go on with the rest.
TICK_BUDGET_SECONDS = 200


@shared_task(name="journeys.tasks.tick", time_limit=300, soft_time_limit=280)
def tick():
    """celery-beat, every JOURNEY_TICK_SECONDS: claim due enrolments in batches (SKIP LOCKED) and advance them."""
    now = timezone.now()
    deadline = time.monotonic() + TICK_BUDGET_SECONDS
    total = 0
    while time.monotonic() < deadline:
        ids = engine.claim_due(now, limit=TICK_BATCH)
        if not ids:
            break
        total += engine.run_due(ids, now)
    return total


@shared_task(name="journeys.tasks.handle_event", time_limit=120, soft_time_limit=100)
def handle_event(event_id):
    """An event some journey reacts to: goals, waits, triggers; the first steps run now, not at the next tick."""
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        return 0
    now = timezone.now()
    ids = engine.handle_event(event, now=now)
    for pk in ids:
        engine.advance(pk, now)
    return len(ids)


@shared_task(name="journeys.tasks.consent_revoked", time_limit=120, soft_time_limit=100)
def consent_revoked(subscriber_id, channel):
    return engine.exit_on_lost_consent(subscriber_id, channel)


@shared_task(name="journeys.tasks.scan_triggers", time_limit=1800, soft_time_limit=1700)
def scan_triggers():
    """celery-beat, every JOURNEY_TRIGGER_SCAN_SECONDS: segment entries, dates, inactivity."""
    return engine.scan_triggers()


@shared_task(name="journeys.tasks.call_webhook", bind=True, max_retries=5, time_limit=60, soft_time_limit=50)
def call_webhook(self, enrolment_id, visit):
    """A webhook step's call, retried with backoff (30 s, 1, 2, 4, 8 min) while the receiver fails."""
    outcome = engine.call_webhook(enrolment_id, visit)
    if outcome == "retrying" and self.request.retries < self.max_retries:
        raise self.retry(countdown=30 * (2 ** self.request.retries))
    return outcome
