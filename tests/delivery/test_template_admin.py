"""The message template admin: content per channel and locale, Liquid checked on save, previews."""
import re

import pytest
from django.urls import reverse

from delivery.models import MessageTemplate, TemplateContent

pytestmark = pytest.mark.django_db

INLINES = {"push": "contents", "sms": "contents-2", "whatsapp": "contents-3", "email": "contents-4",
           "inapp": "contents-5"}


def management(prefix, total=0, initial=0):
    return {f"{prefix}-TOTAL_FORMS": str(total), f"{prefix}-INITIAL_FORMS": str(initial),
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}


def post_data(name="Abandoned cart", slug="abandoned-cart", **channels):
    """Form data for the add page: `channels` maps a channel to a list of field dicts."""
    data = {"name": name, "slug": slug, "description": "", "default_locale": "ar"}
    for channel, prefix in INLINES.items():
        forms = channels.get(channel, [])
        data.update(management(prefix, total=len(forms)))
        for index, fields in enumerate(forms):
            defaults = {"ttl_seconds": "86400", "urgency": "normal", "actions": "[]", "whatsapp_variables": "{}",
                        "placement": "banner"}
            for key, value in {**defaults, **fields}.items():
                data[f"{prefix}-{index}-{key}"] = value
    return data


def make_template():
    template = MessageTemplate.objects.create(name="Abandoned cart", slug="abandoned-cart", default_locale="ar")
    TemplateContent.objects.create(
        template=template, channel="push", locale="ar", title='{{ first_name | default: "صديقنا" }}، سلتك بانتظارك',
        body="{{ cart.items[0].title }} بـ {{ cart.items[0].price }} ر.س", click_url="{{ cart.restore_url }}",
        image="{{ cart.items[0].image }}", actions=[{"action": "buy", "title": "أكمل الطلب", "url": "{{ cart.restore_url }}"}])
    TemplateContent.objects.create(template=template, channel="push", locale="en",
                                   title="{{ first_name }}, your cart is waiting", click_url="{{ cart.restore_url }}")
    TemplateContent.objects.create(template=template, channel="sms", locale="ar",
                                   body="{{ first_name }}، سلتك بانتظارك: {{ cart.restore_url }}")
    TemplateContent.objects.create(template=template, channel="email", locale="ar", subject="سلتك بانتظارك",
                                   html_body='<p>مرحبا {{ first_name }}</p><p><a href="{{ cart.restore_url }}">أكمل</a></p>')
    return template


def test_the_add_page_shows_one_inline_per_channel(admin_client):
    response = admin_client.get(reverse("admin:delivery_messagetemplate_add"))

    assert response.status_code == 200
    for label in ("Web push: one per locale", "SMS: one per locale", "WhatsApp: one per locale",
                  "Email: one per locale", "In-app: one per locale"):
        assert label in response.content.decode()


def test_saving_a_template_with_arabic_and_english_content_per_channel(admin_client):
    data = post_data(
        push=[{"locale": "ar", "title": '{{ first_name | default: "صديقنا" }}، سلتك بانتظارك',
               "click_url": "{{ cart.restore_url }}",
               "actions": '[{"action": "buy", "title": "أكمل الطلب", "url": "{{ cart.restore_url }}"}]'},
              {"locale": "en", "title": "Your cart is waiting", "click_url": "{{ cart.restore_url }}"}],
        sms=[{"locale": "ar-sa", "body": "سلتك بانتظارك {{ cart.restore_url }}"}],
    )

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 302, response.context["errors"] if response.context else response
    template = MessageTemplate.objects.get(slug="abandoned-cart")
    assert sorted(template.contents.values_list("channel", "locale")) == [("push", "ar"), ("push", "en"),
                                                                          ("sms", "ar-SA")]
    assert template.contents.get(channel="push", locale="ar").actions[0]["title"] == "أكمل الطلب"


def test_saving_with_a_liquid_syntax_error_shows_the_line(admin_client):
    data = post_data(sms=[{"locale": "ar", "body": "مرحبا {{ first_name }}\nسلتك بانتظارك\n{% if cart %}{{ cart.value }"}])

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 200
    assert not MessageTemplate.objects.exists()
    page = response.content.decode()
    assert "Line 3" in page
    assert re.search(r"Line 3: expected &#x27;}}&#x27;", page)


def test_saving_with_an_unclosed_block_names_the_line_that_opened_it(admin_client):
    data = post_data(email=[{"locale": "en", "subject": "Hi", "html_body": "<p>Hi</p>\n{% for item in cart.items %}\n<p>{{ item.title }}</p>"}])

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 200
    assert "Line 2: expected tag endfor" in response.content.decode()


def test_saving_with_a_misspelt_variable_names_it_and_its_line(admin_client):
    data = post_data(push=[{"locale": "ar", "title": "عرض", "body": "أهلاً\n\n{{ frist_name }}"}])

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 200
    assert "Line 3: unknown variable “frist_name”" in response.content.decode()


def test_saving_a_push_whose_link_is_not_http_is_refused(admin_client):
    data = post_data(push=[{"locale": "ar", "title": "عرض", "click_url": "javascript:alert(document.cookie)"}])

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 200
    assert "is not an http(s) URL" in response.content.decode()
    assert not MessageTemplate.objects.exists()


