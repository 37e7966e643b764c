"""Campaigns end to end through the outbox: audience, channel order, hold-out, A/B, local time, throttle,
pause / resume / cancel, recurring schedules, and exactly-once under repeats."""
from collections import Counter
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from campaigns import engine, services
from campaigns.models import Campaign, CampaignStatus, HoldoutMember, MissedLocalTime, ScheduleKind, Variant
from delivery.channels import reset_backends
from delivery.models import Message, MessageTemplate, TemplateContent
from subscribers import services as subscriber_services
from subscribers.models import Channel, Event, Segment, SegmentMembership, Source
from tests.factories import make_subscriber, push_keys

pytestmark = pytest.mark.django_db

CHANNELS = ("push", "sms", "whatsapp", "email", "inapp")
UTC = ZoneInfo("UTC")


@pytest.fixture(autouse=True)
def sandbox(settings):
    settings.DELIVERY_BACKENDS = {channel: "delivery.channels.sandbox.SandboxBackend" for channel in CHANNELS}
    settings.QUIET_HOURS = {channel: "off" for channel in CHANNELS}
    settings.FREQUENCY_CAPS = {channel: {"day": 0, "week": 0} for channel in (*CHANNELS, "all")}
    reset_backends()
    yield
    reset_backends()


@pytest.fixture
def run_now(django_capture_on_commit_callbacks):
    """Run the outbox's after-commit hand-over to the senders (eager Celery in unit tests)."""
    def advance(campaign, now=None):
        with django_capture_on_commit_callbacks(execute=True):
            claimed = engine.claim(campaign.pk, now or timezone.now())
            assert claimed is not None, "the campaign was not due"
            return services.advance(claimed, now=now)
    return advance


def template(slug="offer", channels=("push", "sms", "email", "inapp"), title="Friday offer"):
    made = MessageTemplate.objects.create(name=slug, slug=slug)
    for channel in channels:
        TemplateContent.objects.create(template=made, channel=channel, locale="en", title=title, body=f"{title}!",
                                       subject=title, html_body=f"<p>{title}</p>")
    return made


def shopper(n, *, sms=False, push=False, email=False, tz="Asia/Riyadh"):
    subscriber = make_subscriber(f"c-{n}", phone=f"+9665{n:08d}", email=f"s{n}@example.com", timezone=tz,
                                 locale="en")
    if sms:
        subscriber_services.grant_consent(subscriber=subscriber, channel=Channel.SMS, source=Source.API)
    if email:
        subscriber_services.grant_consent(subscriber=subscriber, channel=Channel.EMAIL, source=Source.API)
    if push:
        subscriber_services.register_push_subscription(
            subscriber=subscriber, endpoint=f"https://fcm.googleapis.com/fcm/send/s{n}", **push_keys())
    return subscriber


def segment(shoppers, name="list"):
    made = Segment.objects.create(name=name, kind="static")
    SegmentMembership.objects.bulk_create([SegmentMembership(segment=made, subscriber=s) for s in shoppers])
    return made


def campaign(segments, *, channels=("push", "sms"), variants=None, exclude=(), **fields):
    made = Campaign.objects.create(name="Friday", channels=list(channels), **fields)
    made.include_segments.set(segments)
    made.exclude_segments.set(exclude)
    for label, made_template in (variants or {"A": template()}).items():
        Variant.objects.create(campaign=made, label=label, template=made_template)
    return made


def messages_of(made):
    return Message.objects.filter(source_type="campaign", source_id__in=made.source_ids())


def test_each_shopper_gets_one_message_on_the_first_channel_they_can_be_reached_on(run_now):
    both = shopper(1, sms=True, push=True)
    sms_only = shopper(2, sms=True)
    nothing = shopper(3)
    made = campaign([segment([both, sms_only, nothing])], channels=("push", "sms"))

    services.schedule_campaign(made)
    run_now(made)

    sent = {m.subscriber_id: (m.channel, m.status) for m in messages_of(made)}
    assert sent == {both.pk: ("push", "sent"), sms_only.pk: ("sms", "sent")}


