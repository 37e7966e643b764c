"""Messages, clicks and orders made through the real write paths (outbox, subscriber services) at chosen times,
for the attribution, recovery and rollup tests."""
import itertools
from decimal import Decimal

import pytest
import time_machine

from delivery import outbox
from delivery.channels import reset_backends
from delivery.models import Message
from subscribers import services as subscriber_services
from subscribers.models import Channel, Source
from tests.factories import make_subscriber

CHANNELS = ("push", "sms", "whatsapp", "email", "inapp")
_orders = itertools.count(1)
_shoppers = itertools.count(1)


@pytest.fixture
def sandbox(settings):
    """Every channel on the sandbox backend, no quiet hours or caps: a message is sent when delivered."""
    settings.DELIVERY_BACKENDS = {channel: "delivery.channels.sandbox.SandboxBackend" for channel in CHANNELS}
    settings.QUIET_HOURS = {channel: "off" for channel in CHANNELS}
    settings.FREQUENCY_CAPS = {channel: {"day": 0, "week": 0} for channel in (*CHANNELS, "all")}
    settings.DEFAULT_CURRENCY = "SAR"
    reset_backends()
    yield
    reset_backends()


def shopper(*, sms=True, email=False):
    n = next(_shoppers)
    subscriber = make_subscriber(f"analytics-{n}", phone=f"+9665{n:08d}", email=f"a{n}@example.com", locale="en")
    if sms:
        subscriber_services.grant_consent(subscriber=subscriber, channel=Channel.SMS, source=Source.API)
    if email:
        subscriber_services.grant_consent(subscriber=subscriber, channel=Channel.EMAIL, source=Source.API)
    return subscriber


def sent(subscriber, at, *, source_type="campaign", source_id="1:A", channel="sms", occurrence="1", context=None):
    """A message queued and handed to the (sandbox) provider at `at`; -> the Message."""
    with time_machine.travel(at, tick=False):
        message, _created = outbox.queue_message(
            subscriber=subscriber, channel=channel, source_type=source_type, source_id=source_id,
            occurrence=occurrence, content={"body": "Hello https://shop.example/x", "subject": "Hi",
                                            "html_body": "<p>Hi</p>"},
            context=context)
        outbox.deliver([message.pk], now=at)
    message.refresh_from_db()
    return message


def clicked(message, at):
    with time_machine.travel(at, tick=False):
        outbox.mark_clicked(code=message.code, at=at)


def displayed(message, at):
    with time_machine.travel(at, tick=False):
        outbox.mark_displayed(code=message.code, at=at)


def delivered(message, at):
    with time_machine.travel(at, tick=False):
        outbox.record_provider_status(provider=message.provider, provider_id=message.provider_id,
                                      status="delivered", code=message.code, at=at)


def failed(message, at, code="30003"):
    with time_machine.travel(at, tick=False):
        outbox.record_provider_status(provider=message.provider, provider_id=message.provider_id,
                                      status="undelivered", code=message.code, error_code=code, at=at)


def unsubscribed(message, at):
    with time_machine.travel(at, tick=False):
        outbox.record_unsubscribe(code=message.code, channel=message.channel, at=at)


def order(subscriber, at, value="100.00", currency="SAR", cart_id=None):
    """An order placed at `at` through the subscriber services (no signal path): -> the Order."""
    with time_machine.travel(at, tick=False):
        return subscriber_services.place_order(subscriber_id=subscriber.pk, order_id=f"order-{next(_orders)}",
                                               value=Decimal(value), currency=currency, cart_id=cart_id, at=at)


def message_for(subscriber):
    return Message.objects.filter(subscriber=subscriber).order_by("-pk").first()
