"""Twilio's status callbacks: signed, parsed, and recorded on the message by the outbox."""
import secrets

import pytest
from django.urls import reverse

from delivery.models import Message, MessageEvent
from delivery.webhooks import StatusUpdate, parse_status_callback
from subscribers import services
from subscribers.models import Channel, Consent, ConsentStatus, Source
from tests.factories import make_subscriber
from tests.twilio_peer import SITE_URL, _twilio_server, twilio_peer, twilio_signature  # noqa: F401

pytestmark = pytest.mark.django_db

PHONE = "+966501234567"


@pytest.fixture
def sent_sms(twilio_peer):
    shopper = make_subscriber(phone=PHONE, locale="ar")
    services.grant_consent(subscriber=shopper, channel=Channel.SMS, source=Source.API)
    code = secrets.token_urlsafe(12)
    return Message.objects.create(
        idempotency_key=f"test:{code}", code=code, subscriber=shopper, channel="sms", to=PHONE,
        content={"body": "مرحبا"}, source_type="test", status="sent", provider="twilio",
        provider_id="SM" + secrets.token_hex(16),
    )


def callback(client, message, status, *, error_code=None, signature=None, code=None, channel="sms"):
    path = reverse("delivery-webhooks:twilio-status", args=[code or message.code])
    params = {"MessageSid": message.provider_id, "SmsSid": message.provider_id, "AccountSid": "AC" + "0" * 32,
              "From": "+15005550006", "To": PHONE if channel == "sms" else f"whatsapp:{PHONE}",
              "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    signed = signature if signature is not None else twilio_signature(SITE_URL + path, params)
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signed)


def test_the_callback_url_is_the_one_each_message_gives_twilio(sent_sms):
    assert reverse("delivery-webhooks:twilio-status", args=["abc"]) == "/webhooks/twilio/status/abc"


def test_delivered_marks_the_message_delivered(client, sent_sms):
    response = callback(client, sent_sms, "delivered")

    assert response.status_code == 200
    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered" and sent_sms.delivered_at is not None
    assert MessageEvent.objects.filter(message=sent_sms, kind="delivered").count() == 1


def test_a_whatsapp_read_receipt_counts_as_delivered(client, sent_sms):
    callback(client, sent_sms, "read", channel="whatsapp")

    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered"


def test_undelivered_fails_the_message_with_twilios_error_code(client, sent_sms):
    callback(client, sent_sms, "undelivered", error_code="30003")

    sent_sms.refresh_from_db()
    assert sent_sms.status == "failed" and "30003" in sent_sms.status_reason


def test_a_failure_because_the_shopper_opted_out_revokes_their_sms_consent(client, sent_sms):
    callback(client, sent_sms, "failed", error_code="21610")

    sent_sms.refresh_from_db()
    assert sent_sms.status == "failed"
    consent = Consent.objects.get(subscriber=sent_sms.subscriber, channel=Channel.SMS)
    assert consent.status == ConsentStatus.REVOKED


@pytest.mark.parametrize("status", ["queued", "accepted", "sending", "scheduled", "something-new"])
def test_intermediate_and_unknown_statuses_are_acknowledged_and_change_nothing(client, sent_sms, status):
    response = callback(client, sent_sms, status)

    assert response.status_code == 200
    sent_sms.refresh_from_db()
    assert sent_sms.status == "sent"


def test_an_unknown_message_code_is_acknowledged_so_that_twilio_stops_retrying(client, sent_sms):
    response = callback(client, sent_sms, "delivered", code="no-such-code")

    assert response.status_code == 200
    sent_sms.refresh_from_db()
    assert sent_sms.status == "sent"


def test_a_late_callback_after_delivery_changes_nothing(client, sent_sms):
    callback(client, sent_sms, "delivered")
    response = callback(client, sent_sms, "sent")

    assert response.status_code == 200
    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered"


def test_a_callback_that_beats_the_worker_recording_the_send_still_lands_on_the_message(client, sent_sms):
    # Twilio answered the send and called back before the worker saved the message's SID.
    sid = sent_sms.provider_id
    Message.objects.filter(pk=sent_sms.pk).update(status="sending", provider="", provider_id="", sent_at=None)

    response = callback(client, Message(code=sent_sms.code, provider_id=sid), "delivered")

    assert response.status_code == 200
    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered" and sent_sms.provider_id == sid and sent_sms.provider == "twilio"
    assert sent_sms.sent_at is not None and sent_sms.delivered_at is not None


def test_the_worker_recording_the_send_after_an_early_delivery_does_not_turn_it_back_to_sent(client, sent_sms):
    from delivery import outbox
    from delivery.channels import get_backend
    from delivery.channels.base import SendResult

    sid = sent_sms.provider_id
    Message.objects.filter(pk=sent_sms.pk).update(status="sending", provider="", provider_id="", sent_at=None)
    callback(client, Message(code=sent_sms.code, provider_id=sid), "delivered")

    sent_sms.refresh_from_db()
    outbox._record_results([(sent_sms, SendResult(provider_id=sid))], get_backend("sms"))

    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered" and sent_sms.provider_id == sid


def test_a_callback_whose_sid_is_not_the_messages_changes_nothing(client, sent_sms):
    response = callback(client, Message(code=sent_sms.code, provider_id="SM" + "f" * 32), "failed",
                        error_code="21610")

    assert response.status_code == 200
    sent_sms.refresh_from_db()
    assert sent_sms.status == "sent"
    assert not Consent.objects.filter(subscriber=sent_sms.subscriber, channel=Channel.SMS,
                                      status=ConsentStatus.REVOKED).exists()


def test_a_bad_signature_is_refused_and_changes_nothing(client, sent_sms):
    response = callback(client, sent_sms, "delivered", signature="AAAA" + "=" * 24)

    assert response.status_code == 403
    sent_sms.refresh_from_db()
    assert sent_sms.status == "sent"


def test_a_signature_for_another_message_is_refused(client, sent_sms):
    other_path = reverse("delivery-webhooks:twilio-status", args=["other-code"])
    params = {"MessageSid": sent_sms.provider_id, "MessageStatus": "delivered"}
    signature = twilio_signature(SITE_URL + other_path, params)

    response = client.post(reverse("delivery-webhooks:twilio-status", args=[sent_sms.code]), params,
                           HTTP_X_TWILIO_SIGNATURE=signature)

    assert response.status_code == 403


def test_without_an_auth_token_every_callback_is_refused(client, sent_sms, settings):
    settings.TWILIO_AUTH_TOKEN = ""

    assert callback(client, sent_sms, "delivered").status_code == 403


@pytest.mark.parametrize("params, expected", [
    ({"MessageSid": "SM1", "MessageStatus": "delivered"}, StatusUpdate("SM1", "delivered")),
    ({"MessageSid": "SM1", "MessageStatus": "sent", "ErrorCode": "30003"}, StatusUpdate("SM1", "sent")),
    ({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "21610"},
     StatusUpdate("SM1", "failed", error_code="21610")),
    ({"SmsSid": "SM1", "SmsStatus": "undelivered", "ErrorCode": "30005", "ErrorMessage": "Unknown destination"},
     StatusUpdate("SM1", "undelivered", error_code="30005", error_message="Unknown destination")),
    ({"MessageSid": "SM1", "MessageStatus": "READ"}, StatusUpdate("SM1", "delivered")),
    ({"MessageSid": "SM1", "MessageStatus": "queued"}, None),
    ({"MessageStatus": "delivered"}, None),
    ({}, None),
])
def test_twilio_statuses_map_to_outbox_updates(params, expected):
    assert parse_status_callback(params) == expected