def test_scheduling_twice_and_running_twice_sends_nothing_twice(run_now):
    shoppers = [shopper(n, sms=True) for n in range(5)]
    made = campaign([segment(shoppers)], channels=("sms",))

    services.schedule_campaign(made)
    with pytest.raises(engine.CampaignError):
        services.schedule_campaign(made)  # a double click on "send"
    first = run_now(made)
    Campaign.objects.filter(pk=made.pk).update(status=CampaignStatus.SCHEDULED, next_run_at=timezone.now())
    second = run_now(made)  # the scheduler ran it again (a lost lease)

    assert sum(first.written.values()) == 5 and sum(second.written.values()) == 0
    assert messages_of(made).count() == 5
    assert Counter(messages_of(made).values_list("subscriber_id", flat=True)).most_common(1)[0][1] == 1


def test_shoppers_in_an_excluded_segment_get_nothing(run_now):
    keep, drop = shopper(1, sms=True), shopper(2, sms=True)
    made = campaign([segment([keep, drop])], channels=("sms",), exclude=[segment([drop], name="recent buyers")])

    services.schedule_campaign(made)
    run_now(made)

    assert list(messages_of(made).values_list("subscriber_id", flat=True)) == [keep.pk]


def test_a_hold_out_group_is_recorded_and_receives_nothing(run_now):
    shoppers = [shopper(n, sms=True) for n in range(200)]
    made = campaign([segment(shoppers)], channels=("sms",), holdout_percent=20)

    services.schedule_campaign(made)
    run_now(made)

    held = set(HoldoutMember.objects.filter(campaign=made).values_list("subscriber_id", flat=True))
    messaged = set(messages_of(made).values_list("subscriber_id", flat=True))
    assert held and not held & messaged
    assert held | messaged == {s.pk for s in shoppers}
    assert 20 <= len(held) <= 60  # ~20% of 200, by a stable hash
    Campaign.objects.filter(pk=made.pk).update(status=CampaignStatus.SCHEDULED, next_run_at=timezone.now())
    run_now(made)
    assert set(HoldoutMember.objects.filter(campaign=made).values_list("subscriber_id", flat=True)) == held


def test_an_ab_test_sends_the_test_group_then_the_winner_by_click_rate_to_the_rest(run_now):
    shoppers = [shopper(n, sms=True) for n in range(300)]
    made = campaign([segment(shoppers)], channels=("sms",), test_percent=20, winner_wait_hours=4,
                    variants={"A": template("a", title="Copy A"), "B": template("b", title="Copy B")})

    services.schedule_campaign(made)
    started = timezone.now()
    run_now(made)
    made.refresh_from_db()
    test_messages = list(messages_of(made))
    by_variant = Counter(m.source_id for m in test_messages)

    assert made.status == CampaignStatus.TESTING
    assert 30 <= len(test_messages) <= 90  # ~20% of 300
    assert abs(by_variant[f"{made.pk}:A"] - by_variant[f"{made.pk}:B"]) <= len(test_messages) * 0.4
    # B's copy works better: its shoppers click.
    for message in test_messages:
        if message.source_id.endswith(":B"):
            Message.objects.filter(pk=message.pk).update(clicked_at=timezone.now())

    with time_machine.travel(started + timedelta(hours=4, minutes=1), tick=False):
        run_now(made, now=timezone.now())
    made.refresh_from_db()

    assert made.winner.label == "B" and made.winner_chosen_by == "automatic"
    rest = messages_of(made).exclude(pk__in=[m.pk for m in test_messages])
    assert set(rest.values_list("source_id", flat=True)) == {f"{made.pk}:B"}
    assert messages_of(made).count() == 300
    assert Counter(messages_of(made).values_list("subscriber_id", flat=True)).most_common(1)[0][1] == 1


def test_the_marketer_can_pick_the_winner_before_the_wait_is_over(run_now):
    shoppers = [shopper(n, sms=True) for n in range(50)]
    made = campaign([segment(shoppers)], channels=("sms",), test_percent=50, winner_wait_hours=24,
                    variants={"A": template("a"), "B": template("b")})
    services.schedule_campaign(made)
    run_now(made)

    services.choose_winner(made, variant=made.variants.get(label="A"), by="layla")
    run_now(made)

    made.refresh_from_db()
    assert made.winner.label == "A" and made.winner_chosen_by == "layla"
    assert messages_of(made).count() == 50


