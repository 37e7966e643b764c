"""An order update by SMS from the outbox to Twilio and back: sent, then delivered by the status callback."""
import pytest
from django.urls import reverse

from delivery import outbox
from delivery.models import Message, Suppression
from subscribers import services
from subscribers.models import Channel, Consent, ConsentStatus, Source
from tests.factories import make_subscriber
from tests.twilio_peer import SITE_URL, _twilio_server, twilio_peer, twilio_signature  # noqa: F401

pytestmark = pytest.mark.django_db

PHONE = "+966501234567"


@pytest.fixture
def shopper(twilio_peer):
    subscriber = make_subscriber(first_name="ليلى", phone=PHONE, locale="ar", timezone="Asia/Riyadh")
    services.grant_consent(subscriber=subscriber, channel=Channel.SMS, source=Source.API)
    return subscriber


def order_shipped(subscriber, order="A-1001"):
    message, _created = outbox.queue_message(
        subscriber=subscriber, channel="sms", source_type="api", source_id=order, transactional=True,
        content={"body": f"ليلى، طلبك {order} في الطريق", "encoding": "UCS-2", "segments": 1})
    return message


def status_callback(client, message, status, error_code=None):
    path = reverse("delivery-webhooks:twilio-status", args=[message.code])
    params = {"MessageSid": message.provider_id, "MessageStatus": status, "To": PHONE}
    if error_code:
        params["ErrorCode"] = error_code
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=twilio_signature(SITE_URL + path, params))


def test_an_order_update_is_sent_once_and_marked_delivered_by_twilios_callback(client, twilio_peer, shopper):
    message = order_shipped(shopper)

    outbox.deliver([message.pk])
    outbox.deliver([message.pk])  # a task delivered twice

    assert len(twilio_peer.requests) == 1
    assert twilio_peer.last.field("Body") == "ليلى، طلبك A-1001 في الطريق"
    assert twilio_peer.last.field("StatusCallback") == f"{SITE_URL}/webhooks/twilio/status/{message.code}"
    message.refresh_from_db()
    assert (message.status, message.provider) == ("sent", "twilio")
    assert message.provider_id.startswith("SM")

    assert status_callback(client, message, "delivered").status_code == 200

    message.refresh_from_db()
    assert message.status == "delivered"


def test_twilio_saying_the_number_opted_out_revokes_sms_consent(twilio_peer, shopper):
    twilio_peer.fail_next(21610)
    message = order_shipped(shopper)

    outbox.deliver([message.pk])

    message.refresh_from_db()
    assert message.status == "failed"
    assert Consent.objects.get(subscriber=shopper, channel=Channel.SMS).status == ConsentStatus.REVOKED


def test_an_invalid_number_is_suppressed_for_later_sends(twilio_peer, shopper):
    twilio_peer.fail_next(21211)
    message = order_shipped(shopper)

    outbox.deliver([message.pk])

    message.refresh_from_db()
    assert message.status == "failed"
    assert Suppression.objects.filter(value=PHONE).exists()


def test_a_send_that_timed_out_is_unknown_and_not_sent_again(twilio_peer, shopper, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 0.3
    twilio_peer.hang_next(2)
    message = order_shipped(shopper)

    outbox.deliver([message.pk])
    outbox.deliver([message.pk])

    message.refresh_from_db()
    assert message.status == "unknown"
    assert len(twilio_peer.requests) == 1


def test_too_many_requests_puts_the_message_back_for_after_retry_after(twilio_peer, shopper):
    twilio_peer.fail_next(20429, headers={"Retry-After": "120"})
    message = order_shipped(shopper)

    outbox.deliver([message.pk])

    message.refresh_from_db()
    assert message.status == "queued"
    assert (message.send_at - message.queued_at).total_seconds() >= 120


def test_a_shopper_who_texted_stop_gets_no_more_sms(client, twilio_peer, shopper):
    params = {"MessageSid": "SM" + "9" * 32, "From": PHONE, "Body": "إيقاف"}
    path = "/webhooks/twilio/inbound"
    client.post(path, params, HTTP_X_TWILIO_SIGNATURE=twilio_signature(SITE_URL + path, params))
    message = order_shipped(shopper, order="A-1002")

    outbox.deliver([message.pk])

    assert Message.objects.get(pk=message.pk).status == "suppressed"
    assert twilio_peer.requests == []
