"""Periodic triggers (segment entered, a date attribute, inactivity) and the signed webhook step."""
import json
import threading
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from journeys import engine, webhooks
from journeys.models import Enrolment, Journey, StepRun
from subscribers.models import Segment, SegmentMembership, Subscriber
from tests.journeys.test_journey_engine import abandon, on_commit, sandbox, shopper, template  # noqa: F401

pytestmark = pytest.mark.django_db

UTC = ZoneInfo("UTC")
END = {"start": "end", "steps": {"end": {"type": "exit"}}}
WAIT = {"start": "wait", "steps": {"wait": {"type": "wait", "days": 3, "next": "end"}, "end": {"type": "exit"}}}


def journey(kind, trigger, steps=END, **fields):
    made = Journey.objects.create(name=kind, trigger_kind=kind, trigger=trigger, status="active", **fields)
    engine.publish(made, steps)
    return made


# --- Entering a segment ---------------------------------------------------------------------------

def test_shoppers_who_enter_a_segment_after_the_first_scan_are_enrolled_and_may_enter_again_after_leaving():
    vip = Segment.objects.create(name="VIP", kind="static")
    already = shopper(1)
    SegmentMembership.objects.create(segment=vip, subscriber=already)
    made = journey("segment_entered", {"segment": vip.pk}, steps=WAIT)

    engine.scan_segment_entered(made, timezone.now())  # notes who is in it: nobody enters at activation
    newcomer = shopper(2)
    SegmentMembership.objects.create(segment=vip, subscriber=newcomer)
    engine.scan_segment_entered(made, timezone.now())
    engine.scan_segment_entered(made, timezone.now())

    assert list(Enrolment.objects.values_list("subscriber_id", flat=True)) == [newcomer.pk]

    Enrolment.objects.update(status="completed")
    SegmentMembership.objects.filter(subscriber=newcomer).delete()
    engine.scan_segment_entered(made, timezone.now())
    SegmentMembership.objects.create(segment=vip, subscriber=newcomer)
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        engine.scan_segment_entered(made, timezone.now())

    assert Enrolment.objects.filter(subscriber=newcomer).count() == 2


# --- A date attribute -----------------------------------------------------------------------------

def test_a_birthday_greeting_is_due_at_10_00_on_the_shoppers_own_birthday_once():
    riyadh = shopper(1, tz="Asia/Riyadh")
    new_york = shopper(2, tz="America/New_York")
    Subscriber.objects.filter(pk__in=[riyadh.pk, new_york.pk]).update(birthday=date(1990, 11, 25))
    made = journey("date_attribute", {"attribute": "birthday", "local_time": "10:00"})
    scan_at = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # 06:00 in Riyadh on the 25th; 22:00 on the 24th in New York

    engine.scan_date_attribute(made, scan_at)
    engine.scan_date_attribute(made, scan_at + timedelta(hours=1))

    [enrolment] = Enrolment.objects.filter(journey=made)
    assert enrolment.subscriber_id == riyadh.pk
    assert enrolment.next_run_at == datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 10:00 in Riyadh


def test_a_sign_up_anniversary_and_a_custom_due_date_with_an_offset():
    veteran, customer = shopper(1, tz="UTC"), shopper(2, tz="UTC")
    Subscriber.objects.filter(pk=veteran.pk).update(created_at=datetime(2024, 12, 1, 12, 0, tzinfo=UTC))
    Subscriber.objects.filter(pk=customer.pk).update(attributes={"renewal_date": "2026-12-04"})
    anniversary = journey("date_attribute", {"attribute": "created_at", "local_time": "09:00"})
    reminder = journey("date_attribute", {"attribute": "renewal_date", "offset_days": -3, "local_time": "09:00"})
    scan_at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    engine.scan_date_attribute(anniversary, scan_at)
    engine.scan_date_attribute(reminder, scan_at)

    assert list(Enrolment.objects.filter(journey=anniversary).values_list("subscriber_id", flat=True)) == [veteran.pk]
    assert list(Enrolment.objects.filter(journey=reminder).values_list("subscriber_id", flat=True)) == [customer.pk]


# --- Inactivity ----------------------------------------------------------------------------------

