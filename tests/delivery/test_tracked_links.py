"""Links in SMS, WhatsApp and email go out as the message's signed /c/ links, and a click on one is recorded."""
import re
from urllib.parse import unquote

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils.html import escape

from delivery import outbox
from delivery.channels import reset_backends
from delivery.channels.email import unsubscribe_url
from delivery.models import Message, MessageStatus, MessageTemplate, TemplateContent
from delivery.rendering import render_sample, sms_info
from subscribers import services
from subscribers.models import Channel, Source, Subscriber
from tests.delivery.test_email_channel import smtp_server  # noqa: F401 - the aiosmtpd peer
from tests.factories import make_subscriber
from tests.twilio_peer import SITE_URL, _twilio_server, twilio_peer  # noqa: F401

pytestmark = pytest.mark.django_db

CART = "https://shop.example.com/cart?utm_source=sms&utm_campaign=back"
SALE = "https://shop.example.com/sale"


@pytest.fixture(autouse=True)
def no_quiet_hours(settings):
    settings.QUIET_HOURS = {channel: "off" for channel in ("push", "sms", "whatsapp", "email", "inapp")}
    settings.SITE_URL = SITE_URL
    settings.DELIVERY_TRACK_LINKS = "sms,whatsapp,email"
    yield
    reset_backends()


def shopper(channel="sms", **fields):
    fields = {"first_name": "نورة", "phone": "+966501234567", "email": "nora@example.com", "locale": "ar", **fields}
    subscriber = make_subscriber(**fields)
    services.grant_consent(subscriber=subscriber, channel=channel, source=Source.API)
    return subscriber


def sms_template(body):
    template = MessageTemplate.objects.create(name="Cart", slug="cart", default_locale="ar")
    TemplateContent.objects.create(template=template, channel="sms", locale="ar", body=body)
    return template


def click_links(text):
    """The tracking links in `text`, in order."""
    return re.findall(re.escape(SITE_URL) + r"/c/[\w-]+/\d+\.[\w-]+", text)


def follow(client, link):
    assert link.startswith(SITE_URL)
    return client.get(link[len(SITE_URL):])


def test_an_sms_link_reaches_twilio_as_the_click_link_and_a_click_is_recorded_and_redirected(client, twilio_peer):
    template = sms_template("{{ first_name }}، سلتك بانتظارك: " + CART)
    message, _ = outbox.queue_message(subscriber=shopper(), channel="sms", source_type="api", source_id="cart-1",
                                      template=template, transactional=True)

    outbox.deliver([message.pk])

    body = twilio_peer.last.field("Body")
    [link] = click_links(body)
    assert link == outbox.click_url(message, 0)
    assert body == f"نورة، سلتك بانتظارك: {link}"
    assert CART not in body
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.content["links"] == [CART]  # what the marketer sees in the admin

    response = follow(client, link)

    assert response.status_code == 302
    assert response["Location"] == CART
    message.refresh_from_db()
    assert message.clicked_at is not None
    assert message.history.filter(kind="clicked").count() == 1


def test_each_distinct_link_gets_its_own_number_and_a_repeated_link_shares_one(client):
    message, _ = outbox.queue_message(
        subscriber=shopper(), channel="sms", source_type="api", source_id="two-links",
        content={"body": f"Cart: {CART} Sale: {SALE}. Cart again: ({CART})"})

    links = click_links(message.content["body"])

    assert message.content["links"] == [CART, SALE]
    assert links == [outbox.click_url(message, 0), outbox.click_url(message, 1), outbox.click_url(message, 0)]
    assert message.content["body"].endswith(f"({links[0]})")  # the sentence's punctuation stays outside the link
    assert [follow(client, link)["Location"] for link in links[:2]] == [CART, SALE]


def test_a_broadcast_gives_every_shopper_their_own_click_links(django_capture_on_commit_callbacks):
    first, second = shopper(first_name="نورة"), shopper(first_name="سارة", phone="+966501234568")
    template = sms_template("{{ first_name }}، تخفيضات اليوم: " + SALE)

    with django_capture_on_commit_callbacks(execute=False):
        counts = outbox.fan_out(audience=Subscriber.objects.filter(pk__in=[first.pk, second.pk]), channel="sms",
                                template=template, source_type="campaign", source_id="sale")

    assert counts["created"] == 2
    for message in Message.objects.filter(source_id="sale"):
        assert click_links(message.content["body"]) == [outbox.click_url(message, 0)]
        assert message.content["links"] == [SALE]
        assert message.content["segments"] == sms_info(message.content["body"]).segments


