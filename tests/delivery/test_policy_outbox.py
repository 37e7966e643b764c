"""Policies as the marketer sees them through the outbox: held and suppressed rows keep their reason."""
from datetime import datetime
from datetime import timezone as dt_timezone

import pytest
import time_machine

from delivery import outbox
from delivery.channels import reset_backends
from delivery.models import MessageEvent, MessageStatus
from subscribers import services
from subscribers.models import Source
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db

SANDBOX = "delivery.channels.sandbox.SandboxBackend"


def utc(*args):
    return datetime(*args, tzinfo=dt_timezone.utc)


@pytest.fixture(autouse=True)
def sandbox(settings):
    settings.DELIVERY_BACKENDS = {channel: SANDBOX for channel in ("push", "sms", "whatsapp", "email", "inapp")}
    settings.DELIVERY_RATE_LIMITS = ""
    settings.QUIET_HOURS = {"push": "22:00-08:00", "sms": "22:00-08:00", "whatsapp": "22:00-08:00",
                            "email": "22:00-08:00", "inapp": "off"}
    settings.QUIET_HOURS_TRANSACTIONAL = False
    settings.FREQUENCY_CAPS = {
        "push": {"day": 3, "week": 10}, "sms": {"day": 1, "week": 3}, "whatsapp": {"day": 1, "week": 3},
        "email": {"day": 2, "week": 7}, "inapp": {"day": 0, "week": 0}, "all": {"day": 4, "week": 15},
    }
    reset_backends()
    yield
    reset_backends()


def riyadh_shopper():
    shopper = make_subscriber(phone="+966501234567", timezone="Asia/Riyadh")
    services.grant_consent(subscriber=shopper, channel="sms", source=Source.API)
    return shopper


def queue_sms(shopper, source_id, transactional=False):
    return outbox.queue_message(subscriber=shopper, channel="sms", source_type="campaign", source_id=source_id,
                                content={"body": "تخفيضات الليلة"}, transactional=transactional)[0]


def test_a_cart_reminder_at_23_in_riyadh_waits_for_8_then_goes_and_the_next_one_is_capped():
    shopper = riyadh_shopper()

    with time_machine.travel(utc(2026, 11, 23, 20, 0), tick=False):  # 23:00 in Riyadh
        reminder = queue_sms(shopper, "cart-1")
        outbox.deliver([reminder.pk])
    reminder.refresh_from_db()
    assert reminder.status == MessageStatus.HELD
    assert reminder.send_at == utc(2026, 11, 24, 5, 0)
    assert reminder.status_reason == "quiet hours 22:00–08:00 (Asia/Riyadh): held until 08:00 local time"

    with time_machine.travel(utc(2026, 11, 24, 5, 0, 30), tick=False):
        outbox.dispatch_due()
        outbox.deliver([reminder.pk])
        offer = queue_sms(shopper, "offer-1")
        outbox.deliver([offer.pk])
    reminder.refresh_from_db()
    offer.refresh_from_db()
    assert reminder.status == MessageStatus.SENT
    assert offer.status == MessageStatus.SUPPRESSED
    assert offer.status_reason == "frequency cap: 1 SMS per day"
    assert list(MessageEvent.objects.filter(message=offer).values_list("kind", flat=True))[-1] == "suppressed"


def test_an_order_update_goes_at_night_and_past_the_cap():
    shopper = riyadh_shopper()

    with time_machine.travel(utc(2026, 11, 23, 21, 30), tick=False):  # 00:30 in Riyadh
        first = queue_sms(shopper, "order-7-shipped", transactional=True)
        second = queue_sms(shopper, "order-7-out-for-delivery", transactional=True)
        outbox.deliver([first.pk, second.pk])

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (MessageStatus.SENT, MessageStatus.SENT)


def test_an_sms_after_stop_is_suppressed_with_its_reason():
    shopper = riyadh_shopper()

    with time_machine.travel(utc(2026, 11, 23, 9, 0), tick=False):  # noon in Riyadh
        offer = queue_sms(shopper, "offer-2")
        services.revoke_consent(subscriber=shopper, channel="sms", source=Source.KEYWORD)
        outbox.deliver([offer.pk])

    offer.refresh_from_db()
    assert offer.status == MessageStatus.SUPPRESSED
    assert offer.status_reason == "SMS consent revoked"
