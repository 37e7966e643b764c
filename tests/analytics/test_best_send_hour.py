"""Best send hour on synthetic histories, and the schedules that use it: a campaign "at each subscriber's
best hour" on a chosen day, and a journey send step "at best time"."""
import itertools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from analytics.best_hour import best_hours, peak_hour, store_pattern
from campaigns import engine as campaign_engine
from campaigns import services as campaign_services
from campaigns.models import Campaign, ScheduleKind, Variant
from delivery.models import Message, MessageTemplate, TemplateContent
from journeys import engine as journey_engine
from journeys.models import Journey
from subscribers import services as subscriber_services
from subscribers.models import Channel, Segment, SegmentMembership, Source, Subscriber
from tests.campaigns.test_campaign_engine import sandbox  # noqa: F401 - sandbox channels, no quiet hours or caps
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db

UTC = ZoneInfo("UTC")
RIYADH = ZoneInfo("Asia/Riyadh")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
_codes = itertools.count(1)


@pytest.fixture(autouse=True)
def prior_weight(settings):
    settings.PREDICTIONS_BEST_HOUR_PRIOR_WEIGHT = 5


def shopper(n, tz="Asia/Riyadh", best_send_hour=None):
    subscriber = make_subscriber(f"h-{n}", phone=f"+9665{n:08d}", timezone=tz, locale="en")
    subscriber_services.grant_consent(subscriber=subscriber, channel=Channel.SMS, source=Source.API)
    if best_send_hour is not None:  # as the nightly scoring writes it
        Subscriber.objects.filter(pk=subscriber.pk).update(best_send_hour=best_send_hour)
        subscriber.refresh_from_db()
    return subscriber


def engaged(subscriber, local_hour, *, days_ago=1, clicked=True, zone=RIYADH):
    """A past message the shopper opened (and clicked) at `local_hour` on their own clock."""
    day = (NOW - timedelta(days=days_ago)).astimezone(zone).date()
    moment = datetime.combine(day, time(local_hour, 12), tzinfo=zone).astimezone(UTC)
    code = f"h{next(_codes)}"
    return Message.objects.create(
        idempotency_key=code, code=code, subscriber=subscriber, channel="push", status="delivered",
        sent_at=moment - timedelta(minutes=5), delivered_at=moment - timedelta(minutes=5),
        displayed_at=moment - timedelta(minutes=1), clicked_at=moment if clicked else None)


@pytest.fixture
def store():
    """Twenty shoppers who open their messages at 09:00 in Riyadh: the store-wide peak is 9."""
    crowd = [shopper(100 + n) for n in range(20)]
    for member in crowd:
        for day in range(1, 4):
            engaged(member, 9, days_ago=day)
    return crowd


def hours_now():
    pattern = store_pattern(NOW)
    first, last = Subscriber.objects.order_by("pk").first().pk, Subscriber.objects.order_by("pk").last().pk
    return best_hours(NOW, first, last, pattern), peak_hour(pattern)


def test_a_shopper_who_always_clicks_at_20_in_riyadh_gets_20(store):
    evening = shopper(1)
    for day in range(1, 9):
        engaged(evening, 20, days_ago=day)

    hours, peak = hours_now()

    assert peak == 9
    assert hours[evening.pk] == 20


def test_a_shopper_with_no_history_gets_the_store_wide_peak(store):
    newcomer = shopper(2)

    hours, peak = hours_now()

    assert newcomer.pk not in hours
    assert peak == 9


def test_one_click_is_pulled_toward_the_store_pattern_and_a_habit_is_not(store, settings):
    once, habit = shopper(3), shopper(4)
    engaged(once, 20)
    for day in range(1, 7):
        engaged(habit, 20, days_ago=day)

    hours, _peak = hours_now()
    assert hours[once.pk] == 9
    assert hours[habit.pk] == 20

    settings.PREDICTIONS_BEST_HOUR_PRIOR_WEIGHT = 0  # without the prior one click decides alone
    hours, _peak = hours_now()
    assert hours[once.pk] == 20