def test_an_arabic_sms_is_counted_with_its_tracking_link_not_the_link_as_written(twilio_peer):
    # 45 Arabic characters, a space and an 18-character link: 64 characters, one segment as written;
    # the tracking link is longer and makes it two.
    text = "ع" * 45
    short_link = "https://sh.op/a/b1"
    assert sms_info(f"{text} {short_link}").segments == 1
    template = sms_template(f"{text} {short_link}")
    message, _ = outbox.queue_message(subscriber=shopper(), channel="sms", source_type="api", source_id="ar",
                                      template=template, transactional=True)

    outbox.deliver([message.pk])

    sent = twilio_peer.last.field("Body")
    assert sent == f"{text} {outbox.click_url(message, 0)}"
    message.refresh_from_db()
    assert (message.content["encoding"], message.content["segments"]) == ("UCS-2", 2)
    assert sms_info(sent).characters == 46 + len(outbox.click_url(message, 0))


def test_the_template_preview_counts_the_sms_with_its_tracking_link():
    text = "ع" * 45
    template = sms_template(f"{text} https://sh.op/a/b1")

    preview = render_sample(template=template, channel="sms", locale="ar")

    assert preview["body"].startswith(f"{text} {SITE_URL}/c/")
    assert preview["segments"] == 2 == sms_info(preview["body"]).segments


def test_a_whatsapp_session_text_links_through_the_click_link():
    message, _ = outbox.queue_message(subscriber=shopper("whatsapp"), channel="whatsapp", source_type="api",
                                      source_id="wa", content={"body": f"طلبك جاهز: {CART}"})

    assert message.content["body"] == f"طلبك جاهز: {outbox.click_url(message, 0)}"
    assert message.content["links"] == [CART]


def test_a_tampered_signature_or_link_number_is_refused_and_records_no_click(client):
    message, _ = outbox.queue_message(subscriber=shopper(), channel="sms", source_type="api", source_id="t",
                                      content={"body": f"Sale: {SALE}"})
    [link] = click_links(message.content["body"])
    path = link[len(SITE_URL):]
    signature = path.rsplit(".", 1)[1]

    assert client.get(f"/c/{message.code}/1.{signature}").status_code == 404
    assert client.get(path[:-2] + ("AA" if not path.endswith("AA") else "BB")).status_code == 404
    assert client.get(outbox.click_path(message.code, 1)).status_code == 404  # signed, but no link 1
    message.refresh_from_db()
    assert message.clicked_at is None
    assert not message.history.filter(kind="clicked").exists()


def test_turning_tracking_off_for_a_channel_leaves_its_links_as_written(settings):
    settings.DELIVERY_TRACK_LINKS = "email"
    subscriber = shopper()

    sms, _ = outbox.queue_message(subscriber=subscriber, channel="sms", source_type="api", source_id="off",
                                  content={"body": f"Sale: {SALE}"})
    email, _ = outbox.queue_message(subscriber=subscriber, channel="email", source_type="api", source_id="on",
                                    content={"subject": "Sale", "html": "", "text": f"Sale: {SALE}"})
    settings.DELIVERY_TRACK_LINKS = ""
    untracked, _ = outbox.queue_message(subscriber=subscriber, channel="email", source_type="api", source_id="off",
                                        content={"subject": "Sale", "html": "", "text": f"Sale: {SALE}"})

    assert sms.content == {"body": f"Sale: {SALE}"}
    assert email.content["text"] == f"Sale: {outbox.click_url(email, 0)}"
    assert untracked.content == {"subject": "Sale", "html": "", "text": f"Sale: {SALE}"}


EMAIL_HTML = (
    '<html><body><!-- header --><h1 class="t">مرحبا {{ first_name }}</h1>'
    '<p><a class="btn" title="a > b" href="{{ cart.restore_url }}">أكملي طلبك</a> '
    "<a href='https://shop.example.com/sale'>التخفيضات</a> "
    '<a href="mailto:help@shop.example.com">راسلينا</a> <a href="tel:+966500000000">اتصلي</a> '
    '<a href="#top">أعلى</a> <a name="x">بلا رابط</a></p></body></html>'
)
RESTORE = "https://shop.example.com/cart/restore?c=42&t=abc"


