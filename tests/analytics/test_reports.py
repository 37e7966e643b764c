"""Reports: cart recovery through a real abandoned-cart journey, hold-out lift by hand, a campaign's and a
journey's figures."""
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine

from analytics import reports, rollups
from analytics.models import LiftRollup
from campaigns.models import Campaign, HoldoutMember, Variant
from delivery.models import Message, MessageTemplate, TemplateContent
from journeys import engine, tasks
from journeys.models import Journey
from subscribers import services as subscriber_services
from tests.analytics.traffic import clicked, failed, order, sandbox, sent, shopper, unsubscribed  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]

UTC = ZoneInfo("UTC")
START = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    def run(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)
    return run


RECOVERY = {"start": "wait-15m", "steps": {
    "wait-15m": {"type": "wait", "minutes": 15, "next": "sms"},
    "sms": {"type": "send", "template": "cart", "channels": ["sms"], "next": "end"},
    "end": {"type": "exit"},
}}


def recovery_journey():
    made = MessageTemplate.objects.create(name="cart", slug="cart")
    TemplateContent.objects.create(template=made, channel="sms", locale="en", body="Your cart is waiting")
    journey = Journey.objects.create(name="Abandoned cart", trigger_event="cart_abandoned", status="active",
                                     goal_event="order_placed")
    engine.publish(journey, RECOVERY)
    from journeys.apps import JourneysConfig
    JourneysConfig.forget_interest()
    return journey


def abandon(subscriber, cart_id, at, on_commit):
    """The storefront reports a cart at `at`; the abandonment check runs 31 minutes later (-> that moment)."""
    with time_machine.travel(at, tick=False):
        on_commit(subscriber_services.record_event, subscriber=subscriber, name="cart_updated", properties={
            "cart_id": cart_id, "items": [{"product_id": "p1", "title": "Shoes", "price": "249.00", "quantity": 1}],
            "value": "249.00", "currency": "SAR"})
    later = at + timedelta(minutes=31)
    with time_machine.travel(later, tick=False):
        on_commit(subscriber_services.detect_abandoned_carts, now=later)
    return later


def tick(at, on_commit):
    with time_machine.travel(at, tick=False):
        on_commit(tasks.tick)


def buy(subscriber, cart_id, order_id, at, on_commit):
    with time_machine.travel(at, tick=False):
        on_commit(subscriber_services.record_event, subscriber=subscriber, name="order_placed", occurred_at=at,
                  properties={"order_id": order_id, "cart_id": cart_id, "value": "249.00", "currency": "SAR"})


def test_recovery_rate_counts_carts_bought_after_a_recovery_message(on_commit, settings):
    settings.CART_ABANDON_MINUTES = 30
    journey = recovery_journey()
    recovered, ignored, quick = shopper(), shopper(), shopper()
    abandoned_at = [abandon(who, f"cart-{n}", START, on_commit) for n, who in enumerate((recovered, ignored, quick))]
    buy(quick, "cart-2", "o-quick", abandoned_at[2] + timedelta(minutes=5), on_commit)  # before any message
    tick(abandoned_at[0] + timedelta(minutes=16), on_commit)
    assert Message.objects.filter(source_type="journey_step").count() == 2  # the quick buyer left the journey
    buy(recovered, "cart-0", "o-recovered", abandoned_at[0] + timedelta(hours=3), on_commit)

    dashboard = reports.dashboard(START - timedelta(days=1), START + timedelta(days=1))

    # 3 carts abandoned; 1 bought after the SMS: rate 1/3, 249.00 recovered. The quick buyer's order came before
    # any recovery message, so it is not a recovery.
    assert dashboard["recovery"] == {"abandoned": 3, "recovered": 1, "rate": pytest.approx(1 / 3),
                                     "revenue": Decimal("249.00")}
    report = reports.journey_report(journey)
    assert report["recovery"] == {"abandoned": 3, "recovered": 1, "rate": pytest.approx(1 / 3),
                                  "revenue": Decimal("249.00")}
    # The quick buyer reached the goal inside the journey; the recovered shopper's journey had ended at its exit.
    assert report["enrolments"]["entered"] == 3 and report["enrolments"]["converted"] == 1
    rollups.roll_up_all()
    [step] = report_steps = reports.journey_report(journey)["steps"]
    assert report_steps == reports.raw_journey_report(journey)["steps"]
    assert (step["key"], step["targeted"], step["sent"]) == ("sms", 2, 2)


