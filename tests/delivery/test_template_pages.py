"""The marketer's template pages: the list, the editor (saved through the admin's checks) and the live preview."""
import html
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from delivery.models import MessageTemplate, TemplateContent

pytestmark = pytest.mark.django_db


def user_with(*codenames, username="sara"):
    user = User.objects.create_user(username, f"{username}@example.com", "a-long-password-1")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="delivery", codename__in=codenames))
    return user


@pytest.fixture
def marketer(client):
    client.force_login(user_with("view_messagetemplate", "change_messagetemplate", "add_messagetemplate"))
    return client


@pytest.fixture
def viewer(client):
    client.force_login(user_with("view_messagetemplate", username="omar"))
    return client


def make_template(**fields):
    template = MessageTemplate.objects.create(name=fields.pop("name", "Abandoned cart"),
                                              slug=fields.pop("slug", "abandoned-cart"), default_locale="ar")
    TemplateContent.objects.create(template=template, channel="push", locale="ar",
                                   title='{{ first_name | default: "صديقنا" }}، سلتك بانتظارك',
                                   body="{{ cart.items[0].title }} بانتظارك", click_url="{{ cart.restore_url }}")
    TemplateContent.objects.create(template=template, channel="push", locale="en",
                                   title="{{ first_name }}, your cart is waiting", click_url="{{ cart.restore_url }}")
    TemplateContent.objects.create(template=template, channel="sms", locale="ar",
                                   body="{{ first_name }}، سلتك بانتظارك")
    return template


def editor_data(template, **slots):
    """The editor's form as the browser posts it: the template fields plus `slots` ({"push-ar": {...}})."""
    data = {"name": template.name, "slug": template.slug, "description": template.description,
            "default_locale": template.default_locale}
    if template.is_transactional:
        data["is_transactional"] = "on"
    for content in template.contents.all():
        prefix = f"{content.channel}-{content.locale}"
        for field in ("title", "body", "click_url", "icon", "image", "badge", "tag", "topic", "subject",
                      "html_body", "text_body", "button_label", "button_url", "placement", "whatsapp_content_sid"):
            data[f"{prefix}-{field}"] = getattr(content, field)
        data[f"{prefix}-ttl_seconds"] = str(content.ttl_seconds)
        data[f"{prefix}-urgency"] = content.urgency
        data[f"{prefix}-actions"] = "[]" if not content.actions else __import__("json").dumps(content.actions)
        data[f"{prefix}-whatsapp_variables"] = "{}"
        data[f"{prefix}-locale"] = content.locale
    for prefix, fields in slots.items():
        channel, locale = prefix.split("-", 1)
        data[f"{prefix}-locale"] = locale
        if channel == "push":
            data.setdefault(f"{prefix}-ttl_seconds", "86400")
            data.setdefault(f"{prefix}-urgency", "normal")
            data.setdefault(f"{prefix}-actions", "[]")
        if channel == "whatsapp":
            data.setdefault(f"{prefix}-whatsapp_variables", "{}")
        for key, value in fields.items():
            data[f"{prefix}-{key}"] = value
    return data


def preview(client, template, channel, locale, **fields):
    url = reverse("templates:preview", args=[template.pk, channel, locale])
    data = {f"{channel}-{locale}-{key}": value for key, value in fields.items()}
    data[f"{channel}-{locale}-locale"] = locale
    if channel == "push":
        data.update({f"push-{locale}-ttl_seconds": "86400", f"push-{locale}-urgency": "normal",
                     f"push-{locale}-actions": "[]"})
    if channel == "whatsapp":
        data[f"whatsapp-{locale}-whatsapp_variables"] = "{}"
    return client.post(url, data)


# --- Permissions -------------------------------------------------------------------

