"""Sending policies: reachability, consent, the suppression list, quiet hours and frequency caps."""
import itertools
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from delivery import policy
from delivery.models import Message, MessageStatus, Suppression
from subscribers import services
from subscribers.models import Source
from tests.factories import make_subscriber, push_keys

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
_numbers = itertools.count(1)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def documented_defaults(settings):
    """The defaults of docs/self-hosting.md, whatever the environment of the test run says."""
    settings.QUIET_HOURS = {"push": "22:00-08:00", "sms": "22:00-08:00", "whatsapp": "22:00-08:00",
                            "email": "22:00-08:00", "inapp": "off"}
    settings.QUIET_HOURS_TRANSACTIONAL = False
    settings.FREQUENCY_CAPS = {
        "push": {"day": 3, "week": 10}, "sms": {"day": 1, "week": 3}, "whatsapp": {"day": 1, "week": 3},
        "email": {"day": 2, "week": 7}, "inapp": {"day": 0, "week": 0}, "all": {"day": 4, "week": 15},
    }


def shopper(timezone="Asia/Riyadh", channels=("push", "sms", "whatsapp", "email"), **fields):
    """A shopper reachable (with consent) on `channels`; returns (subscriber, push subscription)."""
    n = next(_numbers)
    fields.setdefault("phone", f"+96650{n:07d}")
    fields.setdefault("email", f"shopper{n}@example.com")
    subscriber = make_subscriber(timezone=timezone, **fields)
    subscription = None
    if "push" in channels:
        subscription, _ = services.register_push_subscription(
            subscriber=subscriber, endpoint=f"https://fcm.googleapis.com/fcm/send/policy-{n}", **push_keys())
    for channel in channels:
        if channel != "push":
            services.grant_consent(subscriber=subscriber, channel=channel, source=Source.API)
    return subscriber, subscription


def message(subscriber, channel="push", *, push_subscription=None, transactional=False, source_id=None,
            occurrence="", status=MessageStatus.SENDING, sent_at=None, to=""):
    """An outbox row as the outbox would claim it (built directly: the policy only reads rows)."""
    n = next(_numbers)
    source_id = source_id or f"c{n}"
    if channel == "push" and push_subscription is None:
        push_subscription = subscriber.push_subscriptions.first()
    return Message.objects.create(
        idempotency_key=f"campaign:{source_id}:{subscriber.pk}:{channel}:{occurrence}:{n}",
        code=f"m{n:08d}", subscriber=subscriber, channel=channel, source_type="campaign", source_id=source_id,
        occurrence=occurrence, is_transactional=transactional,
        lane="transactional" if transactional else "bulk",
        push_subscription=push_subscription if channel == "push" else None,
        to=to, status=status, sent_at=sent_at,
    )


def sent(subscriber, channel="push", *, at, **kwargs):
    return message(subscriber, channel, status=MessageStatus.SENT, sent_at=at, **kwargs)


# --- Quiet hours ----------------------------------------------------------------------

def test_a_shopper_in_riyadh_at_23_local_is_held_until_08_riyadh():
    subscriber, _ = shopper("Asia/Riyadh")
    msg = message(subscriber)

    with time_machine.travel(utc(2026, 11, 23, 20, 0), tick=False):  # 23:00 in Riyadh (UTC+3)
        decision = policy.check(msg)

    assert decision.action == "hold"
    assert decision.until == utc(2026, 11, 24, 5, 0)  # 08:00 in Riyadh
    assert decision.reason == "quiet hours 22:00–08:00 (Asia/Riyadh): held until 08:00 local time"


def test_after_midnight_the_hold_ends_the_same_morning():
    subscriber, _ = shopper("Asia/Riyadh")

    with time_machine.travel(utc(2026, 11, 24, 0, 30), tick=False):  # 03:30 in Riyadh
        decision = policy.check(message(subscriber))

    assert decision.action == "hold"
    assert decision.until == utc(2026, 11, 24, 5, 0)


