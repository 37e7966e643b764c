"""Messages from shoppers through Twilio's incoming-message webhook: keywords in English and Arabic, signatures."""
import pytest
from django.urls import reverse
from twilio.twiml.messaging_response import MessagingResponse

from delivery import keywords
from delivery.channels.twilio_whatsapp import in_session_window
from subscribers import services
from subscribers.models import Channel, Consent, ConsentChange, ConsentStatus, Event, Source
from tests.factories import make_subscriber
from tests.twilio_peer import SITE_URL, _twilio_server, twilio_peer, twilio_signature  # noqa: F401

pytestmark = pytest.mark.django_db

PHONE = "+966501234567"
INBOUND_PATH = "/webhooks/twilio/inbound"


@pytest.fixture
def shopper(twilio_peer):
    subscriber = make_subscriber(first_name="Sam", phone=PHONE, locale="en")
    for channel in (Channel.SMS, Channel.WHATSAPP):
        services.grant_consent(subscriber=subscriber, channel=channel, source=Source.API)
    return subscriber


@pytest.fixture
def arabic_shopper(twilio_peer):
    subscriber = make_subscriber(first_name="ليلى", phone="+966551234567", locale="ar")
    for channel in (Channel.SMS, Channel.WHATSAPP):
        services.grant_consent(subscriber=subscriber, channel=channel, source=Source.API)
    return subscriber


def inbound(client, body, *, sender=PHONE, sid="SM" + "1" * 32, signature=None, **extra):
    params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender, "To": "+15005550006",
              "Body": body, "NumMedia": "0"}
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature if signature is not None
               else twilio_signature(SITE_URL + INBOUND_PATH, params)}
    return client.post(INBOUND_PATH, params, **headers, **extra)


def twiml_reply(text):
    response = MessagingResponse()
    response.message(text)
    return str(response)


def consent(subscriber, channel):
    return Consent.objects.get(subscriber=subscriber, channel=channel)


def test_the_inbound_address_is_the_one_to_set_in_twilio():
    assert reverse("delivery-webhooks:twilio-inbound") == INBOUND_PATH


def test_stop_by_sms_revokes_sms_consent_at_once_and_confirms_in_the_shoppers_language(client, shopper):
    response = inbound(client, "STOP")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode() == twiml_reply(keywords.REPLIES["stop"]["en"])
    revoked = consent(shopper, Channel.SMS)
    assert revoked.status == ConsentStatus.REVOKED and revoked.source == Source.KEYWORD
    assert revoked.evidence["body"] == "STOP" and revoked.evidence["message_sid"] == "SM" + "1" * 32
    assert consent(shopper, Channel.WHATSAPP).status == ConsentStatus.GRANTED


@pytest.mark.parametrize("body", ["إلغاء", "الغاء", "توقف", "ايقاف", "إيقاف", " إيقاف. ", "الغاء!"])
def test_stop_in_arabic_revokes_and_replies_in_arabic(client, arabic_shopper, body):
    response = inbound(client, body, sender=arabic_shopper.phone)

    assert response.content.decode() == twiml_reply(keywords.REPLIES["stop"]["ar"])
    assert "تم إلغاء اشتراكك" in response.content.decode()
    assert consent(arabic_shopper, Channel.SMS).status == ConsentStatus.REVOKED
    assert consent(arabic_shopper, Channel.SMS).evidence["body"] == body


@pytest.mark.parametrize("body", ["stop", "Unsubscribe", "CANCEL", "end", "Quit", "STOP."])
def test_every_english_stop_word_revokes_whatever_its_case(client, shopper, body):
    inbound(client, body)

    assert consent(shopper, Channel.SMS).status == ConsentStatus.REVOKED


def test_an_english_stop_from_an_arabic_speaker_is_confirmed_in_arabic(client, arabic_shopper):
    response = inbound(client, "STOP", sender=arabic_shopper.phone)

    assert response.content.decode() == twiml_reply(keywords.REPLIES["stop"]["ar"])


def test_stop_on_whatsapp_revokes_whatsapp_only(client, shopper):
    inbound(client, "STOP", sender=f"whatsapp:{PHONE}")

    assert consent(shopper, Channel.WHATSAPP).status == ConsentStatus.REVOKED
    assert consent(shopper, Channel.SMS).status == ConsentStatus.GRANTED


def test_stopall_revokes_sms_and_whatsapp(client, shopper):
    inbound(client, "STOPALL")

    assert consent(shopper, Channel.SMS).status == ConsentStatus.REVOKED
    assert consent(shopper, Channel.WHATSAPP).status == ConsentStatus.REVOKED


def test_a_sentence_containing_stop_is_not_a_keyword(client, shopper):
    response = inbound(client, "Please don't stop sending offers")

    assert response.content.decode() == str(MessagingResponse())
    assert consent(shopper, Channel.SMS).status == ConsentStatus.GRANTED


