"""Rendering message templates: personalisation, refusals, locale choice and channel shapes."""
import json

import pytest

from delivery import rendering
from delivery.models import MessageTemplate, TemplateContent
from delivery.rendering import RenderError, build_context, render_message, render_sample
from subscribers import services
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db


def make_template(slug="cart", default_locale="ar", **kwargs):
    return MessageTemplate.objects.create(name=slug.title(), slug=slug, default_locale=default_locale, **kwargs)


def add(template, channel, locale, **fields):
    return TemplateContent.objects.create(template=template, channel=channel, locale=locale, **fields)


@pytest.fixture
def shopper():
    return make_subscriber(first_name="نورة", last_name="العتيبي", locale="ar-SA", phone="+966500000001",
                           email="nora@example.com", city="الرياض", attributes={"size": "M", "empty": ""})


@pytest.fixture
def abandoned_cart(shopper):
    cart = services.update_cart(subscriber_id=shopper.pk, cart_id="c-1", currency="SAR", items=[
        {"product_id": "a1", "title": "عباية كتان", "price": "349.00", "quantity": 1,
         "url": "https://shop.example.com/p/a1", "image": "https://shop.example.com/a1.jpg"},
        {"product_id": "s2", "title": "طرحة حرير", "price": "120", "quantity": 2,
         "url": "https://shop.example.com/p/s2", "image": "https://shop.example.com/s2.jpg"},
    ])
    return cart


# --- Context -----------------------------------------------------------------------

def test_the_context_holds_the_shoppers_fields_and_attributes_as_plain_data(shopper, abandoned_cart):
    context = build_context(shopper, {"cart": abandoned_cart, "discount_code": "SAVE10"})

    assert context["first_name"] == "نورة"
    assert context["full_name"] == "نورة العتيبي"
    assert context["attributes"] == {"size": "M"}
    assert context["language"] == "ar"
    assert context["cart"]["items"][1] == {
        "title": "طرحة حرير", "image": "https://shop.example.com/s2.jpg", "price": "120.00", "quantity": 2,
        "url": "https://shop.example.com/p/s2", "product_id": "s2"}
    assert context["cart"]["value"] == "589.00"
    assert context["cart"]["restore_url"] == abandoned_cart.restore_url
    assert context["discount_code"] == "SAVE10"
    # Only JSON-able data: nothing with methods or database access reaches a template.
    assert json.loads(json.dumps(context)) == context


def test_empty_fields_are_left_out_so_they_count_as_missing():
    context = build_context(make_subscriber(first_name="", city=""))

    assert "first_name" not in context
    assert "city" not in context


# --- Personalisation and refusals ----------------------------------------------------

def test_it_personalises_an_arabic_push_with_the_cart_and_its_restore_link(shopper, abandoned_cart):
    template = make_template()
    add(template, "push", "ar",
        title='{{ first_name | default: "صديقنا" }}، سلتك بانتظارك',
        body="{{ cart.items[0].title }} و{{ cart.item_count | minus: 1 }} غيرها — {{ cart.value }} {{ cart.currency }}",
        image="{{ cart.items[0].image }}", click_url="{{ cart.restore_url }}",
        actions=[{"action": "buy", "title": "أكمل الطلب", "url": "{{ cart.restore_url }}"}])

    locale, content = render_message(template=template, channel="push", subscriber=shopper,
                                     context={"cart": abandoned_cart})

    assert locale == "ar"
    assert content["title"] == "نورة، سلتك بانتظارك"
    assert content["body"] == "عباية كتان و2 غيرها — 589.00 SAR"
    assert content["image"] == "https://shop.example.com/a1.jpg"
    assert content["url"] == abandoned_cart.restore_url
    assert content["actions"] == [{"action": "buy", "title": "أكمل الطلب", "url": abandoned_cart.restore_url}]
    assert set(content) == {"title", "body", "icon", "image", "badge", "url", "actions", "tag", "ttl",
                            "urgency", "topic"}


def test_the_default_is_used_when_the_shopper_has_no_first_name():
    template = make_template()
    add(template, "sms", "ar", body='أهلاً {{ first_name | default: "صديقنا" }}!')

    _, content = render_message(template=template, channel="sms", subscriber=make_subscriber(locale="ar"))

    assert content["body"] == "أهلاً صديقنا!"