def test_the_same_instant_is_daytime_for_a_shopper_elsewhere():
    riyadh, _ = shopper("Asia/Riyadh")
    london, _ = shopper("Europe/London")

    with time_machine.travel(utc(2026, 11, 23, 20, 0), tick=False):  # 23:00 Riyadh, 20:00 London
        assert policy.check(message(riyadh)).action == "hold"
        assert policy.check(message(london)).action == "send"


def test_a_message_goes_at_the_end_of_the_window_and_not_a_minute_before_its_start():
    subscriber, _ = shopper("Asia/Riyadh")

    with time_machine.travel(utc(2026, 11, 24, 5, 0), tick=False):  # 08:00 Riyadh
        assert policy.check(message(subscriber)) == policy.Decision("send")
    with time_machine.travel(utc(2026, 11, 24, 18, 59), tick=False):  # 21:59 Riyadh
        assert policy.check(message(subscriber)).action == "send"
    with time_machine.travel(utc(2026, 11, 24, 19, 0), tick=False):  # 22:00 Riyadh
        assert policy.check(message(subscriber)).action == "hold"


def test_new_york_held_across_the_spring_forward_night_is_released_at_8_daylight_time():
    subscriber, _ = shopper("America/New_York")

    # 23:30 EST on Saturday 7 March 2026; clocks jump from 02:00 to 03:00 that night.
    with time_machine.travel(utc(2026, 3, 8, 4, 30), tick=False):
        decision = policy.check(message(subscriber))

    assert decision.action == "hold"
    assert decision.until == utc(2026, 3, 8, 12, 0)  # 08:00 EDT (UTC-4), not 13:00 UTC


def test_new_york_held_across_the_fall_back_night_is_released_at_8_standard_time():
    subscriber, _ = shopper("America/New_York")

    # 23:00 EDT on Saturday 31 October 2026; clocks go back from 02:00 to 01:00 that night.
    with time_machine.travel(utc(2026, 11, 1, 3, 0), tick=False):
        decision = policy.check(message(subscriber))

    assert decision.until == utc(2026, 11, 1, 13, 0)  # 08:00 EST (UTC-5)


def test_cairo_held_over_the_midnight_when_summer_time_starts():
    subscriber, _ = shopper("Africa/Cairo")

    # 22:30 EET on Thursday 23 April 2026; at midnight Egypt moves to EEST (UTC+3).
    with time_machine.travel(utc(2026, 4, 23, 20, 30), tick=False):
        decision = policy.check(message(subscriber))

    assert decision.until == utc(2026, 4, 24, 5, 0)  # 08:00 EEST
    assert decision.reason == "quiet hours 22:00–08:00 (Africa/Cairo): held until 08:00 local time"


def test_cairo_in_winter_is_two_hours_ahead():
    subscriber, _ = shopper("Africa/Cairo")

    with time_machine.travel(utc(2026, 1, 15, 21, 0), tick=False):  # 23:00 EET
        decision = policy.check(message(subscriber))

    assert decision.until == utc(2026, 1, 16, 6, 0)


def test_order_updates_are_not_held_by_quiet_hours():
    subscriber, _ = shopper("Asia/Riyadh")

    with time_machine.travel(utc(2026, 11, 23, 21, 0), tick=False):  # midnight in Riyadh
        decision = policy.check(message(subscriber, "sms", transactional=True))

    assert decision.action == "send"


def test_a_setting_puts_order_updates_under_quiet_hours_too(settings):
    settings.QUIET_HOURS_TRANSACTIONAL = True
    subscriber, _ = shopper("Asia/Riyadh")

    with time_machine.travel(utc(2026, 11, 23, 21, 0), tick=False):
        decision = policy.check(message(subscriber, "sms", transactional=True))

    assert decision.action == "hold"
    assert decision.until == utc(2026, 11, 24, 5, 0)