def test_saving_a_push_without_a_title_is_refused(admin_client):
    data = post_data(push=[{"locale": "ar", "title": "", "body": "نص"}])

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 200
    assert "a push notification needs a title" in response.content.decode()


def test_content_needing_data_the_sample_lacks_can_still_be_saved(admin_client):
    data = post_data(sms=[{"locale": "en", "body": "You viewed {{ event.product_title }}"}])

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 302


def test_saving_two_contents_in_the_same_locale_on_one_channel_is_refused(admin_client):
    data = post_data(sms=[{"locale": "ar", "body": "أ"}, {"locale": "ar", "body": "ب"}])

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 200
    assert "This channel already has content in ar." in response.content.decode()
    assert not MessageTemplate.objects.exists()


def test_saving_three_push_actions_is_refused(admin_client):
    actions = '[{"title": "a", "url": "https://x.example"}, {"title": "b", "url": "https://x.example"}, ' \
              '{"title": "c", "url": "https://x.example"}]'
    data = post_data(push=[{"locale": "en", "title": "Sale", "actions": actions}])

    response = admin_client.post(reverse("admin:delivery_messagetemplate_add"), data)

    assert response.status_code == 200
    assert "at most 2 action buttons" in response.content.decode()


def test_the_change_page_links_to_the_preview(admin_client):
    template = make_template()

    response = admin_client.get(reverse("admin:delivery_messagetemplate_change", args=[template.pk]))

    assert response.status_code == 200
    assert reverse("admin:delivery_messagetemplate_preview", args=[template.pk]) in response.content.decode()


def test_the_preview_renders_each_channel_and_locale_with_the_sample_shopper(admin_client):
    template = make_template()

    response = admin_client.get(reverse("admin:delivery_messagetemplate_preview", args=[template.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert [(p["channel"], p["locale"]) for p in response.context["previews"]] == [
        ("push", "ar"), ("push", "en"), ("sms", "ar"), ("email", "ar")]
    assert "نورة، سلتك بانتظارك" in page
    assert "Nora, your cart is waiting" in page
    assert "عباية كتان بـ 349.00 ر.س" in page
    assert "أكمل الطلب" in page
    # "نورة، سلتك بانتظارك: " (21) and the 51-character restore link: 72 UCS-2 characters, two segments.
    sms = response.context["previews"][2]
    assert (sms["sms"].encoding, sms["sms"].characters, sms["sms"].segments) == ("UCS-2", 72, 2)
    assert "72 characters, 2 segments" in page


def test_the_arabic_preview_is_right_to_left_and_the_english_left_to_right(admin_client):
    template = make_template()

    page = admin_client.get(reverse("admin:delivery_messagetemplate_preview", args=[template.pk])).content.decode()

    arabic = page[page.index('id="preview-push-ar"'):page.index('id="preview-push-en"')]
    english = page[page.index('id="preview-push-en"'):page.index('id="preview-sms-ar"')]
    assert 'dir="rtl" lang="ar"' in arabic
    assert 'dir="ltr" lang="en"' in english


def test_the_preview_shows_why_content_would_be_refused(admin_client):
    template = MessageTemplate.objects.create(name="Bad", slug="bad")
    TemplateContent.objects.create(template=template, channel="push", locale="ar", title="عرض",
                                   click_url="javascript:alert(1)")

    response = admin_client.get(reverse("admin:delivery_messagetemplate_preview", args=[template.pk]))

    assert response.status_code == 200
    assert "This content cannot be sent" in response.content.decode()
    assert "is not an http(s) URL" in response.content.decode()


def test_the_email_preview_is_sandboxed(admin_client):
    template = make_template()

    page = admin_client.get(reverse("admin:delivery_messagetemplate_preview", args=[template.pk])).content.decode()

    assert '<iframe sandbox=""' in page
    assert "srcdoc=\"&lt;p&gt;مرحبا نورة&lt;/p&gt;" in page


def test_the_list_shows_channels_locales_and_a_preview_link(admin_client):
    template = make_template()

    response = admin_client.get(reverse("admin:delivery_messagetemplate_changelist"))

    page = response.content.decode()
    assert "Web push, SMS, Email" in page
    assert reverse("admin:delivery_messagetemplate_preview", args=[template.pk]) in page


def test_the_preview_of_an_unknown_template_is_404(admin_client):
    assert admin_client.get(reverse("admin:delivery_messagetemplate_preview", args=[999999])).status_code == 404


def test_an_in_app_message_is_placed_where_the_sdk_can_show_it(admin_client):
    placed = post_data(inapp=[{"locale": "ar", "title": "أهلاً", "body": "خصم", "placement": "modal"}])
    nowhere = post_data(inapp=[{"locale": "ar", "title": "أهلاً", "body": "خصم", "placement": "sidebar"}])

    refused = admin_client.post(reverse("admin:delivery_messagetemplate_add"), nowhere)
    saved = admin_client.post(reverse("admin:delivery_messagetemplate_add"), placed)

    assert refused.status_code == 200 and "sidebar is not one of the available choices" in refused.content.decode()
    assert saved.status_code == 302
    assert MessageTemplate.objects.get().contents.get().placement == "modal"