def test_conversions_pick_the_winner_when_that_is_the_goal(run_now):
    shoppers = [shopper(n, sms=True) for n in range(80)]
    made = campaign([segment(shoppers)], channels=("sms",), test_percent=100, winner_metric="conversions",
                    variants={"A": template("a"), "B": template("b")})
    services.schedule_campaign(made)
    run_now(made)
    for message in messages_of(made).filter(source_id=f"{made.pk}:A"):
        Event.objects.create(subscriber_id=message.subscriber_id, name="order_placed",
                             occurred_at=message.sent_at + timedelta(hours=2))
    late = messages_of(made).filter(source_id=f"{made.pk}:B").first()
    Event.objects.create(subscriber_id=late.subscriber_id, name="order_placed",
                         occurred_at=late.sent_at + timedelta(hours=30))  # outside the 24 h window

    results = engine.variant_results(made)

    assert results["A"]["conversion_rate"] == 1.0 and results["B"]["converted"] == 0
    assert engine.best_variant(made).label == "A"


def test_a_local_time_campaign_reaches_each_shopper_at_that_time_where_they_are(run_now):
    riyadh = shopper(1, sms=True, tz="Asia/Riyadh")
    new_york = shopper(2, sms=True, tz="America/New_York")
    made = campaign([segment([riyadh, new_york])], channels=("sms",), schedule_kind=ScheduleKind.LOCAL_TIME,
                    local_date=date(2026, 12, 4), local_time=time(13, 0))
    now = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)

    with time_machine.travel(now, tick=False):
        services.schedule_campaign(made)
        made.refresh_from_db()
        assert made.next_run_at == datetime(2026, 12, 3, 22, 50, tzinfo=UTC)  # 13:00 at UTC+14, less the lead
    with time_machine.travel(made.next_run_at, tick=False):
        run_now(made, now=timezone.now())

    send_at = dict(messages_of(made).values_list("subscriber_id", "send_at"))
    assert send_at[riyadh.pk] == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    assert send_at[new_york.pk] == datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    assert set(messages_of(made).values_list("status", flat=True)) == {"queued"}


@pytest.mark.parametrize("missed, expected", [
    (MissedLocalTime.NEXT_DAY, datetime(2026, 12, 5, 10, 0, tzinfo=UTC)),
    (MissedLocalTime.IMMEDIATELY, datetime(2026, 12, 4, 12, 0, tzinfo=UTC)),
    (MissedLocalTime.SKIP, None),
])
def test_where_the_local_time_has_passed_the_marketers_choice_applies(run_now, missed, expected):
    riyadh = shopper(1, sms=True, tz="Asia/Riyadh")
    made = campaign([segment([riyadh])], channels=("sms",), schedule_kind=ScheduleKind.LOCAL_TIME,
                    local_date=date(2026, 12, 4), local_time=time(13, 0), missed_local_time=missed)
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # 15:00 in Riyadh

    with time_machine.travel(now, tick=False):
        services.schedule_campaign(made)
        result = run_now(made, now=timezone.now())

    got = messages_of(made).values_list("send_at", flat=True).first()
    assert got == expected
    assert result.skipped == (1 if expected is None else 0)


def test_local_time_is_dst_safe_for_a_shopper_whose_clock_changed():
    # 2026-03-08: New York moves to EDT (UTC-4); 13:00 local is 17:00 UTC, not 18:00.
    assert engine.local_moment(date(2026, 3, 8), time(13, 0), "America/New_York") == datetime(
        2026, 3, 8, 17, 0, tzinfo=UTC)


def test_a_throttle_spreads_the_messages_over_the_minutes(run_now):
    shoppers = [shopper(n, sms=True) for n in range(25)]
    made = campaign([segment(shoppers)], channels=("sms",), throttle_per_minute=10)

    services.schedule_campaign(made)
    start = timezone.now()
    run_now(made, now=start)

    slots = Counter(round((at - start).total_seconds() / 60) for at in messages_of(made).values_list(
        "send_at", flat=True))
    assert slots == {0: 10, 1: 10, 2: 5}
    assert messages_of(made).filter(status="sent").count() == 10  # the rest wait for their minute