def test_an_email_has_tracked_links_in_html_and_text_and_its_unsubscribe_link_untouched(client, settings,
                                                                                          smtp_server):
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS, "email": "delivery.channels.email.EmailBackend"}
    reset_backends()
    template = MessageTemplate.objects.create(name="Cart", slug="cart-email", default_locale="ar")
    TemplateContent.objects.create(template=template, channel="email", locale="ar", subject="سلتك",
                                   html_body=EMAIL_HTML)
    message, _ = outbox.queue_message(subscriber=shopper("email"), channel="email", source_type="api",
                                      source_id="mail", template=template, transactional=True,
                                      context={"cart": {"restore_url": RESTORE}})

    outbox.deliver([message.pk])

    [(_from, _to, mime)] = smtp_server.messages
    html = mime.get_body(preferencelist=("html",)).get_content()
    text = mime.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    restore, sale = outbox.click_url(message, 0), outbox.click_url(message, 1)
    # Only the two web links changed; everything else in the markup is as the marketer wrote it.
    assert html.startswith(
        '<html><body><!-- header --><h1 class="t">مرحبا نورة</h1>'
        f'<p><a class="btn" title="a > b" href="{restore}">أكملي طلبك</a> '
        f'<a href="{sale}">التخفيضات</a> '
        '<a href="mailto:help@shop.example.com">راسلينا</a> <a href="tel:+966500000000">اتصلي</a> '
        '<a href="#top">أعلى</a> <a name="x">بلا رابط</a></p>')
    assert "shop.example.com/cart" not in html and "shop.example.com/sale" not in html
    assert f"أكملي طلبك ({restore})" in text and f"التخفيضات ({sale})" in text
    assert "mailto:help@shop.example.com" in text
    unsubscribe = unsubscribe_url(message)
    assert f'<a href="{unsubscribe}">' in html and unsubscribe in text
    assert mime["List-Unsubscribe"].strip() == f"<{unsubscribe}>"
    message.refresh_from_db()
    assert message.content["links"] == [RESTORE, "https://shop.example.com/sale"]

    response = follow(client, restore)

    assert response["Location"] == RESTORE  # the &amp; of the HTML is a plain & again
    message.refresh_from_db()
    assert message.clicked_at is not None


def test_an_unsubscribe_link_written_in_the_body_is_not_tracked():
    subscriber = shopper("email")
    message, _ = outbox.queue_message(subscriber=subscriber, channel="email", source_type="api", source_id="u",
                                      content={"subject": "Hi", "html": "", "text": "Hi"})
    own = unsubscribe_url(message)
    body = f"Leave: {own} Shop: {SALE}"

    again, _ = outbox.queue_message(subscriber=subscriber, channel="email", source_type="api", source_id="u2",
                                    content={"subject": "Hi", "html": f'<a href="{own}">Leave</a>', "text": body})

    assert f'<a href="{own}">Leave</a>' == again.content["html"]
    assert again.content["text"] == f"Leave: {own} Shop: {outbox.click_url(again, 0)}"
    assert again.content["links"] == [SALE]


def test_a_link_crafted_to_break_out_of_the_href_injects_nothing_and_still_redirects_only_to_itself(client):
    crafted = 'https://shop.example.com/p?q="><svg/onload=alert(1)>'
    template = MessageTemplate.objects.create(name="Product", slug="product", default_locale="ar")
    TemplateContent.objects.create(template=template, channel="email", locale="ar", subject="جديد",
                                   html_body='<p><a href="{{ product.url }}">شاهدي</a></p>', text_body="شاهدي")
    message, _ = outbox.queue_message(subscriber=shopper("email"), channel="email", source_type="api",
                                      source_id="x", template=template, context={"product": {"url": crafted}})

    assert message.content["html"] == f'<p><a href="{outbox.click_url(message, 0)}">شاهدي</a></p>'
    assert message.content["links"] == [crafted]
    location = follow(client, outbox.click_url(message, 0))["Location"]
    assert unquote(location) == crafted and not set('<>"') & set(location)


def test_a_misspelt_channel_in_the_setting_is_a_configuration_error_not_silently_untracked(settings):
    settings.DELIVERY_TRACK_LINKS = "sms,emial"

    with pytest.raises(ImproperlyConfigured, match="emial"):
        outbox.queue_message(subscriber=shopper(), channel="sms", source_type="api", source_id="typo",
                             content={"body": f"Sale: {SALE}"})

    assert not Message.objects.filter(source_id="typo").exists()


def test_the_message_admin_page_shows_the_links_as_the_marketer_wrote_them(admin_client):
    message, _ = outbox.queue_message(subscriber=shopper(), channel="sms", source_type="api", source_id="admin",
                                      content={"body": f"Sale: {SALE}"})

    page = admin_client.get(reverse("admin:delivery_message_change", args=[message.pk])).content.decode()

    assert SALE in page
    assert escape(outbox.click_url(message, 0)) in page


def test_an_href_is_kept_as_a_browser_reads_it_with_entities_decoded_and_query_names_left_alone(client):
    html = '<a href="https://shop.example.com/s?a=1&reg=sa&amp;lang=ar&#38;x=%D8%B9">تسوقي</a>'
    message, _ = outbox.queue_message(subscriber=shopper("email"), channel="email", source_type="api",
                                      source_id="entities", content={"subject": "s", "html": html, "text": "t"})

    assert message.content["links"] == ["https://shop.example.com/s?a=1&reg=sa&lang=ar&x=%D8%B9"]
    assert follow(client, outbox.click_url(message, 0))["Location"] == message.content["links"][0]