def test_hours_are_read_on_the_shoppers_own_clock():
    london, riyadh = shopper(5, tz="Europe/London"), shopper(6)
    moment = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)  # 17:30 in London, 20:30 in Riyadh
    for subscriber in (london, riyadh):
        for offset in range(4):
            code = f"c{next(_codes)}"
            Message.objects.create(idempotency_key=code, code=code, subscriber=subscriber, channel="push",
                                   displayed_at=moment - timedelta(days=offset))

    hours, _peak = hours_now()

    assert hours == {london.pk: 17, riyadh.pk: 20}


def test_a_store_without_any_engagement_gives_nobody_a_best_hour():
    shopper(7)
    assert store_pattern(NOW) is None and peak_hour(None) is None


def test_engagement_older_than_the_window_is_ignored(store, settings):
    settings.PREDICTIONS_BEST_HOUR_DAYS = 30
    old_habit = shopper(8)
    for day in range(40, 50):
        engaged(old_habit, 20, days_ago=day)

    hours, _peak = hours_now()

    assert old_habit.pk not in hours


# --- The campaign schedule ---------------------------------------------------------------------

def campaign_for(shoppers, **fields):
    listed = Segment.objects.create(name="list", kind="static")
    SegmentMembership.objects.bulk_create([SegmentMembership(segment=listed, subscriber=s) for s in shoppers])
    made = Campaign.objects.create(name="Best hour", channels=["sms"], **fields)
    made.include_segments.set([listed])
    offer = MessageTemplate.objects.create(name="offer", slug="offer")
    TemplateContent.objects.create(template=offer, channel="sms", locale="en", body="Offer!")
    Variant.objects.create(campaign=made, label="A", template=offer)
    return made


def test_a_campaign_at_best_hour_sends_each_shopper_at_their_hour_on_the_chosen_day(
        django_capture_on_commit_callbacks, settings):
    settings.CAMPAIGN_BEST_HOUR_PROVIDER = "analytics.best_hour.best_hour_annotation"
    evening = shopper(11, best_send_hour=20)
    morning = shopper(12, tz="Europe/London", best_send_hour=8)
    unscored = shopper(13)
    made = campaign_for([evening, morning, unscored], schedule_kind=ScheduleKind.BEST_TIME,
                        local_date=date(2026, 12, 4), local_time=time(11, 0))

    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False):
        campaign_services.schedule_campaign(made)
        made.refresh_from_db()
        # Launched when the chosen day first begins anywhere (UTC+14), less the lead.
        assert made.next_run_at == datetime(2026, 12, 3, 9, 50, tzinfo=UTC)
    with time_machine.travel(made.next_run_at, tick=False), django_capture_on_commit_callbacks(execute=True):
        claimed = campaign_engine.claim(made.pk, timezone.now())
        campaign_services.advance(claimed, now=timezone.now())

    send_at = dict(Message.objects.filter(source_type="campaign").values_list("subscriber_id", "send_at"))
    assert send_at == {
        evening.pk: datetime(2026, 12, 4, 17, 0, tzinfo=UTC),  # 20:00 in Riyadh
        morning.pk: datetime(2026, 12, 4, 8, 0, tzinfo=UTC),  # 08:00 in London
        unscored.pk: datetime(2026, 12, 4, 8, 0, tzinfo=UTC),  # the campaign's local time, 11:00 in Riyadh
    }


def test_the_default_provider_reads_the_hour_the_predictions_wrote(settings):
    evening = shopper(14, best_send_hour=20)
    annotation = campaign_engine.best_hour_expression()

    assert annotation is not None
    assert Subscriber.objects.annotate(hour=annotation).get(pk=evening.pk).hour == 20


# --- The journey send step ---------------------------------------------------------------------

BEST_TIME_STEPS = {"start": "send", "steps": {
    "send": {"type": "send", "template": "nudge", "channels": ["sms"], "at_best_time": True, "next": "end"},
    "end": {"type": "exit"},
}}


def nudge_journey():
    nudge = MessageTemplate.objects.create(name="nudge", slug="nudge")
    TemplateContent.objects.create(template=nudge, channel="sms", locale="en", body="Still thinking about it?")
    made = Journey.objects.create(name="Nudge", trigger_event="cart_abandoned", status="active")
    journey_engine.publish(made, BEST_TIME_STEPS)
    return made