def test_quiet_hours_are_set_per_channel(settings):
    settings.QUIET_HOURS = {**settings.QUIET_HOURS, "email": "off", "sms": "21:00-09:00"}
    subscriber, _ = shopper("Asia/Riyadh")

    with time_machine.travel(utc(2026, 11, 24, 5, 30), tick=False):  # 08:30 in Riyadh
        assert policy.check(message(subscriber, "email")).action == "send"
        assert policy.check(message(subscriber, "push")).action == "send"
        held = policy.check(message(subscriber, "sms"))

    assert held.until == utc(2026, 11, 24, 6, 0)  # 09:00 Riyadh
    assert held.reason == "quiet hours 21:00–09:00 (Asia/Riyadh): held until 09:00 local time"


def test_in_app_messages_are_never_quiet():
    subscriber, _ = shopper("Asia/Riyadh", channels=())

    with time_machine.travel(utc(2026, 11, 23, 23, 0), tick=False):  # 02:00 in Riyadh
        assert policy.check(message(subscriber, "inapp")).action == "send"


def test_a_daytime_window_holds_until_its_end_the_same_day(settings):
    settings.QUIET_HOURS = {**settings.QUIET_HOURS, "push": "12:00-14:30"}  # e.g. Friday prayers
    subscriber, _ = shopper("Asia/Riyadh")

    with time_machine.travel(utc(2026, 11, 27, 10, 0), tick=False):  # 13:00 Riyadh
        decision = policy.check(message(subscriber))

    assert decision.until == utc(2026, 11, 27, 11, 30)


def test_a_malformed_quiet_hours_setting_is_refused_with_a_clear_message():
    with pytest.raises(ImproperlyConfigured, match="22:00-08:00"):
        policy.parse_quiet_hours("10pm-8am")
    with pytest.raises(ImproperlyConfigured, match="off"):
        policy.parse_quiet_hours("08:00-08:00")
    assert policy.parse_quiet_hours("off") is None
    assert policy.parse_quiet_hours("") is None


# --- Reachability, consent, the suppression list ---------------------------------------

NOON_RIYADH = utc(2026, 11, 23, 9, 0)


def decide(msg, now=NOON_RIYADH):
    """Check the row as the outbox does: loaded afresh with its subscriber and push subscription."""
    fresh = Message.objects.select_related("subscriber", "push_subscription").get(pk=msg.pk)
    return policy.check(fresh, now=now)


def test_an_sms_without_consent_is_suppressed():
    subscriber, _ = shopper(channels=("push",))

    decision = decide(message(subscriber, "sms"))

    assert decision == policy.Decision("suppress", reason="no SMS consent", code="no_consent")


def test_an_sms_after_stop_is_suppressed_even_if_queued_before_it():
    subscriber, _ = shopper()
    msg = message(subscriber, "sms")
    services.revoke_consent(subscriber=subscriber, channel="sms", source=Source.KEYWORD)

    assert decide(msg).reason == "SMS consent revoked"


def test_whatsapp_and_email_need_their_own_consent():
    subscriber, _ = shopper(channels=("sms",))

    assert decide(message(subscriber, "whatsapp")).reason == "no WhatsApp consent"
    assert decide(message(subscriber, "email")).reason == "no email consent"
    assert decide(message(subscriber, "sms")).action == "send"


def test_an_sms_to_a_shopper_without_a_phone_is_suppressed():
    subscriber = make_subscriber(timezone="Asia/Riyadh")

    assert decide(message(subscriber, "sms")).reason == "no phone number"
    assert decide(message(subscriber, "email")).reason == "no email address"


def test_a_push_to_an_expired_subscription_is_suppressed():
    subscriber, subscription = shopper()
    msg = message(subscriber, "push")
    services.expire_push_subscription(endpoint=subscription.endpoint, reason="410 Gone")

    decision = decide(msg)

    assert decision.action == "suppress"
    assert decision.reason == "push subscription expired"