def test_a_missing_variable_without_a_default_refuses_the_message():
    template = make_template()
    add(template, "sms", "ar", body="أهلاً\n{{ first_name }}!")

    with pytest.raises(RenderError) as refused:
        render_message(template=template, channel="sms", subscriber=make_subscriber(locale="ar"))

    assert "first_name" in str(refused.value)
    assert (refused.value.field, refused.value.line) == ("body", 2)


def test_a_missing_cart_is_refused_rather_than_sent_with_an_empty_link(shopper):
    template = make_template()
    add(template, "sms", "ar", body="سلتك: {{ cart.restore_url }}")

    with pytest.raises(RenderError):
        render_message(template=template, channel="sms", subscriber=shopper)


def test_a_missing_variable_is_falsy_in_a_condition(shopper):
    template = make_template()
    add(template, "sms", "ar", body="{% if discount_code %}كود: {{ discount_code }}{% else %}تسوّق الآن{% endif %}")

    assert render_message(template=template, channel="sms", subscriber=shopper)[1]["body"] == "تسوّق الآن"
    assert render_message(template=template, channel="sms", subscriber=shopper,
                          context={"discount_code": "EID25"})[1]["body"] == "كود: EID25"


def test_a_template_cannot_reach_python_attributes(shopper):
    template = make_template()
    add(template, "sms", "en", body="{{ first_name.__class__ }}")

    with pytest.raises(RenderError):
        render_message(template=template, channel="sms", subscriber=shopper)


def test_a_runaway_loop_is_stopped(shopper):
    template = make_template()
    add(template, "sms", "ar", body="{% for i in (1..100000) %}x{% endfor %}")

    with pytest.raises(RenderError):
        render_message(template=template, channel="sms", subscriber=shopper)


# --- Locale choice -----------------------------------------------------------------

def test_the_subscribers_language_picks_the_content():
    template = make_template(default_locale="ar")
    add(template, "sms", "ar", body="مرحبا")
    add(template, "sms", "en", body="Hello")

    assert render_message(template=template, channel="sms",
                          subscriber=make_subscriber(locale="en-GB")) == ("en", {"body": "Hello", "encoding": "GSM-7",
                                                                                 "segments": 1})
    assert render_message(template=template, channel="sms", subscriber=make_subscriber(locale="ar-SA"))[0] == "ar"


def test_a_locale_without_content_falls_back_to_the_templates_default_locale():
    template = make_template(default_locale="en")
    add(template, "sms", "ar", body="مرحبا")
    add(template, "sms", "en", body="Hello")

    assert render_message(template=template, channel="sms", subscriber=make_subscriber(locale="fr-FR"))[0] == "en"


def test_without_content_in_the_default_locale_any_locale_is_used():
    template = make_template(default_locale="en")
    add(template, "sms", "ar", body="مرحبا")

    assert render_message(template=template, channel="sms", subscriber=make_subscriber(locale="fr"))[0] == "ar"


def test_a_channel_without_content_is_refused(shopper):
    template = make_template()
    add(template, "sms", "ar", body="مرحبا")

    with pytest.raises(RenderError, match="no email content"):
        render_message(template=template, channel="email", subscriber=shopper)


# --- Channel shapes and limits ---------------------------------------------------------

def test_an_arabic_sms_is_ucs2_with_its_segment_count(shopper):
    template = make_template()
    body = "أهلاً {{ first_name }}، " + "ا" * 70
    add(template, "sms", "ar", body=body)

    _, content = render_message(template=template, channel="sms", subscriber=shopper)

    # "أهلاً نورة، " is 12 characters; 82 UCS-2 characters need two parts of up to 67.
    assert len(content["body"]) == 82
    assert content == {"body": content["body"], "encoding": "UCS-2", "segments": 2}


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,hi", "//evil.example.com/x", "shop/page"])
def test_a_push_click_url_must_be_http_or_https(shopper, url):
    template = make_template()
    add(template, "push", "ar", title="عرض", click_url=url)

    with pytest.raises(RenderError, match="http"):
        render_message(template=template, channel="push", subscriber=shopper)


