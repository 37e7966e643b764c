"""Email through Django's SMTP backend to a real SMTP server on loopback (aiosmtpd, in-process)."""
import email
import email.policy
import secrets

import pytest
from aiosmtpd.controller import Controller

from config.settings import parse_email_url
from delivery.channels.base import DeliveryError
from delivery.channels.email import EmailBackend, is_valid_unsubscribe_signature, unsubscribe_url
from delivery.models import Message
from tests.factories import make_subscriber
from tests.peers import free_port

SITE_URL = "https://tanbih.example"


class Mailbox:
    """An aiosmtpd handler that keeps what it receives and refuses the recipients it is told to."""

    def __init__(self):
        self.messages = []
        self.sessions = 0
        self.refuse = {}  # address -> SMTP answer

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings):
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_URL = f"smtp://127.0.0.1:{port}"
    for name, value in parse_email_url(settings.EMAIL_URL).items():
        setattr(settings, name, value)
    settings.DEFAULT_FROM_EMAIL = "متجر تنبيه <shop@tanbih.example>"
    settings.SITE_URL = SITE_URL
    yield mailbox
    controller.stop()


def make_message(subscriber, content, locale="ar"):
    code = secrets.token_urlsafe(12)
    return Message.objects.create(idempotency_key=f"test:{code}", code=code, subscriber=subscriber, channel="email",
                                  content=content, to=subscriber.email, locale=locale, source_type="test")


CONTENT = {
    "subject": "ليلى، سلتك بانتظارك",
    "html": "<html><body><h1>مرحبا ليلى</h1><p>أكملي طلبك الآن</p></body></html>",
    "text": "مرحبا ليلى\nأكملي طلبك الآن",
}


@pytest.mark.django_db
def test_the_smtp_server_receives_the_subject_both_bodies_and_one_click_unsubscribe_headers(smtp_server):
    shopper = make_subscriber(first_name="ليلى", email="layla@example.com", locale="ar")
    message = make_message(shopper, CONTENT)

    result = EmailBackend().send(message)

    [(mail_from, recipients, mime)] = smtp_server.messages
    assert (mail_from, recipients) == ("shop@tanbih.example", ["layla@example.com"])
    assert mime["Subject"] == "ليلى، سلتك بانتظارك"
    assert mime["To"] == "layla@example.com"
    assert "متجر تنبيه" in str(mime["From"])
    link = unsubscribe_url(message)
    assert link.startswith(f"{SITE_URL}/u/{message.code}/")
    assert mime["List-Unsubscribe"].strip() == f"<{link}>"  # a long header may be folded
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mime["Message-ID"].strip() == result.provider_id and message.code in result.provider_id
    text = mime.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    html = mime.get_body(preferencelist=("html",)).get_content()
    assert "مرحبا ليلى\nأكملي طلبك الآن" in text
    assert "<h1>مرحبا ليلى</h1>" in html
    # The shopper can unsubscribe from the body too, in their language.
    assert f"لإلغاء الاشتراك: {link}" in text
    assert f'<a href="{link}">إلغاء الاشتراك</a>' in html
    assert result.status == "sent"


@pytest.mark.django_db
def test_a_body_that_links_the_unsubscribe_url_gets_no_second_footer(smtp_server):
    shopper = make_subscriber(email="sam@example.com", locale="en")
    message = make_message(shopper, {"subject": "Hi", "text": "Hello", "html": ""}, locale="en")
    link = unsubscribe_url(message)
    Message.objects.filter(pk=message.pk).update(content={"subject": "Hi", "text": f"Hello. Leave: {link}", "html": ""})
    message.refresh_from_db()

    EmailBackend().send(message)

    [(_from, _to, mime)] = smtp_server.messages
    assert mime.get_content_type() == "text/plain"
    assert mime.get_content().count(link) == 1


@pytest.mark.django_db
def test_a_batch_shares_one_smtp_connection_and_a_refused_recipient_fails_only_its_message(smtp_server):
    first = make_subscriber(email="a@example.com", locale="en")
    refused = make_subscriber(email="nobody@example.com", locale="en")
    last = make_subscriber(email="c@example.com", locale="en")
    smtp_server.refuse["nobody@example.com"] = "550 5.1.1 No such user"

    results = EmailBackend().send_many([make_message(s, CONTENT, locale="en") for s in (first, refused, last)])

    assert [r.status for r in (results[0], results[2])] == ["sent", "sent"]
    assert isinstance(results[1], DeliveryError) and results[1].permanent and results[1].code == "550"
    assert [to for _from, to, _mime in smtp_server.messages] == [["a@example.com"], ["c@example.com"]]
    assert smtp_server.sessions == 1


@pytest.mark.django_db
def test_a_mailbox_that_is_busy_for_now_is_a_transient_error(smtp_server):
    shopper = make_subscriber(email="busy@example.com")
    smtp_server.refuse["busy@example.com"] = "451 4.3.0 Try again later"

    [error] = EmailBackend().send_many([make_message(shopper, CONTENT)])

    assert isinstance(error, DeliveryError) and not error.permanent and error.code == "451"


@pytest.mark.django_db
def test_an_unreachable_mail_server_is_a_transient_error(smtp_server, settings):
    settings.EMAIL_PORT = free_port()
    shopper = make_subscriber(email="layla@example.com")

    with pytest.raises(DeliveryError) as caught:
        EmailBackend().send(make_message(shopper, CONTENT))

    assert not caught.value.permanent and not caught.value.unknown


def test_the_unsubscribe_signature_is_checked():
    assert is_valid_unsubscribe_signature("abc", unsubscribe_url(Message(code="abc")).rsplit("/", 1)[1])
    assert not is_valid_unsubscribe_signature("abd", unsubscribe_url(Message(code="abc")).rsplit("/", 1)[1])
    assert not is_valid_unsubscribe_signature("abc", "")


@pytest.mark.parametrize("url, expected", [
    ("smtp://user:p%40ss@mail.example:2525?tls",
     {"EMAIL_HOST": "mail.example", "EMAIL_PORT": 2525, "EMAIL_HOST_USER": "user", "EMAIL_HOST_PASSWORD": "p@ss",
      "EMAIL_USE_TLS": True, "EMAIL_USE_SSL": False}),
    ("smtp://mail.example?ssl",
     {"EMAIL_HOST": "mail.example", "EMAIL_PORT": 465, "EMAIL_USE_TLS": False, "EMAIL_USE_SSL": True}),
    ("smtps://u:p@mail.example",
     {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True, "EMAIL_HOST_USER": "u"}),
    ("smtp://localhost",
     {"EMAIL_HOST": "localhost", "EMAIL_PORT": 25, "EMAIL_HOST_USER": "", "EMAIL_USE_TLS": False}),
])
def test_email_url_sets_djangos_email_settings(url, expected):
    parsed = parse_email_url(url)

    assert parsed["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert {key: parsed[key] for key in expected} == expected


def test_email_url_refuses_other_schemes():
    with pytest.raises(ValueError):
        parse_email_url("http://mail.example")
