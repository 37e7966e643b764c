"""The journey engine: triggers, every step type, goals and exits, entry rules, versions, and the scheduler."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from delivery.channels import reset_backends
from delivery.models import Message, MessageTemplate, TemplateContent
from journeys import engine, tasks
from journeys.models import Enrolment, EntryRule, Journey, StepRun
from subscribers import services as subscriber_services
from subscribers.models import Channel, Source
from tests.factories import make_subscriber, push_keys

pytestmark = pytest.mark.django_db

CHANNELS = ("push", "sms", "whatsapp", "email", "inapp")
UTC = ZoneInfo("UTC")
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def sandbox(settings):
    settings.DELIVERY_BACKENDS = {channel: "delivery.channels.sandbox.SandboxBackend" for channel in CHANNELS}
    settings.QUIET_HOURS = {channel: "off" for channel in CHANNELS}
    settings.FREQUENCY_CAPS = {channel: {"day": 0, "week": 0} for channel in (*CHANNELS, "all")}
    settings.CART_ABANDON_MINUTES = 30
    reset_backends()
    from journeys.apps import JourneysConfig
    JourneysConfig.forget_interest()
    yield
    reset_backends()
    JourneysConfig.forget_interest()


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    def run(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)
    return run


def template(slug, channels=("push", "sms", "whatsapp")):
    made = MessageTemplate.objects.create(name=slug, slug=slug)
    for channel in channels:
        TemplateContent.objects.create(
            template=made, channel=channel, locale="en", title="Your cart is saved",
            body="{{ cart.items[0].title | default: 'Your cart' }} is waiting: {{ cart.restore_url | default: shop_url }}")
    return made


ABANDONED_CART = {"start": "wait-15m", "steps": {
    "wait-15m": {"type": "wait", "minutes": 15, "next": "push"},
    "push": {"type": "send", "template": "cart", "channels": ["push"], "next": "wait-45m"},
    "wait-45m": {"type": "wait", "minutes": 45, "next": "sms"},
    "sms": {"type": "send", "template": "cart", "channels": ["whatsapp", "sms"], "unless_clicked": True,
            "next": "end"},
    "end": {"type": "exit"},
}}


def journey(steps=ABANDONED_CART, *, trigger_event="cart_abandoned", **fields):
    fields.setdefault("goal_event", "order_placed")
    made = Journey.objects.create(name="Abandoned cart", trigger_event=trigger_event, status="active", **fields)
    engine.publish(made, steps)
    return made


def shopper(n=1, *, sms=False, push=False, tz="Asia/Riyadh"):
    subscriber = make_subscriber(f"c-{n}", phone=f"+9665{n:08d}", timezone=tz, locale="en")
    if sms:
        subscriber_services.grant_consent(subscriber=subscriber, channel=Channel.SMS, source=Source.API)
    if push:
        subscriber_services.register_push_subscription(
            subscriber=subscriber, endpoint=f"https://fcm.googleapis.com/fcm/send/j{n}", **push_keys())
    return subscriber


def abandon(subscriber, on_commit, cart_id="sc-1"):
    """The storefront reports a cart, then the shopper leaves; the abandonment check runs 31 minutes later."""
    subscriber_services.record_event(subscriber=subscriber, name="cart_updated", properties={
        "cart_id": cart_id, "items": [{"product_id": "p1", "title": "Running shoes", "price": "249.00",
                                       "quantity": 1, "image": "https://shop.example/shoes.jpg"}],
        "value": "249.00", "currency": "SAR"})
    later = timezone.now() + timedelta(minutes=31)
    with time_machine.travel(later, tick=False):
        on_commit(subscriber_services.detect_abandoned_carts, now=later)
    return later


def tick_at(moment, on_commit):
    with time_machine.travel(moment, tick=False):
        return on_commit(tasks.tick)


def messages(subscriber):
    return list(Message.objects.filter(subscriber=subscriber, source_type="journey_step").order_by("pk"))


def test_an_abandoned_cart_gets_a_push_at_15_minutes_and_no_sms_without_consent_and_the_order_ends_it(on_commit):
    template("cart")
    made = journey()
    layla = shopper(push=True)

    abandoned_at = abandon(layla, on_commit)
    enrolment = Enrolment.objects.get(journey=made, subscriber=layla)
    assert enrolment.context["cart_id"] == "sc-1" and enrolment.is_waiting
    assert messages(layla) == []

    tick_at(abandoned_at + timedelta(minutes=14), on_commit)
    assert messages(layla) == []
    tick_at(abandoned_at + timedelta(minutes=15, seconds=5), on_commit)
    [push] = messages(layla)
    assert push.channel == "push" and push.status == "sent"
    assert push.content["body"].startswith("Running shoes is waiting: ")

    tick_at(abandoned_at + timedelta(minutes=61), on_commit)
    assert len(messages(layla)) == 1  # no SMS consent: the SMS step finds no channel
    assert StepRun.objects.filter(enrolment=enrolment, step="sms").get().outcome == "unreachable"
    enrolment.refresh_from_db()
    assert enrolment.status == "completed"


def test_an_order_for_the_cart_converts_the_enrolment_and_nothing_more_is_sent(on_commit):
    template("cart")
    made = journey()
    layla = shopper(sms=True)
    abandoned_at = abandon(layla, on_commit)

    with time_machine.travel(abandoned_at + timedelta(minutes=5), tick=False):
        on_commit(subscriber_services.record_event, subscriber=layla, name="order_placed",
                  properties={"order_id": "o-1", "cart_id": "sc-1", "value": "249.00"})
    tick_at(abandoned_at + timedelta(hours=2), on_commit)

    enrolment = Enrolment.objects.get(journey=made)
    assert enrolment.status == "converted" and enrolment.exit_reason == "goal: order_placed"
    assert messages(layla) == []


def test_an_order_for_another_cart_does_not_count_as_the_goal(on_commit):
    template("cart")
    made = journey()
    layla = shopper(sms=True)
    abandoned_at = abandon(layla, on_commit)

    with time_machine.travel(abandoned_at + timedelta(minutes=5), tick=False):
        on_commit(subscriber_services.record_event, subscriber=layla, name="order_placed",
                  properties={"order_id": "o-2", "cart_id": "another-cart"})

    assert Enrolment.objects.get(journey=made).status == "active"


def test_a_click_on_the_push_skips_the_sms(on_commit):
    template("cart")
    journey()
    layla = shopper(sms=True, push=True)
    abandoned_at = abandon(layla, on_commit)
    tick_at(abandoned_at + timedelta(minutes=16), on_commit)
    [push] = messages(layla)
    Message.objects.filter(pk=push.pk).update(clicked_at=timezone.now())

    tick_at(abandoned_at + timedelta(minutes=62), on_commit)

    assert [m.channel for m in messages(layla)] == ["push"]
    assert StepRun.objects.get(step="sms").outcome == "skipped_clicked"


def test_without_a_click_the_second_reminder_goes_by_whatsapp_or_sms_to_a_shopper_who_agreed(on_commit):
    template("cart")
    journey()
    layla = shopper(sms=True, push=True)
    abandoned_at = abandon(layla, on_commit)

    tick_at(abandoned_at + timedelta(minutes=16), on_commit)
    tick_at(abandoned_at + timedelta(minutes=62), on_commit)

    assert [m.channel for m in messages(layla)] == ["push", "sms"]


def test_a_step_runs_once_even_when_the_tick_runs_twice_or_a_lease_expires(on_commit):
    template("cart")
    made = journey()
    layla = shopper(push=True)
    abandoned_at = abandon(layla, on_commit)
    moment = abandoned_at + timedelta(minutes=16)

    tick_at(moment, on_commit)
    tick_at(moment, on_commit)
    enrolment = Enrolment.objects.get(journey=made)
    # A worker died after sending but before the wait was saved: the step runs again with the same visit.
    Enrolment.objects.filter(pk=enrolment.pk).update(step="push", is_waiting=False, visits=enrolment.visits - 1,
                                                     next_run_at=moment)
    StepRun.objects.filter(enrolment=enrolment, step="push").delete()
    tick_at(moment + timedelta(seconds=1), on_commit)

    assert len(messages(layla)) == 1


@pytest.mark.parametrize("rule, days_later, enters_again", [
    (EntryRule.EVERY_TIME, 1, True),
    (EntryRule.ONCE, 40, False),
    (EntryRule.ONCE_PER_PERIOD, 10, False),
    (EntryRule.ONCE_PER_PERIOD, 40, True),
])
def test_entry_rules(on_commit, rule, days_later, enters_again):
    template("cart")
    made = journey(entry_rule=rule, entry_period_days=30, time_limit_days=0)
    layla = shopper(push=True)
    abandon(layla, on_commit, cart_id="first")
    Enrolment.objects.update(status="completed")

    with time_machine.travel(timezone.now() + timedelta(days=days_later), tick=False):
        abandon(layla, on_commit, cart_id="second")

    assert Enrolment.objects.filter(journey=made).count() == (2 if enters_again else 1)


def test_never_twice_at_once(on_commit):
    template("cart")
    made = journey()
    layla = shopper(push=True)
    abandon(layla, on_commit, cart_id="first")

    abandon(layla, on_commit, cart_id="second")

    assert Enrolment.objects.filter(journey=made).count() == 1


def test_the_daily_cap_stops_new_enrolments_for_the_day(on_commit):
    template("cart")
    made = journey(daily_cap=2)

    for n in range(3):
        abandon(shopper(n, push=True), on_commit, cart_id=f"c{n}")

    assert Enrolment.objects.filter(journey=made).count() == 2


def test_trigger_property_filters_choose_who_enters(on_commit):
    template("cart")
    made = journey(trigger_event="product_viewed", steps={"start": "end", "steps": {"end": {"type": "exit"}}},
                   trigger={"properties": [{"property": "category", "operator": "equals", "value": "shoes"}]})
    shoes, bags = shopper(1), shopper(2)

    on_commit(subscriber_services.record_event, subscriber=shoes, name="product_viewed",
              properties={"category": "shoes"})
    on_commit(subscriber_services.record_event, subscriber=bags, name="product_viewed",
              properties={"category": "bags"})

    assert list(Enrolment.objects.filter(journey=made).values_list("subscriber_id", flat=True)) == [shoes.pk]


def test_wait_for_event_takes_the_yes_branch_when_it_comes_and_the_no_branch_at_the_timeout(on_commit):
    template("cart")
    steps = {"start": "checkout?", "steps": {
        "checkout?": {"type": "wait_for_event", "event": "checkout_started", "timeout_minutes": 60,
                      "yes": "tag-buyer", "no": "tag-browser"},
        "tag-buyer": {"type": "update", "add_tags": ["checked-out"]},
        "tag-browser": {"type": "update", "add_tags": ["only-browsed"], "attributes": {"nudged": True}},
    }}
    made = journey(steps, trigger_event="signed_up", goal_event="")
    quick, slow = shopper(1), shopper(2)
    for person in (quick, slow):
        on_commit(subscriber_services.record_event, subscriber=person, name="signed_up")

    on_commit(subscriber_services.record_event, subscriber=quick, name="checkout_started")
    tick_at(timezone.now() + timedelta(minutes=61), on_commit)

    quick.refresh_from_db()
    slow.refresh_from_db()
    assert "checked-out" in quick.tags and "only-browsed" not in quick.tags
    assert "only-browsed" in slow.tags and slow.attributes["nudged"] is True
    assert set(Enrolment.objects.filter(journey=made).values_list("status", flat=True)) == {"completed"}


def test_wait_until_a_local_time_on_allowed_weekdays():
    riyadh = shopper(tz="Asia/Riyadh")
    step = {"type": "wait_until", "time": "10:00", "weekdays": [6]}  # Sundays
    tuesday_noon_riyadh = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    due = engine._local_next(step, riyadh, tuesday_noon_riyadh)

    assert due == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)  # Sunday 10:00 in Riyadh


def test_a_random_split_is_stable_and_roughly_even(on_commit):
    steps = {"start": "split", "steps": {
        "split": {"type": "split", "paths": [{"percent": 50, "next": "a"}, {"percent": 50, "next": "b"}]},
        "a": {"type": "update", "add_tags": ["a"]}, "b": {"type": "update", "add_tags": ["b"]}}}
    made = journey(steps, trigger_event="signed_up", goal_event="")
    people = [shopper(n) for n in range(60)]
    for person in people:
        on_commit(subscriber_services.record_event, subscriber=person, name="signed_up")

    outcomes = list(StepRun.objects.filter(enrolment__journey=made, step="split").values_list("outcome", flat=True))
    assert len(outcomes) == 60 and 15 <= outcomes.count("a") <= 45


def test_editing_a_journey_publishes_a_version_and_enrolments_in_flight_keep_theirs(on_commit):
    template("cart")
    made = journey()
    first = shopper(1, push=True)
    abandon(first, on_commit, cart_id="one")

    engine.publish(made, {"start": "end", "steps": {"end": {"type": "exit"}}})
    second = shopper(2, push=True)
    abandon(second, on_commit, cart_id="two")

    old, new = Enrolment.objects.get(subscriber=first), Enrolment.objects.get(subscriber=second)
    assert old.version.number == 1 and old.status == "active"
    assert new.version.number == 2 and new.status == "completed"


def test_losing_consent_on_every_channel_the_journey_uses_exits(on_commit):
    template("cart")
    made = journey({"start": "wait", "steps": {
        "wait": {"type": "wait", "hours": 1, "next": "sms"},
        "sms": {"type": "send", "template": "cart", "channels": ["sms"]}}})
    layla = shopper(sms=True)
    abandon(layla, on_commit)

    on_commit(subscriber_services.revoke_consent, subscriber=layla, channel=Channel.SMS, source=Source.KEYWORD)

    enrolment = Enrolment.objects.get(journey=made)
    assert enrolment.status == "exited" and enrolment.exit_reason == "lost consent: sms"


def test_a_journey_wide_time_limit_ends_a_long_wait(on_commit):
    template("cart")
    made = journey({"start": "wait", "steps": {"wait": {"type": "wait", "days": 40, "next": "end"},
                                               "end": {"type": "exit"}}}, time_limit_days=30)
    abandon(shopper(push=True), on_commit)

    tick_at(timezone.now() + timedelta(days=41), on_commit)

    assert Enrolment.objects.get(journey=made).exit_reason == "time limit"


def test_a_broken_graph_is_refused_with_the_path_of_each_problem():
    with pytest.raises(engine.StepsError) as refused:
        engine.validate_steps({"start": "a", "steps": {
            "a": {"type": "wait", "next": "nowhere"},
            "b": {"type": "teleport"},
            "c": {"type": "send", "template": "no-such", "channels": ["fax"]}}})

    paths = dict(refused.value.problems)
    assert {"steps.a", "steps.a.next", "steps.b.type", "steps.c.template", "steps.c.channels"} <= set(paths)


def test_events_no_journey_cares_about_enqueue_nothing(on_commit, monkeypatch):
    template("cart")
    journey()
    queued = []
    monkeypatch.setattr(tasks.handle_event, "delay", lambda event_id: queued.append(event_id))
    from journeys.apps import JourneysConfig
    JourneysConfig.forget_interest()

    on_commit(subscriber_services.record_event, subscriber=shopper(), name="page_viewed")
    on_commit(subscriber_services.record_event, subscriber=shopper(2), name="cart_abandoned")

    assert len(queued) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_ticking_at_once_run_each_due_step_exactly_once(sandbox, race):
    """Two ticks racing over 200 enrolments due at a send step (SKIP LOCKED claims, separate connections)."""
    template("cart")
    made = journey({"start": "wait", "steps": {
        "wait": {"type": "wait", "minutes": 5, "next": "push"},
        "push": {"type": "send", "template": "cart", "channels": ["inapp"], "next": "end"},
        "end": {"type": "exit"}}}, goal_event="")
    now = timezone.now()
    people = [make_subscriber(f"w-{n}") for n in range(200)]
    Enrolment.objects.bulk_create([
        Enrolment(journey=made, version=made.current_version, subscriber=person, step="wait", is_waiting=True,
                  next_run_at=now - timedelta(seconds=1), entered_at=now - timedelta(minutes=5))
        for person in people])

    def worker():
        while True:
            ids = engine.claim_due(timezone.now(), limit=50)
            if not ids:
                return
            engine.run_due(ids, timezone.now())

    assert race(worker, worker) == []
    assert Enrolment.objects.filter(journey=made, status="completed").count() == 200
    assert StepRun.objects.filter(step="push").count() == 200
    assert Message.objects.filter(source_type="journey_step").count() == 200
    assert StepRun.objects.filter(step="push").values("enrolment").distinct().count() == 200


def test_a_product_viewed_as_flat_properties_and_an_orders_tracking_link_reach_the_template(on_commit):
    made_template = MessageTemplate.objects.create(name="p", slug="p")
    TemplateContent.objects.create(template=made_template, channel="inapp", locale="en", title="{{ product.title }}",
                                   body="{{ order.tracking_url | default: 'no order' }}")
    journey({"start": "send", "steps": {"send": {"type": "send", "template": "p", "channels": ["inapp"]}}},
            trigger_event="product_viewed", goal_event="")
    viewer = shopper(1)

    on_commit(subscriber_services.record_event, subscriber=viewer, name="product_viewed",
              properties={"product_id": "p1", "title": "Running shoes", "url": "https://shop.example/p1",
                          "image": "https://shop.example/p1.jpg", "price": "249"})

    message = Message.objects.get(subscriber=viewer)
    assert message.content["title"] == "Running shoes"


def test_an_order_shipped_journey_links_to_the_carriers_tracking_page(on_commit):
    made_template = MessageTemplate.objects.create(name="t", slug="t")
    TemplateContent.objects.create(template=made_template, channel="inapp", locale="en", title="Shipped",
                                   body="Track: {{ order.tracking_url | default: 'none' }}")
    journey({"start": "send", "steps": {"send": {"type": "send", "template": "t", "channels": ["inapp"]}}},
            trigger_event="order_shipped", goal_event="")
    buyer = shopper(1)
    subscriber_services.place_order(subscriber_id=buyer.pk, order_id="o-9")

    on_commit(subscriber_services.record_event, subscriber=buyer, name="order_shipped",
              properties={"order_id": "o-9", "tracking_url": "https://track.example/o-9"})

    assert Message.objects.get(subscriber=buyer).content["body"] == "Track: https://track.example/o-9"


def test_a_tick_past_its_time_budget_claims_no_more_and_leaves_the_rest_due_for_the_next(on_commit, monkeypatch):
    template("cart")
    made = journey({"start": "push", "steps": {
        "push": {"type": "send", "template": "cart", "channels": ["inapp"], "next": "end"},
        "end": {"type": "exit"}}}, goal_event="")
    now = timezone.now()
    Enrolment.objects.bulk_create([
        Enrolment(journey=made, version=made.current_version, subscriber=make_subscriber(f"b-{n}"), step="push",
                  next_run_at=now - timedelta(seconds=1), entered_at=now) for n in range(3)])
    monkeypatch.setattr(tasks, "TICK_BUDGET_SECONDS", 0)

    assert on_commit(tasks.tick) == 0
    # Nothing claimed, so nothing waits out a lease: the next tick takes them at once.
    assert Enrolment.objects.filter(journey=made, next_run_at__lte=timezone.now()).count() == 3

    monkeypatch.setattr(tasks, "TICK_BUDGET_SECONDS", 200)
    on_commit(tasks.tick)
    assert Enrolment.objects.filter(journey=made, status="completed").count() == 3