def test_a_push_action_url_must_be_http_or_https(shopper):
    template = make_template()
    add(template, "push", "ar", title="عرض", click_url="https://shop.example.com",
        actions=[{"action": "x", "title": "افتح", "url": "JavaScript:alert(document.cookie)"}])

    with pytest.raises(RenderError) as refused:
        render_message(template=template, channel="push", subscriber=shopper)

    assert refused.value.field == "actions[1].url"


def test_a_push_too_big_to_encrypt_into_4096_bytes_is_refused(shopper):
    template = make_template()
    add(template, "push", "ar", title="عرض", body="ع" * 2000)  # 4000 bytes of UTF-8

    with pytest.raises(RenderError, match="4096"):
        render_message(template=template, channel="push", subscriber=shopper)


def test_the_push_size_check_counts_the_encryption_overhead():
    # {"title":"…","body":"…"} is 22 bytes of JSON around the text; 103 bytes of aes128gcm and
    # 42 reserved for the message code make 167: a 3929-byte body is the most that fits.
    rendering.check_push_size({"title": "", "body": "x" * 3929})
    with pytest.raises(RenderError):
        rendering.check_push_size({"title": "", "body": "x" * 3930})


def test_whatsapp_renders_session_text_and_template_variables(shopper):
    template = make_template()
    add(template, "whatsapp", "ar", body="{{ first_name }}، سلتك بانتظارك",
        whatsapp_content_sid="HX0123456789abcdef0123456789abcdef",
        whatsapp_variables={"1": "{{ first_name }}", "2": "{{ discount_code | default: 'SAVE10' }}"})

    _, content = render_message(template=template, channel="whatsapp", subscriber=shopper)

    assert content == {"body": "نورة، سلتك بانتظارك", "content_sid": "HX0123456789abcdef0123456789abcdef",
                       "content_variables": {"1": "نورة", "2": "SAVE10"}}


def test_a_push_topic_must_suit_the_topic_header(shopper):
    template = make_template()
    add(template, "push", "ar", title="عرض", topic="cart offer!")

    with pytest.raises(RenderError) as refused:
        render_message(template=template, channel="push", subscriber=shopper)

    assert refused.value.field == "topic"


def test_whatsapp_variables_keep_their_numeric_order(shopper):
    template = make_template()
    add(template, "whatsapp", "ar", whatsapp_content_sid="HX1",
        whatsapp_variables={str(n): f"v{n}" for n in (10, 2, 1)})

    _, content = render_message(template=template, channel="whatsapp", subscriber=shopper)

    assert list(content["content_variables"]) == ["1", "2", "10"]
    assert "body" not in content


def test_an_email_gets_a_text_body_derived_from_its_html_with_link_urls(shopper, abandoned_cart):
    template = make_template()
    add(template, "email", "ar", subject="{{ first_name }}، نسيت شيئاً",
        html_body='<html><head><style>p{color:red}</style></head><body><h1>مرحبا {{ first_name }}</h1>'
                  '<p>سلتك فيها <b>{{ cart.item_count }}</b> منتجات.</p>'
                  '<p><a href="{{ cart.restore_url }}">أكمل الطلب</a></p></body></html>')

    _, content = render_message(template=template, channel="email", subscriber=shopper,
                                context={"cart": abandoned_cart})

    assert content["subject"] == "نورة، نسيت شيئاً"
    assert content["text"] == (f"مرحبا نورة\n\nسلتك فيها 3 منتجات.\n\nأكمل الطلب ({abandoned_cart.restore_url})")
    assert f'href="{abandoned_cart.restore_url}"' in content["html"]


def test_html_email_escapes_what_a_shopper_typed():
    template = make_template()
    add(template, "email", "en", subject="Hi {{ first_name }}", html_body="<p>Hi {{ first_name }}</p>")

    _, content = render_message(template=template, channel="email",
                                subscriber=make_subscriber(first_name="<script>x</script>", locale="en"))

    assert "<script>" not in content["html"]
    assert "&lt;script&gt;" in content["html"]