def test_a_critical_campaign_is_sent_as_transactional():
    made = campaign([segment([shopper(1, sms=True)])], channels=("sms",), is_critical=True)
    services.schedule_campaign(made)

    engine.run(made, occurrence="1", phase="all")

    assert messages_of(made).get().is_transactional is True


def test_pausing_holds_due_messages_and_resuming_sends_them(run_now, django_capture_on_commit_callbacks):
    shoppers = [shopper(n, sms=True) for n in range(6)]
    made = campaign([segment(shoppers)], channels=("sms",), throttle_per_minute=3)
    services.schedule_campaign(made)
    start = timezone.now()
    run_now(made, now=start)

    services.pause(made)
    from delivery import outbox
    with time_machine.travel(start + timedelta(minutes=1, seconds=5), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            outbox.dispatch_due(now=timezone.now())
    held = messages_of(made).filter(status="held")
    assert held.count() == 3 and set(held.values_list("status_reason", flat=True)) == {"campaign paused"}

    services.resume(made)
    with time_machine.travel(start + timedelta(minutes=1, seconds=10), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            outbox.dispatch_due(now=timezone.now())
    assert messages_of(made).filter(status="sent").count() == 6


def test_cancelling_stops_every_message_not_yet_sent_at_once(run_now):
    shoppers = [shopper(n, sms=True) for n in range(6)]
    made = campaign([segment(shoppers)], channels=("sms",), throttle_per_minute=2)
    services.schedule_campaign(made)
    run_now(made)

    cancelled = services.cancel(made, by="layla")

    assert cancelled == 4
    assert Counter(messages_of(made).values_list("status", flat=True)) == {"sent": 2, "cancelled": 4}
    made.refresh_from_db()
    assert made.status == CampaignStatus.CANCELLED and made.next_run_at is None


def test_a_campaign_is_completed_once_nothing_is_left_to_send(run_now):
    made = campaign([segment([shopper(1, sms=True)])], channels=("sms",))
    services.schedule_campaign(made)
    start = timezone.now()
    run_now(made, now=start)

    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        run_now(made, now=timezone.now())

    made.refresh_from_db()
    assert made.status == CampaignStatus.COMPLETED and made.completed_at is not None
    assert engine.progress(made)["counts"]["sent"] == 1 and engine.progress(made)["percent"] == 100


def test_a_weekly_local_time_campaign_runs_each_friday_at_18_where_each_shopper_is(run_now):
    riyadh = shopper(1, sms=True, tz="Asia/Riyadh")
    made = campaign([segment([riyadh])], channels=("sms",), schedule_kind=ScheduleKind.RECURRING,
                    recurrence="0 18 * * 5")
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    with time_machine.travel(monday, tick=False):
        services.schedule_campaign(made)
    made.refresh_from_db()
    assert made.next_run_at == datetime(2026, 12, 4, 3, 50, tzinfo=UTC)  # Friday 18:00 at UTC+14, less the lead

    with time_machine.travel(made.next_run_at, tick=False):
        run_now(made, now=timezone.now())
    assert messages_of(made).get().send_at == datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    assert messages_of(made).get().occurrence == "2026-12-04"

    Message.objects.filter(source_type="campaign").update(status="sent", sent_at=timezone.now())
    with time_machine.travel(datetime(2026, 12, 4, 16, 0, tzinfo=UTC), tick=False):
        run_now(made, now=timezone.now())
    made.refresh_from_db()
    assert made.status == CampaignStatus.SCHEDULED
    assert made.next_run_at == datetime(2026, 12, 11, 3, 50, tzinfo=UTC)


def test_a_recurring_campaign_in_a_fixed_timezone_is_driven_by_celery_beat(django_capture_on_commit_callbacks):
    from django_celery_beat.models import PeriodicTask

    made = campaign([segment([shopper(1, sms=True)])], channels=("sms",), schedule_kind=ScheduleKind.RECURRING,
                    recurrence="30 9 * * 1", recurrence_timezone="Asia/Riyadh")

    services.schedule_campaign(made)

    task = PeriodicTask.objects.get(name=f"campaign {made.pk}")
    assert task.task == "campaigns.tasks.run_recurring" and task.crontab.hour == "9"
    assert str(task.crontab.timezone) == "Asia/Riyadh"
    with time_machine.travel(datetime(2026, 11, 30, 6, 30, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            services.run_recurring(Campaign.objects.get(pk=made.pk), now=timezone.now())
    assert messages_of(made).get().occurrence == "2026-11-30T09:30"

    services.cancel(made)
    assert not PeriodicTask.objects.filter(name=f"campaign {made.pk}").exists()


@pytest.mark.parametrize("change, field", [
    ({"include": False}, "include_segments"),
    ({"channels": ["push", "whatsapp"]}, "variants"),
    ({"schedule_kind": ScheduleKind.AT}, "send_at"),
    ({"schedule_kind": ScheduleKind.RECURRING, "recurrence": "every friday"}, "recurrence"),
    ({"schedule_kind": ScheduleKind.RECURRING, "recurrence": "0 9,18 * * 5"}, "recurrence"),
])
def test_a_campaign_that_is_not_ready_is_refused_with_what_is_missing(change, field):
    include = change.pop("include", True)
    made = campaign([segment([shopper(1)])] if include else [], **change)

    with pytest.raises(engine.CampaignError) as refused:
        services.schedule_campaign(made)

    assert field in dict(refused.value.problems)
    made.refresh_from_db()
    assert made.status == CampaignStatus.DRAFT


def test_a_test_send_goes_to_the_chosen_shoppers_only_and_is_not_counted(django_capture_on_commit_callbacks):
    tester = shopper(1, sms=True)
    made = campaign([segment([shopper(2, sms=True)])], channels=("push", "sms"),
                    variants={"A": template("a"), "B": template("b")})

    with django_capture_on_commit_callbacks(execute=True):
        sent = services.send_test(made, subscribers=[tester])

    assert [(m.channel, m.subscriber_id, m.status) for m in Message.objects.filter(pk__in=[m.pk for m in sent])] \
        == [("sms", tester.pk, "sent"), ("sms", tester.pk, "sent")]
    assert not messages_of(made).exists()
    assert engine.progress(made)["total"] == 0


@pytest.mark.parametrize("day, zone_name, expected_utc", [
    (date(2026, 3, 7), "America/New_York", datetime(2026, 3, 7, 18, 0, tzinfo=UTC)),   # EST, the day before
    (date(2026, 3, 8), "America/New_York", datetime(2026, 3, 8, 17, 0, tzinfo=UTC)),   # EDT from 02:00 that day
    (date(2026, 10, 31), "America/New_York", datetime(2026, 10, 31, 17, 0, tzinfo=UTC)),
    (date(2026, 11, 1), "America/New_York", datetime(2026, 11, 1, 18, 0, tzinfo=UTC)),  # back to EST
    (date(2026, 3, 28), "Europe/London", datetime(2026, 3, 28, 13, 0, tzinfo=UTC)),     # GMT
    (date(2026, 3, 29), "Europe/London", datetime(2026, 3, 29, 12, 0, tzinfo=UTC)),     # BST
    (date(2026, 10, 25), "Europe/London", datetime(2026, 10, 25, 13, 0, tzinfo=UTC)),   # GMT again
    (date(2026, 6, 1), "Asia/Riyadh", datetime(2026, 6, 1, 10, 0, tzinfo=UTC)),         # no DST
    (date(2026, 12, 1), "Asia/Riyadh", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
])
def test_a_local_time_send_is_due_at_13_00_on_the_shoppers_clock_across_dst_changes(
        run_now, day, zone_name, expected_utc):
    made = campaign([segment([shopper(1, sms=True, tz=zone_name)])], channels=("sms",),
                    schedule_kind=ScheduleKind.LOCAL_TIME, local_date=day, local_time=time(13, 0))

    with time_machine.travel(datetime.combine(day, time(0, 0), tzinfo=UTC) - timedelta(days=1), tick=False):
        services.schedule_campaign(made)
        made.refresh_from_db()
    with time_machine.travel(made.next_run_at, tick=False):
        run_now(made, now=timezone.now())

    message = messages_of(made).get()
    assert message.send_at == expected_utc
    assert message.send_at.astimezone(ZoneInfo(zone_name)).time() == time(13, 0)