def test_a_push_to_one_live_browser_goes_while_another_is_expired():
    subscriber, first = shopper()
    second, _ = services.register_push_subscription(
        subscriber=subscriber, endpoint="https://updates.push.services.mozilla.com/wpush/v2/second", **push_keys())
    services.expire_push_subscription(endpoint=first.endpoint, reason="410 Gone")

    assert decide(message(subscriber, "push", push_subscription=second)).action == "send"
    assert decide(message(subscriber, "push", push_subscription=first)).reason == "push subscription expired"


def test_a_push_to_a_browser_that_turned_notifications_off_is_suppressed():
    subscriber, subscription = shopper()
    services.unregister_push_subscription(endpoint=subscription.endpoint)

    assert decide(message(subscriber, "push")).reason == "push subscription unsubscribed"


def test_a_push_without_a_subscription_is_suppressed():
    subscriber, _ = shopper(channels=())

    assert decide(message(subscriber, "push")).reason == "no push subscription"


def test_in_app_needs_nothing_but_the_shopper():
    visitor = services.upsert_subscriber(anonymous_id="anon-policy-1")[0]

    assert decide(message(visitor, "inapp")).action == "send"


def test_an_address_on_the_suppression_list_is_not_messaged_on_that_channel():
    subscriber, _ = shopper(email="Huda@Example.com")
    Suppression.objects.create(channel="email", value="huda@example.com", reason="hard bounce")

    decision = decide(message(subscriber, "email"))

    assert decision.action == "suppress"
    assert decision.reason == "huda@example.com is on the email suppression list (hard bounce)"
    assert decide(message(subscriber, "sms")).action == "send"


def test_a_number_listed_for_sms_still_gets_whatsapp():
    subscriber, _ = shopper(phone="+966501112233")
    Suppression.objects.create(channel="sms", value="+966501112233", reason="invalid number (21211)")

    assert decide(message(subscriber, "sms")).reason == (
        "+966501112233 is on the SMS suppression list (invalid number (21211))")
    assert decide(message(subscriber, "whatsapp")).action == "send"


def test_an_entry_for_all_channels_stops_every_channel():
    subscriber, _ = shopper(phone="+966501112244")
    Suppression.objects.create(channel="", value="+966501112244", reason="legal request")

    for channel in ("sms", "whatsapp", "email", "push", "inapp"):
        decision = decide(message(subscriber, channel))
        assert decision.action == "suppress", channel
        assert decision.reason == "+966501112244 is on the suppression list for all channels (legal request)"


def test_suppression_wins_over_quiet_hours_so_nothing_waits_for_the_night_to_be_dropped():
    subscriber, _ = shopper(channels=("push",))

    decision = decide(message(subscriber, "sms"), now=utc(2026, 11, 23, 20, 0))  # 23:00 in Riyadh

    assert decision.action == "suppress"


# --- Frequency caps -------------------------------------------------------------------

NOW = utc(2026, 11, 23, 9, 0)  # noon in Riyadh, outside quiet hours


def test_the_fourth_push_of_a_day_is_suppressed():
    subscriber, _ = shopper()
    for hours in (1, 5, 20):
        sent(subscriber, "push", at=NOW - timedelta(hours=hours))

    decision = decide(message(subscriber, "push"), now=NOW)

    assert decision == policy.Decision("suppress", reason="frequency cap: 3 push per day", code="frequency_cap")


def test_the_day_is_a_rolling_24_hours():
    subscriber, _ = shopper()
    for hours in (1, 5, 25):
        sent(subscriber, "push", at=NOW - timedelta(hours=hours))

    assert decide(message(subscriber, "push"), now=NOW).action == "send"