def test_start_restores_consent_after_stop(client, shopper):
    inbound(client, "STOP", sid="SM" + "a" * 32)
    response = inbound(client, "START", sid="SM" + "b" * 32)

    assert response.content.decode() == twiml_reply(keywords.REPLIES["start"]["en"])
    restored = consent(shopper, Channel.SMS)
    assert restored.status == ConsentStatus.GRANTED and restored.source == Source.KEYWORD
    assert list(ConsentChange.objects.filter(subscriber=shopper, channel=Channel.SMS, source=Source.KEYWORD)
                .order_by("pk").values_list("status", flat=True)) == [ConsentStatus.REVOKED, ConsentStatus.GRANTED]


@pytest.mark.parametrize("body", ["ابدأ", "ابدا", "اشتراك"])
def test_start_in_arabic_restores_and_replies_in_arabic(client, arabic_shopper, body):
    inbound(client, "توقف", sender=arabic_shopper.phone, sid="SM" + "c" * 32)
    response = inbound(client, body, sender=arabic_shopper.phone, sid="SM" + "d" * 32)

    assert response.content.decode() == twiml_reply(keywords.REPLIES["start"]["ar"])
    assert consent(arabic_shopper, Channel.SMS).status == ConsentStatus.GRANTED


def test_help_answers_in_english_and_arabic_without_touching_consent(client, shopper, arabic_shopper):
    english = inbound(client, "HELP")
    arabic = inbound(client, "مساعدة", sender=arabic_shopper.phone)

    assert english.content.decode() == twiml_reply(keywords.REPLIES["help"]["en"])
    assert arabic.content.decode() == twiml_reply(keywords.REPLIES["help"]["ar"])
    assert consent(shopper, Channel.SMS).status == ConsentStatus.GRANTED


def test_every_profile_with_the_number_is_opted_out(client, shopper):
    twin = make_subscriber(phone=PHONE)
    services.grant_consent(subscriber=twin, channel=Channel.SMS, source=Source.API)

    inbound(client, "STOP")

    assert consent(shopper, Channel.SMS).status == ConsentStatus.REVOKED
    assert consent(twin, Channel.SMS).status == ConsentStatus.REVOKED


def test_a_stop_from_an_unknown_number_is_still_confirmed(client, twilio_peer):
    response = inbound(client, "STOP", sender="+966561234567")

    assert response.content.decode() == twiml_reply(keywords.REPLIES["stop"]["en"])


def test_a_message_is_stored_as_an_event_and_a_whatsapp_one_opens_the_session_window(client, shopper):
    assert not in_session_window(shopper)

    inbound(client, "هل وصل طلبي؟", sender=f"whatsapp:{PHONE}", sid="SM" + "e" * 32)
    inbound(client, "Hello", sid="SM" + "f" * 32)

    events = {event.name: event for event in Event.objects.filter(subscriber=shopper)}
    assert events["whatsapp_received"].properties["body"] == "هل وصل طلبي؟"
    assert events["sms_received"].properties["message_sid"] == "SM" + "f" * 32
    assert in_session_window(shopper)


def test_twilio_retrying_the_same_message_stores_it_once(client, shopper):
    inbound(client, "Hello")
    inbound(client, "Hello")

    assert Event.objects.filter(subscriber=shopper, name="sms_received").count() == 1


def test_a_bad_signature_is_refused_and_changes_nothing(client, shopper):
    response = inbound(client, "STOP", signature="bm90IHR3aWxpbw==")

    assert response.status_code == 403
    assert consent(shopper, Channel.SMS).status == ConsentStatus.GRANTED
    assert not Event.objects.filter(subscriber=shopper).exclude(name="subscribed").exists()


def test_a_missing_signature_is_refused(client, shopper):
    assert inbound(client, "STOP", signature="").status_code == 403


def test_a_signature_with_another_auth_token_is_refused(client, shopper):
    params = {"MessageSid": "SM" + "2" * 32, "From": PHONE, "Body": "STOP"}
    forged = twilio_signature(SITE_URL + INBOUND_PATH, params, token="someone-elses-token")

    assert client.post(INBOUND_PATH, params, HTTP_X_TWILIO_SIGNATURE=forged).status_code == 403


def test_the_signature_is_checked_against_the_public_site_url_not_the_internal_host(client, shopper):
    # Behind a proxy Django sees its internal address; Twilio signed the public one.
    response = inbound(client, "STOP", HTTP_HOST="127.0.0.1:8000")

    assert response.status_code == 200
    assert consent(shopper, Channel.SMS).status == ConsentStatus.REVOKED


def test_get_is_not_allowed(client, twilio_peer):
    assert client.get(INBOUND_PATH).status_code == 405


@pytest.mark.parametrize("body, action", [
    ("STOP", "stop"), ("  stop  ", "stop"), ("إِلْغَاء", "stop"), ("إلغـــاء", "stop"), ("STOPALL", "stop_all"),
    ("YES", "start"), ("UNSTOP", "start"), ("ابدأ", "start"), ("مساعده", "help"), ("info", "help"),
    ("stop please", None), ("", None), ("شكرا", None),
])
def test_keywords_are_whole_messages_ignoring_case_punctuation_and_arabic_spelling_variants(body, action):
    found = keywords.classify(body)

    assert (found.action if found else None) == action
