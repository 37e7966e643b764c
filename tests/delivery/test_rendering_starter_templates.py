"""The starter templates load, validate and render in Arabic and English on every channel they cover."""
import pytest
from django.core.management import call_command

from delivery import rendering
from delivery.models import MessageTemplate
from delivery.starter_templates import STARTER_TEMPLATES, load_starter_templates
from subscribers import services
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db


def test_the_command_creates_the_starter_templates_in_arabic_and_english(capsys):
    call_command("load_starter_templates")

    assert set(MessageTemplate.objects.values_list("slug", flat=True)) == {
        "abandoned-cart", "order-shipped", "back-in-stock", "welcome"}
    cart = MessageTemplate.objects.get(slug="abandoned-cart")
    assert sorted(cart.contents.values_list("channel", "locale")) == [
        ("email", "ar"), ("email", "en"), ("push", "ar"), ("push", "en"), ("sms", "ar"), ("sms", "en"),
        ("whatsapp", "ar"), ("whatsapp", "en")]
    assert MessageTemplate.objects.get(slug="order-shipped").is_transactional
    assert "4 starter template(s) written." in capsys.readouterr().out


def test_loading_again_keeps_what_a_marketer_edited_unless_told_to_overwrite():
    load_starter_templates()
    content = MessageTemplate.objects.get(slug="welcome").contents.get(channel="sms", locale="ar")
    content.body = "نص معدّل"
    content.save()

    assert load_starter_templates() == []
    assert MessageTemplate.objects.get(slug="welcome").contents.get(channel="sms", locale="ar").body == "نص معدّل"

    assert len(load_starter_templates(overwrite=True)) == 4
    assert MessageTemplate.objects.get(slug="welcome").contents.get(channel="sms", locale="ar").body != "نص معدّل"


@pytest.mark.parametrize("spec", STARTER_TEMPLATES, ids=lambda spec: spec["slug"])
def test_every_starter_content_validates_and_renders_for_the_sample_shopper(spec):
    load_starter_templates()
    template = MessageTemplate.objects.get(slug=spec["slug"])

    for content in template.contents.all():
        rendering.validate_content(content)
        rendered = rendering.render_sample(template=template, channel=content.channel, locale=content.locale)
        assert "{{" not in str(rendered) and "{%" not in str(rendered)


def test_the_abandoned_cart_sms_reaches_a_real_shopper_with_their_cart(settings):
    load_starter_templates()
    shopper = make_subscriber(first_name="ريم", locale="ar-SA")
    cart = services.update_cart(subscriber_id=shopper.pk, cart_id="c-9", items=[
        {"product_id": "p", "title": "عطر", "price": "200", "quantity": 1, "url": "https://shop.example.com/p"}])

    locale, content = rendering.render_message(template=MessageTemplate.objects.get(slug="abandoned-cart"),
                                               channel="sms", subscriber=shopper, context={"cart": cart})

    assert locale == "ar"
    assert content["body"] == f"ريم، سلتك بانتظارك. أكمل طلبك: {cart.restore_url}"
    assert content["encoding"] == "UCS-2"


def test_the_welcome_push_opens_the_store_and_greets_a_shopper_without_a_name(settings):
    settings.STORE_URL = "https://shop.example.com"
    load_starter_templates()

    _, content = rendering.render_message(template=MessageTemplate.objects.get(slug="welcome"), channel="push",
                                          subscriber=make_subscriber(locale="en-US"),
                                          context={"discount_code": "HELLO15"})

    assert content["title"] == "Welcome 👋"
    assert content["body"] == "Use the code HELLO15 for a discount on your first order."
    assert content["url"] == "https://shop.example.com"


def test_the_order_shipped_push_falls_back_to_the_store_without_a_tracking_link(settings):
    settings.STORE_URL = "https://shop.example.com"
    load_starter_templates()

    _, content = rendering.render_message(template=MessageTemplate.objects.get(slug="order-shipped"), channel="push",
                                          subscriber=make_subscriber(locale="ar"), context={"order": {"id": "SO-1"}})

    assert content["body"] == "شحنّا طلبك رقم SO-1. سيصلك قريباً."
    assert content["url"] == "https://shop.example.com"
    assert content["urgency"] == "high"