def test_inactive_shoppers_enter_once_per_absence_and_leave_when_they_come_back():
    away, recent = shopper(1), shopper(2)
    now = timezone.now()
    Subscriber.objects.filter(pk=away.pk).update(last_seen_at=now - timedelta(days=31))
    Subscriber.objects.filter(pk=recent.pk).update(last_seen_at=now - timedelta(days=3))
    made = journey("inactivity", {"days": 30}, steps=WAIT)

    engine.scan_inactivity(made, now)
    engine.scan_inactivity(made, now + timedelta(hours=1))

    [enrolment] = Enrolment.objects.filter(journey=made)
    assert enrolment.subscriber_id == away.pk
    Subscriber.objects.filter(pk=away.pk).update(last_seen_at=now + timedelta(hours=2))
    engine.advance(enrolment.pk, now + timedelta(days=4))
    enrolment.refresh_from_db()
    assert enrolment.status == "exited" and enrolment.exit_reason == "came back"


# --- The webhook step -------------------------------------------------------------------------------

class Receiver:
    def __init__(self, answers=()):
        self.requests, self.answers = [], list(answers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    made = Receiver()
    settings.JOURNEY_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.PUSH_ALLOWED_ENDPOINTS = [made.url]  # a loopback receiver is allowed in development only
    yield made
    made.close()


def webhook_journey(url):
    steps = {"start": "alert", "steps": {"alert": {"type": "webhook", "url": f"{url}/hooks/big-cart", "next": "end"},
                                         "end": {"type": "exit"}}}
    made = Journey.objects.create(name="Big cart alert", trigger_event="cart_abandoned", status="active")
    engine.publish(made, steps)
    return made


def test_a_webhook_step_posts_a_signed_payload_with_the_cart(receiver, on_commit):  # noqa: F811
    webhook_journey(receiver.url)
    layla = shopper(push=True)

    abandon(layla, on_commit)

    [(headers, body)] = receiver.requests
    signed_at = int(headers["X-Tanbih-Signature"].split(",")[0][2:])
    assert webhooks.verify(body, headers["X-Tanbih-Signature"], now=signed_at + 60)
    assert not webhooks.verify(body + b" ", headers["X-Tanbih-Signature"], now=signed_at + 60)
    assert not webhooks.verify(body, headers["X-Tanbih-Signature"], now=signed_at + 3600)  # too old: a replay
    payload = json.loads(body)
    assert payload["subscriber"]["external_id"] == layla.external_id
    assert payload["context"]["cart_id"] == "sc-1" and payload["step"] == "alert"
    enrolment = Enrolment.objects.get()
    assert headers["X-Tanbih-Delivery"] == f"{enrolment.pk}.1"
    assert StepRun.objects.get(step="alert").outcome == "called"


@pytest.fixture
def eager_retries():
    """Eager Celery runs a retry at once (no countdown) when it does not propagate the Retry."""
    from config.celery import app

    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


def test_a_receiver_that_fails_is_called_again_later(receiver, on_commit, eager_retries):  # noqa: F811
    receiver.answers = [503]
    webhook_journey(receiver.url)

    abandon(shopper(push=True), on_commit)

    assert len(receiver.requests) == 2  # the retry (no wait under eager Celery)
    assert receiver.requests[0][0]["X-Tanbih-Delivery"] == receiver.requests[1][0]["X-Tanbih-Delivery"]
    assert StepRun.objects.get(step="alert").outcome == "called"


def test_a_webhook_to_a_host_ops_did_not_allow_is_refused_when_the_journey_is_saved(settings):
    settings.JOURNEY_WEBHOOK_ALLOWED_HOSTS = ["hooks.shop.example"]
    made = Journey.objects.create(name="x", trigger_event="cart_abandoned")

    with pytest.raises(engine.StepsError) as refused:
        engine.publish(made, {"start": "a", "steps": {"a": {"type": "webhook", "url": "https://evil.example/x"}}})

    assert "steps.a.url" in dict(refused.value.problems)


def test_an_allowed_name_that_points_at_a_private_address_is_refused_when_called(settings, on_commit):  # noqa: F811
    settings.JOURNEY_WEBHOOK_ALLOWED_HOSTS = ["localhost"]
    settings.PUSH_ALLOWED_ENDPOINTS = []
    steps = {"start": "a", "steps": {"a": {"type": "webhook", "url": "https://localhost/hook"}}}
    made = Journey.objects.create(name="x", trigger_event="cart_abandoned", status="active")
    engine.publish(made, steps)

    abandon(shopper(push=True), on_commit)

    run = StepRun.objects.get(step="a")
    assert run.outcome == "refused" and "private, loopback or link-local" in run.detail["error"]