def campaign_with_holdout():
    template = MessageTemplate.objects.create(name="offer", slug="offer")
    campaign = Campaign.objects.create(name="Friday", channels=["sms"], holdout_percent=20,
                                       conversion_window_hours=24)
    Variant.objects.create(campaign=campaign, label="A", template=template)
    return campaign


def converts(subscriber, at):
    with time_machine.travel(at, tick=False):
        subscriber_services.record_event(subscriber=subscriber, name="order_placed", occurred_at=at,
                                         properties={"value": "10.00"})


def test_lift_compares_the_messaged_with_the_hold_out_within_the_conversion_window():
    campaign = campaign_with_holdout()
    source_id = f"{campaign.pk}:A"
    messaged = [shopper() for _ in range(4)]
    control = [shopper() for _ in range(4)]
    for who in messaged:
        sent(who, START, source_id=source_id)
    for who in control:
        HoldoutMember.objects.create(campaign=campaign, occurrence="1", subscriber=who, added_at=START)
    converts(messaged[0], START + timedelta(hours=2))
    converts(messaged[1], START + timedelta(hours=23))
    converts(messaged[2], START + timedelta(hours=25))  # after the 24-hour window: not a conversion
    converts(messaged[0], START + timedelta(hours=3))  # a second order: still one converted shopper
    converts(control[0], START + timedelta(hours=5))
    converts(control[1], START - timedelta(hours=1))  # before the run: not a conversion

    lift = reports.campaign_report(campaign)["lift"]

    assert reports.raw_campaign_report(campaign)["lift"] == lift

    # Messaged 2 of 4 converted (0.5), control 1 of 4 (0.25): lift = 0.25 (relative +100 %).
    assert (lift["messaged"], lift["messaged_converted"], lift["control"], lift["control_converted"]) == (4, 2, 4, 1)
    assert lift["lift"] == pytest.approx(0.25) and lift["relative_lift"] == pytest.approx(1.0)
    # Four shoppers a side can't show it: the interval spans 0 and the test is not significant.
    assert lift["ci_low"] < 0 < lift["ci_high"] and not lift["significant"]


def test_hold_out_figures_are_kept_until_the_run_s_window_closes():
    campaign = campaign_with_holdout()
    messaged, held_out = shopper(), shopper()
    sent(messaged, START, source_id=f"{campaign.pk}:A")
    HoldoutMember.objects.create(campaign=campaign, occurrence="1", subscriber=held_out, added_at=START)

    rollups.refresh_lifts(now=START + timedelta(hours=2))
    [row] = LiftRollup.objects.filter(campaign=campaign)
    assert (row.messaged, row.messaged_converted, row.control, row.is_final) == (1, 0, 1, False)

    converts(messaged, START + timedelta(hours=3))
    rollups.refresh_lifts(now=START + timedelta(hours=25))  # the 24-hour window closed an hour ago
    row.refresh_from_db()
    assert (row.messaged_converted, row.is_final) == (1, True)

    converts(held_out, START + timedelta(hours=4))  # a late-arriving event changes nothing once final
    assert rollups.refresh_lifts(now=START + timedelta(hours=30)) == 0
    assert reports.campaign_report(campaign)["lift"]["control_converted"] == 0


def test_a_campaign_without_a_hold_out_has_no_lift():
    template = MessageTemplate.objects.create(name="offer", slug="offer")
    campaign = Campaign.objects.create(name="Friday", channels=["sms"])
    Variant.objects.create(campaign=campaign, label="A", template=template)
    assert reports.campaign_report(campaign)["lift"] is None