def test_the_weekly_cap_counts_seven_rolling_days(settings):
    settings.FREQUENCY_CAPS = {**settings.FREQUENCY_CAPS, "all": {"day": 0, "week": 0}}
    subscriber, _ = shopper()
    for day in range(1, 7):  # ten pushes over the last six days, at most two a day
        sent(subscriber, "push", at=NOW - timedelta(days=day, hours=1))
        if day <= 4:
            sent(subscriber, "push", at=NOW - timedelta(days=day, hours=3))

    assert decide(message(subscriber, "push"), now=NOW).reason == "frequency cap: 10 push per week"
    # A day later the oldest has left the week.
    assert decide(message(subscriber, "push"), now=NOW + timedelta(days=1)).action == "send"


def test_one_sms_a_day_and_the_cap_is_per_channel():
    subscriber, _ = shopper()
    sent(subscriber, "sms", at=NOW - timedelta(hours=2))

    assert decide(message(subscriber, "sms"), now=NOW).reason == "frequency cap: 1 SMS per day"
    assert decide(message(subscriber, "whatsapp"), now=NOW).action == "send"


def test_the_cap_across_channels_counts_every_interrupting_channel():
    subscriber, _ = shopper()
    sent(subscriber, "push", at=NOW - timedelta(hours=1))
    sent(subscriber, "sms", at=NOW - timedelta(hours=2))
    sent(subscriber, "email", at=NOW - timedelta(hours=3))
    sent(subscriber, "whatsapp", at=NOW - timedelta(hours=4))
    sent(subscriber, "inapp", at=NOW - timedelta(hours=4))

    assert decide(message(subscriber, "push"), now=NOW).reason == "frequency cap: 4 messages across channels per day"
    assert decide(message(subscriber, "inapp"), now=NOW).action == "send"


def test_order_updates_are_exempt_from_caps_and_do_not_use_them_up():
    subscriber, _ = shopper()
    for hours in (1, 2, 3):
        sent(subscriber, "sms", at=NOW - timedelta(hours=hours), transactional=True)

    assert decide(message(subscriber, "sms"), now=NOW).action == "send"
    sent(subscriber, "sms", at=NOW - timedelta(hours=1))
    assert decide(message(subscriber, "sms"), now=NOW).action == "suppress"
    assert decide(message(subscriber, "sms", transactional=True), now=NOW).action == "send"


def test_only_messages_that_went_out_count():
    subscriber, _ = shopper()
    for status in (MessageStatus.FAILED, MessageStatus.SUPPRESSED, MessageStatus.HELD, MessageStatus.CANCELLED):
        message(subscriber, "sms", status=status, sent_at=NOW - timedelta(hours=1))

    assert decide(message(subscriber, "sms"), now=NOW).action == "send"
    message(subscriber, "sms", status=MessageStatus.DELIVERED, sent_at=NOW - timedelta(hours=1))
    assert decide(message(subscriber, "sms"), now=NOW).action == "suppress"


def test_one_campaign_pushed_to_several_browsers_counts_once():
    subscriber, first = shopper()
    second, _ = services.register_push_subscription(
        subscriber=subscriber, endpoint="https://updates.push.services.mozilla.com/wpush/v2/other", **push_keys())
    for source in ("a", "b"):
        for browser in (first, second):
            sent(subscriber, "push", at=NOW - timedelta(hours=1), source_id=source, push_subscription=browser)

    # Two sends so far (not four): a third campaign goes to both browsers ...
    assert decide(message(subscriber, "push", source_id="c", push_subscription=first), now=NOW).is_send
    sent(subscriber, "push", at=NOW, source_id="c", push_subscription=first)
    assert decide(message(subscriber, "push", source_id="c", push_subscription=second), now=NOW).is_send
    # ... and a fourth is one too many.
    assert decide(message(subscriber, "push", source_id="d", push_subscription=first), now=NOW).action == "suppress"


