"""Rollups: equal to the raw computation after random traffic rolled up in random batches, exactly once under
concurrent workers, and rebuilt from scratch to the same figures."""
import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from analytics import attribution, reports, rollups
from analytics.models import DailyRollup
from campaigns.models import Campaign, Variant
from delivery.models import MessageEvent, MessageTemplate
from journeys import engine
from journeys.models import Journey
from tests.analytics import traffic
from tests.analytics.traffic import sandbox  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]

UTC = ZoneInfo("UTC")
START = datetime(2026, 11, 2, 21, 0, tzinfo=UTC)
_occurrences = itertools.count(1)

hours = st.integers(min_value=0, max_value=71)
send = st.tuples(st.just("send"), st.integers(0, 3), st.integers(0, 3), st.sampled_from(["sms", "email", "whatsapp"]),
                 hours)
touch = st.tuples(st.sampled_from(["click", "display", "deliver", "fail", "unsubscribe"]), st.integers(0, 30),
                  st.integers(0, 5))
buy = st.tuples(st.just("order"), st.integers(0, 3), hours, st.sampled_from(["10.00", "99.50", "250.00"]),
                st.sampled_from(["SAR", "SAR", "USD"]))
roll = st.tuples(st.just("roll_up"), st.integers(1, 7))
operations = st.lists(st.one_of(send, touch, buy, roll), min_size=1, max_size=30)


def sources():
    template = MessageTemplate.objects.get_or_create(slug="offer", defaults={"name": "offer"})[0]
    campaign = Campaign.objects.create(name="Random", channels=["sms"])
    for label in "AB":
        Variant.objects.create(campaign=campaign, label=label, template=template)
    journey = Journey.objects.create(name="Random", trigger_event="cart_abandoned", status="active")
    engine.publish(journey, {"start": "sms", "steps": {
        "sms": {"type": "send", "template": "offer", "channels": ["sms"], "next": "end"},
        "end": {"type": "exit"}}})
    return campaign, journey, [("campaign", f"{campaign.pk}:A"), ("campaign", f"{campaign.pk}:B"),
                               ("journey_step", f"{journey.pk}:sms"), ("api", "")]


def play(ops, shoppers, source_list):
    messages = []
    for op in ops:
        kind = op[0]
        if kind == "send":
            _, who, source, channel, hour = op
            source_type, source_id = source_list[source]
            messages.append(traffic.sent(shoppers[who], START + timedelta(hours=hour), source_type=source_type,
                                         source_id=source_id, channel=channel, occurrence=str(next(_occurrences))))
        elif kind == "order":
            _, who, hour, value, currency = op
            made = traffic.order(shoppers[who], START + timedelta(hours=hour), value=value, currency=currency)
            attribution.attribute_order(made)
        elif kind == "roll_up":
            rollups.roll_up_pending(batch_size=op[1])
        elif messages:
            _, index, hour_after = op
            message = messages[index % len(messages)]
            at = (message.sent_at or message.queued_at) + timedelta(hours=hour_after, minutes=1)
            {"click": traffic.clicked, "display": traffic.displayed, "deliver": traffic.delivered,
             "fail": traffic.failed, "unsubscribe": traffic.unsubscribed}[kind](message, at)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])
@given(ops=operations)
def test_rollups_equal_the_raw_computation_after_random_traffic(ops):
    campaign, journey, source_list = sources()
    shoppers = [traffic.shopper(email=n % 2 == 0) for n in range(4)]

    play(ops, shoppers, source_list)
    rollups.roll_up_all(batch_size=5)
    rollups.refresh_subscriber_daily()

    assert reports.campaign_report(campaign) == reports.raw_campaign_report(campaign)
    assert reports.journey_report(journey) == reports.raw_journey_report(journey)
    for first, days in ((0, 1), (1, 2), (0, 4)):
        start = START + timedelta(days=first)
        end = start + timedelta(days=days)
        assert reports.dashboard(start, end) == reports.raw_dashboard(start, end)