def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    template = make_template()
    for url in (reverse("templates:list"), reverse("templates:edit", args=[template.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert "/login/" in response["Location"]


def test_a_user_without_the_view_permission_is_refused(client):
    client.force_login(user_with())
    template = make_template()
    assert client.get(reverse("templates:list")).status_code == 403
    assert client.get(reverse("templates:edit", args=[template.pk])).status_code == 403
    assert preview(client, template, "sms", "ar", body="hello").status_code == 403


def test_a_viewer_sees_the_editor_read_only_and_cannot_save(viewer):
    template = make_template()
    page = viewer.get(reverse("templates:edit", args=[template.pk])).content.decode()
    assert 'id="read-only"' in page
    assert ">Save</button>" not in page
    data = editor_data(template, **{"sms-ar": {"body": "changed"}})
    assert viewer.post(reverse("templates:edit", args=[template.pk]), data).status_code == 403
    assert TemplateContent.objects.get(channel="sms", locale="ar").body == "{{ first_name }}، سلتك بانتظارك"
    # Previewing writes nothing, so a viewer may try a wording out.
    assert "Hello Nora" in preview(viewer, template, "sms", "en", body="Hello {{ first_name }}").content.decode()


def test_a_viewer_can_neither_create_nor_duplicate(viewer):
    template = make_template()
    assert viewer.post(reverse("templates:create"), {"name": "Sneaky"}).status_code == 403
    assert viewer.post(reverse("templates:duplicate", args=[template.pk])).status_code == 403
    assert MessageTemplate.objects.count() == 1
    assert "New template" not in viewer.get(reverse("templates:list")).content.decode()
    assert "Duplicate" not in viewer.get(reverse("templates:edit", args=[template.pk])).content.decode()


# --- The list ----------------------------------------------------------------------

def test_the_list_shows_each_template_with_its_channels_locales_and_kind(marketer):
    make_template()
    MessageTemplate.objects.create(name="Order shipped", slug="order-shipped", is_transactional=True)
    page = marketer.get(reverse("templates:list")).content.decode()
    row = re.search(r'<tr data-template="abandoned-cart">.*?</tr>', page, re.S).group(0)
    assert "Web push" in row and "SMS" in row and "Email" not in row
    assert ">ar<" in row and ">en<" in row
    shipped = re.search(r'<tr data-template="order-shipped">.*?</tr>', page, re.S).group(0)
    assert "Transactional" in shipped
    assert 'aria-current="page">Templates' in page


def test_new_template_creates_one_with_a_unique_slug_and_opens_the_editor(marketer):
    make_template()
    response = marketer.post(reverse("templates:create"), {"name": "Abandoned cart"})
    created = MessageTemplate.objects.exclude(slug="abandoned-cart").get()
    assert created.slug == "abandoned-cart-2"
    assert response["Location"] == reverse("templates:edit", args=[created.pk])


def test_duplicating_copies_the_template_and_every_content(marketer):
    template = make_template()
    response = marketer.post(reverse("templates:duplicate", args=[template.pk]))
    copy = MessageTemplate.objects.exclude(pk=template.pk).get()
    assert copy.name == "Abandoned cart (copy)" and copy.slug == "abandoned-cart-copy"
    assert sorted(copy.contents.values_list("channel", "locale", "title")) == sorted(
        template.contents.values_list("channel", "locale", "title"))
    assert template.contents.count() == 3  # the original keeps its own
    assert response["Location"] == reverse("templates:edit", args=[copy.pk])


# --- The editor --------------------------------------------------------------------

def test_the_editor_shows_arabic_and_english_for_every_channel_with_a_preview(marketer):
    template = make_template()
    page = marketer.get(reverse("templates:edit", args=[template.pk])).content.decode()
    for channel in ("push", "sms", "whatsapp", "email", "inapp"):
        for locale in ("ar", "en"):
            assert f'id="slot-{channel}-{locale}"' in page
    assert 'hx-trigger="input changed delay:400ms, change"' in page
    # The saved Arabic push is already previewed for the sample shopper, right-to-left.
    assert 'data-platform="android"' in page
    assert "نورة، سلتك بانتظارك" in page


def test_saving_writes_new_content_and_changes_the_template(marketer):
    template = make_template()
    data = editor_data(template, **{"email-en": {"subject": "Your cart, {{ first_name }}",
                                                 "html_body": "<p>Hi {{ first_name }}</p>"}})
    data["name"] = "Cart reminder"
    response = marketer.post(reverse("templates:edit", args=[template.pk]), data)
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.name == "Cart reminder"
    email = template.contents.get(channel="email", locale="en")
    assert email.subject == "Your cart, {{ first_name }}"
    assert template.contents.count() == 4  # the empty slots were not saved


def test_a_liquid_error_is_shown_on_its_field_with_the_line_and_nothing_is_saved(marketer):
    template = make_template()
    data = editor_data(template, **{"sms-ar": {"body": "مرحبا\n{% if first_name %}نورة"}})
    response = marketer.post(reverse("templates:edit", args=[template.pk]), data)
    assert response.status_code == 200
    page = response.content.decode()
    slot = re.search(r'id="slot-sms-ar".*?</section>', page, re.S).group(0)
    assert "Line 2" in slot
    assert "Please correct the errors below." in page
    # The Arabic tab, where the error is, is the one shown.
    assert re.search(r'id="tab-sms-ar" data-tab="\d" checked>', page)
    assert TemplateContent.objects.get(channel="sms", locale="ar").body == "{{ first_name }}، سلتك بانتظارك"


def test_a_misspelt_variable_is_named_with_its_line(marketer):
    template = make_template()
    data = editor_data(template, **{"push-en": {"title": "Hello\nthere {{ frist_name }}"}})
    page = marketer.post(reverse("templates:edit", args=[template.pk]), data).content.decode()
    slot = re.search(r'id="slot-push-en".*?</section>', page, re.S).group(0)
    assert "Line 2" in slot and "frist_name" in slot
    assert re.search(r'id="tab-push-en" data-tab="\d" checked>', page)
    assert not re.search(r'id="tab-push-ar" data-tab="\d" checked>', page)


def test_removing_a_locale_deletes_its_content(marketer):
    template = make_template()
    data = editor_data(template)
    data["push-en-delete"] = "1"
    marketer.post(reverse("templates:edit", args=[template.pk]), data)
    assert not template.contents.filter(channel="push", locale="en").exists()
    assert template.contents.filter(channel="push", locale="ar").exists()


# --- The live preview --------------------------------------------------------------

def test_the_preview_renders_unsaved_input_without_saving_it(marketer):
    template = make_template()
    response = preview(marketer, template, "push", "ar", title="{{ first_name }}: تخفيضات الجمعة البيضاء",
                       body="خصم {{ discount_code }}")
    page = response.content.decode()
    assert "نورة: تخفيضات الجمعة البيضاء" in page
    assert "خصم WELCOME10" in page
    for platform in ("android", "windows", "macos"):
        assert f'data-platform="{platform}"' in page
    assert TemplateContent.objects.get(channel="push", locale="ar").title.startswith("{{ first_name | default")


def test_the_preview_of_a_new_locale_writes_nothing(marketer):
    template = make_template()
    preview(marketer, template, "whatsapp", "en", body="Hi {{ first_name }}")
    assert not template.contents.filter(channel="whatsapp").exists()


def test_arabic_content_previews_right_to_left_and_english_left_to_right_whatever_the_ui_language(marketer):
    template = make_template()
    arabic = preview(marketer, template, "push", "ar", title="مرحبا").content.decode()
    english = preview(marketer, template, "push", "en", title="Hello").content.decode()
    assert arabic.count('class="tpl-push" dir="rtl" lang="ar"') == 3
    assert english.count('class="tpl-push" dir="ltr" lang="en"') == 3
    marketer.cookies["django_language"] = "ar"
    english_in_arabic_ui = preview(marketer, template, "sms", "en", body="Hello").content.decode()
    assert 'class="tpl-bubble" dir="ltr"' in english_in_arabic_ui


def test_an_arabic_sms_counts_ucs2_segments_of_70_then_67(marketer):
    template = make_template()
    one = preview(marketer, template, "sms", "ar", body="ب" * 70).content.decode()
    two = preview(marketer, template, "sms", "ar", body="ب" * 71).content.decode()
    assert "UCS-2" in one and "70 characters, 1 segment of up to 70" in one
    assert "71 characters, 2 segments of up to 67" in two


def test_an_english_sms_is_gsm7_with_160_characters_a_segment(marketer):
    template = make_template()
    page = preview(marketer, template, "sms", "en", body="a" * 160).content.decode()
    assert "GSM-7" in page and "160 characters, 1 segment of up to 160" in page


def test_html_typed_in_push_and_sms_text_is_shown_as_text(marketer):
    template = make_template()
    push = preview(marketer, template, "push", "en", title="<script>alert(1)</script>",
                   body="<img src=x onerror=alert(2)>").content.decode()
    sms = preview(marketer, template, "sms", "en", body="<b>bold</b>").content.decode()
    assert "<script>alert(1)" not in push and "&lt;script&gt;alert(1)&lt;/script&gt;" in push
    assert "<img src=x" not in push
    assert "<b>bold</b>" not in sms and "&lt;b&gt;bold&lt;/b&gt;" in sms


def test_the_email_html_is_shown_only_inside_a_sandboxed_iframe(marketer):
    template = make_template()
    page = preview(marketer, template, "email", "en", subject="Hi {{ first_name }}",
                   html_body='<p class="promo">Hello <b>{{ first_name }}</b></p><script>alert(1)</script>'
                   ).content.decode()
    assert '<p class="promo">' not in page and "<script>alert(1)" not in page
    srcdoc = re.search(r'<iframe sandbox="" [^>]*srcdoc="([^"]*)"', page).group(1)
    assert '<p class="promo">Hello <b>Nora</b></p>' in html.unescape(srcdoc)
    assert "Hi Nora" in page
    text = re.search(r'<pre class="tpl-email-text"[^>]*>(.*?)</pre>', page, re.S).group(1)
    assert "Hello Nora" in text


def test_a_liquid_error_is_shown_in_the_preview_with_its_line(marketer):
    template = make_template()
    page = preview(marketer, template, "sms", "en", body="Hi\n{% for x in cart.items %}{{ x.title }}").content.decode()
    assert "This message cannot be sent" in page
    assert "Line 2" in page


def test_a_missing_variable_is_shown_in_the_preview_instead_of_the_message(marketer):
    template = make_template()
    page = preview(marketer, template, "push", "en", title="You looked at {{ event.properties.name }}").content.decode()
    assert "This message cannot be sent" in page
    assert "default" in page
    assert 'data-platform="android"' not in page


def test_a_link_that_is_not_http_is_shown_as_the_reason(marketer):
    template = make_template()
    page = preview(marketer, template, "push", "en", title="Hi", click_url="javascript:alert(1)").content.decode()
    assert "is not an http(s) URL" in page
    assert 'data-platform="android"' not in page


def test_a_push_too_big_for_push_services_says_so_in_the_preview(marketer):
    template = make_template()
    page = preview(marketer, template, "push", "en", title="Big", body="x" * 4000).content.decode()
    assert "the limit is 4096" in page


def test_a_push_near_the_size_limit_is_previewed_with_a_warning(marketer):
    template = make_template()
    near = preview(marketer, template, "push", "en", title="Big", body="x" * 3700).content.decode()
    small = preview(marketer, template, "push", "en", title="Small", body="x").content.decode()
    assert 'tpl-push-size tpl-warn' in near and "Close to the limit" in near
    assert "Close to the limit" not in small and "of 4096 bytes" in small


def test_an_empty_locale_invites_the_marketer_to_type(marketer):
    template = make_template()
    page = preview(marketer, template, "inapp", "en").content.decode()
    assert "Nothing written in this locale yet" in page


def test_an_in_app_modal_is_previewed_as_a_modal(marketer):
    template = make_template()
    page = preview(marketer, template, "inapp", "ar", title="عرض اليوم", body="خصم ٢٠٪", placement="modal",
                   button_label="تسوقي", button_url="https://shop.example.com/sale").content.decode()
    assert 'class="tpl-inapp tpl-inapp-modal" data-placement="modal" dir="rtl"' in page and "تسوقي" in page
    assert "Dialog (modal)" in page


def test_an_in_app_bar_at_the_bottom_is_previewed_at_the_bottom(marketer):
    template = make_template()
    page = preview(marketer, template, "inapp", "en", body="Free delivery today", placement="bottom").content.decode()
    assert 'data-placement="bottom" dir="ltr"' in page and "Bar at the bottom" in page


def test_the_editor_page_is_right_to_left_in_arabic(marketer):
    template = make_template()
    marketer.cookies["django_language"] = "ar"
    page = marketer.get(reverse("templates:edit", args=[template.pk])).content.decode()
    assert '<html lang="ar" dir="rtl">' in page