def test_a_written_text_body_wins_over_the_derived_one(shopper):
    template = make_template()
    add(template, "email", "ar", subject="s", html_body="<p>HTML</p>", text_body="نص {{ first_name }}")

    assert render_message(template=template, channel="email", subscriber=shopper)[1]["text"] == "نص نورة"


def test_inapp_content_has_its_button_and_placement(shopper):
    template = make_template()
    add(template, "inapp", "ar", title="{{ first_name }}", body="خصم 10٪", button_label="تسوّق",
        button_url="https://shop.example.com/sale", placement="modal")

    _, content = render_message(template=template, channel="inapp", subscriber=shopper)

    assert content == {"title": "نورة", "body": "خصم 10٪", "image": "", "button_label": "تسوّق",
                       "button_url": "https://shop.example.com/sale", "placement": "modal"}


# --- Samples and validation ------------------------------------------------------------

def test_a_sample_renders_with_a_made_up_shopper_in_the_locale(settings):
    template = make_template()
    add(template, "sms", "ar", body="{{ first_name }}: {{ cart.restore_url }}")
    add(template, "sms", "en", body="{{ first_name }}: {{ discount_code }}")

    # The cart link is shown as the shopper gets it: a tracking link (see test_tracked_links.py).
    arabic = render_sample(template=template, channel="sms", locale="ar")["body"]
    assert arabic.startswith(f"نورة: {settings.SITE_URL}/c/")
    assert render_sample(template=template, channel="sms", locale="en",
                         sample_context={"discount_code": "EID"})["body"] == "Nora: EID"


def test_validation_names_the_line_of_a_syntax_error():
    with pytest.raises(RenderError) as error:
        rendering.validate_liquid("مرحبا\n{{ first_name }}\n{% if cart %}\n{{ cart.value }", field="body")

    assert error.value.line == 4


def test_validation_names_the_line_of_an_unclosed_block():
    with pytest.raises(RenderError) as error:
        rendering.validate_liquid("مرحبا\n{% if cart %}\nسلتك\n", field="body")

    assert error.value.line == 2
    assert "endif" in error.value.message


def test_validation_names_the_line_of_an_unknown_variable_or_filter():
    with pytest.raises(RenderError, match="frist_name") as error:
        rendering.validate_liquid("Hi\n\n{{ frist_name }}", field="body")
    assert error.value.line == 3

    with pytest.raises(RenderError, match="shout") as error:
        rendering.validate_liquid("Hi\n{{ first_name | shout }}", field="body")
    assert error.value.line == 2


def test_validation_accepts_loop_variables_and_known_names():
    rendering.validate_liquid(
        '{% for item in cart.items %}{{ item.title | upcase }} × {{ item.quantity }}{% endfor %}'
        '{% assign n = first_name | default: "صديقنا" %}{{ n }} {{ attributes.size }}', field="body")


def test_validation_allows_at_most_two_action_buttons():
    content = TemplateContent(channel="push", locale="ar", title="t", actions=[
        {"title": "a", "url": "https://x.example"}, {"title": "b", "url": "https://x.example"},
        {"title": "c", "url": "https://x.example"}])

    with pytest.raises(RenderError, match="at most 2"):
        rendering.validate_content(content)


def test_shoppers_sharing_a_template_each_get_their_own_values_and_edits_show_at_once():
    template = make_template()
    content = add(template, "push", "ar", title="{{ first_name }}", body="{{ attributes.size | default: 'M' }}",
                  click_url="https://shop.example.com")
    nora, reem = make_subscriber(first_name="نورة", locale="ar"), make_subscriber(first_name="ريم", locale="ar",
                                                                                 attributes={"size": "L"})

    first = render_message(template=template, channel="push", subscriber=nora)[1]
    first["title"] = "changed by the caller"
    assert render_message(template=template, channel="push", subscriber=nora)[1]["title"] == "نورة"
    assert (render_message(template=template, channel="push", subscriber=reem)[1]["body"]) == "L"

    content.title = "مرحباً {{ first_name }}"
    assert rendering.render_content(content, build_context(nora))["title"] == "مرحباً نورة"