def busy_campaign(n_messages=40):
    campaign, _journey, source_list = sources()
    shoppers = [traffic.shopper() for _ in range(4)]
    for n in range(n_messages):
        message = traffic.sent(shoppers[n % 4], START + timedelta(hours=n % 30), source_id=source_list[n % 2][1],
                               occurrence=str(next(_occurrences)))
        traffic.clicked(message, START + timedelta(hours=n % 30, minutes=5))
        traffic.clicked(message, START + timedelta(hours=n % 30, minutes=6))  # a second click counts once
    return campaign


def test_rebuilding_the_rollups_gives_the_same_figures():
    campaign = busy_campaign(10)
    source_id = f"{campaign.pk}:A"
    failing = traffic.sent(traffic.shopper(), START, source_id=source_id, occurrence="f")
    traffic.failed(failing, START + timedelta(minutes=1))
    traffic.sent(traffic.shopper(sms=False), START, source_id=source_id, occurrence="s")  # suppressed: no consent
    rollups.roll_up_all(batch_size=3)
    window = (START, START + timedelta(days=2))
    before = (reports.campaign_report(campaign), reports.dashboard(*window))
    DailyRollup.objects.update(sent=0)  # damage them

    rollups.rebuild()

    after = (reports.campaign_report(campaign), reports.dashboard(*window))
    assert after == before == (reports.raw_campaign_report(campaign), reports.raw_dashboard(*window))
    assert before[0]["suppressed_by_reason"] and before[1]["failures_by_reason"]
    assert not MessageEvent.objects.filter(rolled_up_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_roll_up_every_event_exactly_once(race):
    campaign = busy_campaign(40)

    def worker():
        while rollups.roll_up_pending(batch_size=7):
            pass

    assert race(worker, worker, worker, worker) == []
    assert reports.campaign_report(campaign) == reports.raw_campaign_report(campaign)
    totals = reports.campaign_report(campaign)["totals"]
    assert (totals["targeted"], totals["sent"], totals["clicked"]) == (40, 40, 40)


changes = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["sms", "email", "whatsapp"]), st.booleans(),
                             st.integers(0, 5 * 24)), min_size=1, max_size=25)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=changes)
def test_subscribers_per_channel_equal_the_consent_history_day_by_day(history):
    from subscribers import services as subscriber_services
    from subscribers.models import Source

    shoppers = [traffic.shopper(sms=False) for _ in range(3)]
    for who, channel, grant, hour in sorted(history, key=lambda change: change[3]):
        change = subscriber_services.grant_consent if grant else subscriber_services.revoke_consent
        with time_machine.travel(START + timedelta(hours=hour), tick=False):
            change(subscriber=shoppers[who], channel=channel, source=Source.API)
    first, last = rollups.local_day(START) - timedelta(days=1), rollups.local_day(START) + timedelta(days=6)

    by_day = rollups.reachable_by_day(first, last)

    assert by_day == {day: rollups.reachable_on(day) for day in rollups.days_between(first, last)}


def test_the_periodic_tasks_roll_up_attribute_and_refresh_through_celery():
    from analytics import tasks
    from analytics.models import Attribution, SubscriberDaily

    campaign = busy_campaign(4)
    buyer = traffic.shopper()
    message = traffic.sent(buyer, START, source_id=f"{campaign.pk}:A", occurrence="t")
    traffic.clicked(message, START + timedelta(minutes=5))
    made = traffic.order(buyer, START + timedelta(hours=1))

    assert tasks.sweep_attributions.delay().get() == 1
    assert tasks.roll_up.delay().get() == MessageEvent.objects.count()
    assert tasks.refresh_subscriber_daily.delay().get() >= 1
    assert tasks.refresh_lifts.delay().get() == 0  # no hold-out anywhere

    assert Attribution.objects.get(order=made).kind == "click" and SubscriberDaily.objects.exists()
    assert reports.campaign_report(campaign) == reports.raw_campaign_report(campaign)