def test_a_journey_send_at_best_time_waits_for_the_shoppers_hour_then_sends(django_capture_on_commit_callbacks):
    made = nudge_journey()
    evening = shopper(21, best_send_hour=20)
    entered = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 12:00 in Riyadh

    with django_capture_on_commit_callbacks(execute=True):
        enrolment = journey_engine.enroll(made, evening, now=entered)
        journey_engine.advance_many([enrolment.pk], entered)
    enrolment.refresh_from_db()
    assert enrolment.is_waiting and enrolment.step == "send"
    assert enrolment.next_run_at == datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    assert not Message.objects.filter(subscriber=evening).exists()

    with django_capture_on_commit_callbacks(execute=True):
        journey_engine.advance_many([enrolment.pk], enrolment.next_run_at)
    enrolment.refresh_from_db()
    assert enrolment.status == "completed"
    assert Message.objects.filter(subscriber=evening, source_type="journey_step").count() == 1


def test_a_journey_send_at_best_time_goes_at_once_within_that_hour_and_tomorrow_after_it(
        django_capture_on_commit_callbacks):
    made = nudge_journey()
    now_hour, passed = shopper(22, best_send_hour=12), shopper(23, best_send_hour=11)
    at = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)  # 12:30 in Riyadh

    with django_capture_on_commit_callbacks(execute=True):
        ids = [journey_engine.enroll(made, s, now=at).pk for s in (now_hour, passed)]
        journey_engine.advance_many(ids, at)

    assert Message.objects.filter(subscriber=now_hour).count() == 1
    waiting = made.enrolments.get(subscriber=passed)
    assert waiting.next_run_at == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # 11:00 tomorrow in Riyadh


def test_an_unscored_shopper_waits_for_ten_oclock_local(django_capture_on_commit_callbacks):
    made = nudge_journey()
    unscored = shopper(24, tz="Europe/London")
    at = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    with django_capture_on_commit_callbacks(execute=True):
        enrolment = journey_engine.enroll(made, unscored, now=at)
        journey_engine.advance_many([enrolment.pk], at)

    enrolment.refresh_from_db()
    assert enrolment.next_run_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_at_best_time_must_be_true_or_false():
    MessageTemplate.objects.create(name="nudge", slug="nudge")
    steps = {"start": "send", "steps": {"send": {**BEST_TIME_STEPS["steps"]["send"], "at_best_time": "yes"},
                                        "end": {"type": "exit"}}}

    with pytest.raises(journey_engine.StepsError) as raised:
        journey_engine.validate_steps(steps)

    assert raised.value.problems == [("steps.send.at_best_time", "expected true or false.")]


def test_a_best_hour_campaign_on_a_day_that_has_passed_everywhere_is_refused():
    made = campaign_for([shopper(31)], schedule_kind=ScheduleKind.BEST_TIME, local_date=date(2026, 12, 4))

    assert ("local_date", "That day has passed everywhere.") in campaign_engine.problems(
        made, now=datetime(2026, 12, 5, 12, 0, tzinfo=UTC))
    assert not [field for field, _message in campaign_engine.problems(
        made, now=datetime(2026, 12, 5, 11, 0, tzinfo=UTC)) if field == "local_date"]  # still the 4th at UTC-12


def test_the_builders_send_form_sets_and_clears_at_best_time_and_the_step_says_so():
    from journeys import builder, forms

    MessageTemplate.objects.create(name="nudge", slug="nudge")
    step = dict(BEST_TIME_STEPS["steps"]["send"])
    assert forms.step_form(step, BEST_TIME_STEPS).initial["at_best_time"] is True
    assert "at the shopper's best hour" in builder.summary(step)

    posted = {"template": "nudge", "channel_1": "sms", "next": "end"}
    cleared = forms.step_form(step, BEST_TIME_STEPS, data=posted)
    assert cleared.is_valid(), cleared.errors
    assert "at_best_time" not in cleared.updated_step()
    chosen = forms.step_form(cleared.updated_step(), BEST_TIME_STEPS, data={**posted, "at_best_time": "on"})
    assert chosen.is_valid(), chosen.errors
    assert chosen.updated_step()["at_best_time"] is True
