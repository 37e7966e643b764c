"""One-click email unsubscribe (RFC 8058): a signed link, no login; GET asks, POST revokes at once."""
import secrets

import pytest
from django.test import Client

from delivery.channels.email import EmailBackend, unsubscribe_url
from delivery.models import Message, MessageEvent
from subscribers import services
from subscribers.models import Channel, Consent, ConsentStatus, Source
from tests.delivery.test_email_channel import CONTENT, smtp_server  # noqa: F401
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db

SITE_URL = "https://tanbih.example"


@pytest.fixture
def site(settings):
    settings.SITE_URL = SITE_URL


def email_message(locale="ar", address="layla@example.com"):
    shopper = make_subscriber(first_name="ليلى", email=address, locale=locale)
    services.grant_consent(subscriber=shopper, channel=Channel.EMAIL, source=Source.API)
    code = secrets.token_urlsafe(12)
    return Message.objects.create(idempotency_key=f"test:{code}", code=code, subscriber=shopper, channel="email",
                                  content=CONTENT, to=address, locale=locale, source_type="test", status="sent")


def path_of(url):
    return url.removeprefix(SITE_URL)


def email_consent(message):
    return Consent.objects.get(subscriber=message.subscriber, channel=Channel.EMAIL).status


@pytest.fixture
def strict_client():
    """A mail provider's POST: no session, no cookies, no CSRF token."""
    return Client(enforce_csrf_checks=True)


def test_the_one_click_post_from_a_mail_provider_revokes_email_consent_at_once(site, strict_client):
    message = email_message()

    response = strict_client.post(path_of(unsubscribe_url(message)), "List-Unsubscribe=One-Click",
                                  content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert email_consent(message) == ConsentStatus.REVOKED
    assert MessageEvent.objects.filter(message=message, kind="unsubscribed").exists()
    assert "تم إلغاء اشتراكك" in response.content.decode()


def test_the_link_from_a_received_email_unsubscribes(site, smtp_server, strict_client):  # noqa: F811
    message = email_message(locale="en", address="sam@example.com")
    EmailBackend().send(message)
    [(_from, _to, mime)] = smtp_server.messages
    link = mime["List-Unsubscribe"].strip().strip("<>")

    strict_client.post(path_of(link), {"List-Unsubscribe": "One-Click"})

    assert email_consent(message) == ConsentStatus.REVOKED


def test_opening_the_link_asks_to_confirm_in_the_shoppers_language_and_unsubscribes_nothing(site, client):
    message = email_message(locale="ar")

    page = client.get(path_of(unsubscribe_url(message)))

    text = page.content.decode()
    assert page.status_code == 200
    assert '<html lang="ar" dir="rtl">' in text
    assert "هل تريد إيقاف الرسائل البريدية إلى l***@example.com؟" in text
    assert '<form method="post">' in text and "إلغاء الاشتراك</button>" in text
    assert "layla@example.com" not in text
    assert page["X-Robots-Tag"] == "noindex" and page["Referrer-Policy"] == "no-referrer"
    # Link scanners and previews open links: only the POST unsubscribes.
    assert email_consent(message) == ConsentStatus.GRANTED


def test_the_confirmation_page_is_english_for_an_english_speaker(site, client):
    message = email_message(locale="en", address="sam@example.com")

    text = client.get(path_of(unsubscribe_url(message))).content.decode()

    assert '<html lang="en" dir="ltr">' in text
    assert "Stop sending emails to s***@example.com?" in text


def test_the_page_escapes_what_it_shows(site, client):
    message = email_message(locale="en", address="sam@example.com")
    Message.objects.filter(pk=message.pk).update(to='x@"><script>alert(1)</script>')

    text = client.get(path_of(unsubscribe_url(message))).content.decode()

    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_tampered_link_unsubscribes_nobody(site, strict_client):
    message = email_message()
    other = email_message(address="other@example.com")
    forged = f"/u/{other.code}/{unsubscribe_url(message).rsplit('/', 1)[1]}"

    assert strict_client.post(forged, {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert strict_client.get(f"/u/{message.code}/not-a-signature").status_code == 404
    assert email_consent(other) == ConsentStatus.GRANTED


def test_a_validly_signed_link_to_a_message_that_no_longer_exists_is_not_found(site, strict_client):
    message = email_message()
    link = path_of(unsubscribe_url(message))
    message.delete()

    assert strict_client.post(link, {"List-Unsubscribe": "One-Click"}).status_code == 404


def test_posting_twice_is_harmless(site, strict_client):
    message = email_message()
    link = path_of(unsubscribe_url(message))

    strict_client.post(link, {"List-Unsubscribe": "One-Click"})
    second = strict_client.post(link, {"List-Unsubscribe": "One-Click"})

    assert second.status_code == 200
    assert email_consent(message) == ConsentStatus.REVOKED