def test_a_cap_of_zero_means_no_cap(settings):
    settings.FREQUENCY_CAPS = {**settings.FREQUENCY_CAPS, "sms": {"day": 0, "week": 0}, "all": {"day": 0, "week": 0}}
    subscriber, _ = shopper()
    for hours in range(1, 6):
        sent(subscriber, "sms", at=NOW - timedelta(hours=hours))

    assert decide(message(subscriber, "sms"), now=NOW).action == "send"


def test_in_a_chunk_a_message_allowed_counts_against_the_next():
    subscriber, _ = shopper()
    chunk = [message(subscriber, "sms"), message(subscriber, "sms"), message(subscriber, "sms", transactional=True)]

    decisions = policy.check_many(chunk, now=NOW)

    assert [d.action for d in decisions] == ["send", "suppress", "send"]


# --- Query counts --------------------------------------------------------------------

def test_one_check_costs_five_queries_however_busy_the_shopper(django_assert_num_queries):
    subscriber, _ = shopper()
    for hours in range(1, 40):
        sent(subscriber, "email", at=NOW - timedelta(hours=hours * 4), transactional=hours % 2 == 0)
    msg = Message.objects.get(pk=message(subscriber, "push").pk)

    # subscriber, consent, push subscription, suppression list, sending history
    with django_assert_num_queries(5):
        decision = policy.check(msg, now=NOW)
    assert decision.action == "suppress"


def test_a_loaded_subscriber_is_not_fetched_again(django_assert_num_queries):
    subscriber, _ = shopper()
    msg = Message.objects.select_related("subscriber").get(pk=message(subscriber, "sms").pk)

    with django_assert_num_queries(3):  # consent, suppression list, sending history
        assert policy.check(msg, now=NOW).is_send


def test_a_push_loaded_as_the_outbox_loads_it_costs_three_queries(django_assert_num_queries):
    subscriber, _ = shopper()
    msg = Message.objects.select_related("subscriber", "push_subscription").get(pk=message(subscriber).pk)

    with django_assert_num_queries(3):  # consent, suppression list, sending history
        assert policy.check(msg, now=NOW).is_send


def test_a_whole_chunk_is_checked_in_five_queries(django_assert_num_queries):
    chunk = []
    for n in range(30):
        subscriber, _ = shopper(timezone=("Asia/Riyadh", "Africa/Cairo", "Europe/London")[n % 3])
        sent(subscriber, "push", at=NOW - timedelta(hours=2))
        chunk += [message(subscriber, "push"), message(subscriber, "sms")]
    Suppression.objects.create(channel="sms", value=chunk[1].subscriber.phone)
    chunk = list(Message.objects.filter(pk__in=[m.pk for m in chunk]).order_by("pk"))

    with django_assert_num_queries(5):
        decisions = policy.check_many(chunk, now=NOW)

    assert len(decisions) == 60
    assert decisions[1].action == "suppress"
    assert sum(d.is_send for d in decisions) == 59


def test_quiet_hours_alone_cost_no_history_query(django_assert_num_queries):
    subscriber, _ = shopper()
    msg = Message.objects.select_related("subscriber").get(pk=message(subscriber, "inapp").pk)

    with django_assert_num_queries(1):  # the suppression list only
        assert policy.check(msg, now=timezone.now()).is_send


# --- Settings -------------------------------------------------------------------------

def test_a_malformed_setting_is_reported_at_start_up(settings):
    settings.QUIET_HOURS = {**settings.QUIET_HOURS, "sms": "22-08"}
    settings.FREQUENCY_CAPS = {**settings.FREQUENCY_CAPS, "email": {"day": -1, "week": 7}}

    messages = [problem.msg for problem in policy.check_settings()]

    assert messages == [
        "QUIET_HOURS_SMS: Quiet hours must look like 22:00-08:00 or be 'off', not '22-08'.",
        "FREQUENCY_CAP_EMAIL_PER_DAY must be a whole number 0 or more (0 = no cap), not -1.",
    ]


def test_the_documented_defaults_pass_the_start_up_check():
    assert policy.check_settings() == []
