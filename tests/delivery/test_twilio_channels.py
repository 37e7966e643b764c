"""SMS and WhatsApp through the real twilio client, talking to a local server that speaks Twilio's Messages API."""
import json
import secrets
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.channels.base import DeliveryError
from delivery.channels.twilio_sms import TwilioSmsBackend
from delivery.channels.twilio_whatsapp import TwilioWhatsAppBackend
from delivery.models import Message
from subscribers import services
from subscribers.models import Source
from tests.factories import make_subscriber
from tests.twilio_peer import ACCOUNT_SID, AUTH_TOKEN, SITE_URL, _twilio_server, twilio_peer  # noqa: F401

pytestmark = pytest.mark.django_db

PHONE = "+966501234567"


def make_message(subscriber, channel, content):
    code = secrets.token_urlsafe(12)
    return Message.objects.create(idempotency_key=f"test:{code}", code=code, subscriber=subscriber,
                                  channel=channel, content=content, to=subscriber.phone, source_type="test")


def send_expecting_error(backend, message):
    with pytest.raises(DeliveryError) as caught:
        backend.send(message)
    return caught.value


@pytest.fixture
def shopper():
    return make_subscriber(first_name="ليلى", phone=PHONE, locale="ar")


# --- SMS ---------------------------------------------------------------------------------

def test_an_sms_reaches_twilio_with_to_from_body_and_a_status_callback_for_its_code(twilio_peer, shopper):
    message = make_message(shopper, "sms", {"body": "ليلى، سلتك بانتظارك: https://s.example/r/abc",
                                            "encoding": "UCS-2", "segments": 1})

    result = TwilioSmsBackend().send(message)

    received = twilio_peer.last
    assert received.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert received.auth == (ACCOUNT_SID, AUTH_TOKEN)
    assert received.form == {
        "To": [PHONE],
        "From": ["+15005550006"],
        "Body": ["ليلى، سلتك بانتظارك: https://s.example/r/abc"],
        "StatusCallback": [f"{SITE_URL}/webhooks/twilio/status/{message.code}"],
    }
    assert result.provider_id.startswith("SM") and len(result.provider_id) == 34
    assert result.status == "sent"