def test_a_campaign_report_has_each_variant_channel_and_reason():
    template = MessageTemplate.objects.create(name="offer", slug="offer")
    campaign = Campaign.objects.create(name="Friday", channels=["sms"])
    for label in "AB":
        Variant.objects.create(campaign=campaign, label=label, template=template)
    a, b, no_consent = shopper(), shopper(), shopper(sms=False)
    first = sent(a, START, source_id=f"{campaign.pk}:A")
    second = sent(b, START, source_id=f"{campaign.pk}:B")
    sent(no_consent, START, source_id=f"{campaign.pk}:B")
    clicked(first, START + timedelta(minutes=5))
    clicked(first, START + timedelta(minutes=6))
    failed(second, START + timedelta(minutes=1))
    unsubscribed(first, START + timedelta(minutes=7))
    order(a, START + timedelta(hours=1), value="50.00")
    from analytics import attribution
    attribution.sweep()
    rollups.roll_up_all()

    report = reports.campaign_report(campaign)

    assert report == reports.raw_campaign_report(campaign)
    totals = report["totals"]
    assert (totals["targeted"], totals["sent"], totals["clicked"], totals["suppressed"], totals["failed"]) == \
        (3, 2, 1, 1, 1)
    assert (totals["converted"], totals["revenue"], totals["unsubscribed"]) == (1, Decimal("50.00"), 1)
    assert totals["ctr"] == pytest.approx(0.5) and totals["conversion_rate"] == pytest.approx(0.5)
    variant_a, variant_b = report["variants"]
    assert (variant_a["label"], variant_a["sent"], variant_a["clicked"], variant_a["revenue"]) == \
        ("A", 1, 1, Decimal("50.00"))
    assert (variant_b["label"], variant_b["sent"], variant_b["clicked"]) == ("B", 1, 0)
    assert [row["channel"] for row in report["channels"]] == ["sms"]
    assert [row["reason"] for row in report["suppressed_by_reason"]] == [
        Message.objects.get(subscriber=no_consent).status_reason]
    assert report["windows"] == {"click_window_hours": 24, "view_window_hours": 1}
    day = rollups.local_day(START)
    assert report["daily"] == [{"day": day, "sent": 2, "delivered": 1, "clicked": 1, "revenue": Decimal("50.00")}]


def test_the_dashboard_counts_prompts_subscribers_failures_and_the_top_campaign():
    template = MessageTemplate.objects.create(name="offer", slug="offer")
    campaign = Campaign.objects.create(name="Friday", channels=["sms"])
    Variant.objects.create(campaign=campaign, label="A", template=template)
    with time_machine.travel(START, tick=False):
        who = shopper()
    message = sent(who, START + timedelta(hours=1), source_id=f"{campaign.pk}:A")
    failed(sent(shopper(), START + timedelta(hours=1), source_id=f"{campaign.pk}:A"), START + timedelta(hours=2))
    clicked(message, START + timedelta(hours=2))
    for name in ("push_prompt_shown", "push_prompt_shown", "push_prompt_accepted", "push_prompt_declined"):
        subscriber_services.record_event(subscriber=who, name=name, occurred_at=START)
    rollups.roll_up_all()
    rollups.refresh_subscriber_daily(now=START + timedelta(days=1))

    dashboard = reports.dashboard(START, START + timedelta(days=1))

    assert dashboard == reports.raw_dashboard(START, START + timedelta(days=1))
    assert dashboard["push_optin"] == {"prompts_shown": 2, "accepted": 1, "rate": 0.5}
    assert dashboard["subscribers_by_channel"][0]["sms"] == 1  # granted on START's day; the others came later
    assert dashboard["failures_by_reason"] == [{"channel": "sms", "reason": "30003", "count": 1}]
    assert dashboard["top_campaigns"] == [{"id": campaign.pk, "name": "Friday", "sent": 2, "clicked": 1,
                                           "revenue": Decimal("0")}]
    assert [row["day"] for row in dashboard["daily"]] == [START.date(), START.date() + timedelta(days=1)]


def test_a_journey_report_lists_its_send_steps_in_the_order_shoppers_meet_them():
    made = MessageTemplate.objects.create(name="cart", slug="cart")
    TemplateContent.objects.create(template=made, channel="sms", locale="en", body="Your cart is waiting")
    journey = Journey.objects.create(name="Drip", trigger_event="cart_abandoned", status="active")
    # Written last-step-first, as an edited graph ends up stored.
    engine.publish(journey, {"start": "first", "steps": {
        "third": {"type": "send", "template": "cart", "channels": ["sms"], "label": "Third", "next": "end"},
        "second": {"type": "send", "template": "cart", "channels": ["sms"], "label": "Second", "next": "third"},
        "end": {"type": "exit"},
        "first": {"type": "send", "template": "cart", "channels": ["sms"], "label": "First", "next": "second"},
    }})
    report = reports.journey_report(journey)
    assert [step["label"] for step in report["steps"]] == ["First", "Second", "Third"]
    assert [step["key"] for step in reports.raw_journey_report(journey)["steps"]] == ["first", "second", "third"]