def test_an_sms_goes_through_the_messaging_service_when_one_is_set(twilio_peer, shopper, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "a" * 32

    TwilioSmsBackend().send(make_message(shopper, "sms", {"body": "Your order has shipped"}))

    assert twilio_peer.last.field("MessagingServiceSid") == "MG" + "a" * 32
    assert "From" not in twilio_peer.last.form


def test_an_opted_out_number_is_a_permanent_error_with_twilios_code(twilio_peer, shopper):
    twilio_peer.fail_next(21610)

    error = send_expecting_error(TwilioSmsBackend(), make_message(shopper, "sms", {"body": "Hi"}))

    assert error.permanent and error.code == "21610"
    assert not error.unknown


@pytest.mark.parametrize("code", [21211, 21614])
def test_an_invalid_number_is_a_permanent_error(twilio_peer, shopper, code):
    twilio_peer.fail_next(code)

    error = send_expecting_error(TwilioSmsBackend(), make_message(shopper, "sms", {"body": "Hi"}))

    assert error.permanent and error.code == str(code)


def test_too_many_requests_is_retried_after_what_twilio_asks(twilio_peer, shopper):
    twilio_peer.fail_next(20429, headers={"Retry-After": "30"})

    error = send_expecting_error(TwilioSmsBackend(), make_message(shopper, "sms", {"body": "Hi"}))

    assert not error.permanent and not error.unknown
    assert error.retry_after == 30


def test_a_twilio_server_error_is_transient(twilio_peer, shopper):
    twilio_peer.fail_next(20500)

    error = send_expecting_error(TwilioSmsBackend(), make_message(shopper, "sms", {"body": "Hi"}))

    assert not error.permanent and not error.unknown
    assert error.retry_after is None


def test_a_timeout_after_the_request_left_is_unknown_and_never_blindly_retried(twilio_peer, shopper, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 0.3
    twilio_peer.hang_next(2)

    error = send_expecting_error(TwilioSmsBackend(), make_message(shopper, "sms", {"body": "Hi"}))

    # Twilio did receive it: sending again could text the shopper twice.
    assert twilio_peer.last.field("Body") == "Hi"
    assert error.unknown and not error.permanent


def test_an_unreachable_twilio_is_transient_because_nothing_was_sent(twilio_peer, shopper, settings):
    from tests.peers import free_port

    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"

    error = send_expecting_error(TwilioSmsBackend(), make_message(shopper, "sms", {"body": "Hi"}))

    assert not error.unknown and not error.permanent


def test_sms_is_off_without_a_sender(twilio_peer, settings):
    settings.TWILIO_FROM_NUMBER = ""

    assert not TwilioSmsBackend().is_configured()
    assert TwilioWhatsAppBackend().is_configured()


# --- WhatsApp ----------------------------------------------------------------------------

def shopper_wrote_on_whatsapp(subscriber, ago):
    services.record_event(subscriber=subscriber, name="whatsapp_received", source=Source.WEBHOOK,
                          occurred_at=timezone.now() - ago, properties={"body": "مرحبا"})


WHATSAPP_CONTENT = {
    "body": "ليلى، طلبك في الطريق",
    "content_sid": "HX" + "b" * 32,
    "content_variables": {"1": "ليلى", "2": "A-1001"},
}


def test_whatsapp_inside_the_session_window_sends_free_text_with_whatsapp_prefixes(twilio_peer, shopper):
    shopper_wrote_on_whatsapp(shopper, ago=timedelta(hours=3))
    message = make_message(shopper, "whatsapp", WHATSAPP_CONTENT)

    TwilioWhatsAppBackend().send(message)

    assert twilio_peer.last.form == {
        "To": [f"whatsapp:{PHONE}"],
        "From": ["whatsapp:+14155238886"],
        "Body": ["ليلى، طلبك في الطريق"],
        "StatusCallback": [f"{SITE_URL}/webhooks/twilio/status/{message.code}"],
    }


def test_whatsapp_outside_the_window_sends_the_approved_template_with_its_variables(twilio_peer, shopper):
    shopper_wrote_on_whatsapp(shopper, ago=timedelta(hours=25))
    message = make_message(shopper, "whatsapp", WHATSAPP_CONTENT)

    TwilioWhatsAppBackend().send(message)

    form = twilio_peer.last.form
    assert form["ContentSid"] == ["HX" + "b" * 32]
    assert json.loads(form["ContentVariables"][0]) == {"1": "ليلى", "2": "A-1001"}
    assert form["To"] == [f"whatsapp:{PHONE}"] and form["From"] == ["whatsapp:+14155238886"]
    assert "Body" not in form


def test_whatsapp_outside_the_window_without_a_template_fails_at_once_without_calling_twilio(twilio_peer, shopper):
    message = make_message(shopper, "whatsapp", {"body": "Free text"})

    error = send_expecting_error(TwilioWhatsAppBackend(), message)

    assert error.permanent and error.code == "63016"
    assert twilio_peer.requests == []


def test_twilios_own_outside_the_window_error_is_permanent(twilio_peer, shopper):
    shopper_wrote_on_whatsapp(shopper, ago=timedelta(hours=1))
    twilio_peer.fail_next(63016)

    error = send_expecting_error(TwilioWhatsAppBackend(), make_message(shopper, "whatsapp", {"body": "Hi"}))

    assert error.permanent and error.code == "63016"


def test_whatsapp_uses_the_messaging_service_when_there_is_no_whatsapp_sender(twilio_peer, shopper, settings):
    settings.TWILIO_WHATSAPP_FROM = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "c" * 32
    shopper_wrote_on_whatsapp(shopper, ago=timedelta(minutes=5))

    TwilioWhatsAppBackend().send(make_message(shopper, "whatsapp", {"body": "Hi"}))

    assert twilio_peer.last.field("MessagingServiceSid") == "MG" + "c" * 32
    assert "From" not in twilio_peer.last.form
    assert twilio_peer.last.field("To") == f"whatsapp:{PHONE}"
