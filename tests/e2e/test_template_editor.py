"""A marketer in Chromium writes a template and watches the live preview follow the typing."""
import pytest

from delivery.models import MessageTemplate, TemplateContent
from tests.e2e.helpers import log_in_as_marketer

pytestmark = pytest.mark.e2e

PLATFORMS = ("android", "windows", "macos")


@pytest.fixture
def marketer_page(page, store):
    return log_in_as_marketer(page, "/app/templates/", permissions=[
        ("delivery", codename) for codename in ("view_messagetemplate", "change_messagetemplate",
                                                "add_messagetemplate")])


def text_side(locator):
    """Which edge of its box the element's text sits against, as laid out by the browser."""
    return locator.evaluate("""element => {
        const range = document.createRange();
        range.selectNodeContents(element);
        const text = range.getBoundingClientRect(), box = element.getBoundingClientRect();
        return Math.abs(box.right - text.right) < Math.abs(text.left - box.left) ? "right" : "left";
    }""")


def open_new_template(page, name):
    page.fill("#new-name", name)
    page.click("text=New template")
    page.wait_for_selector("#template-editor")
    return MessageTemplate.objects.get(name=name)


def test_arabic_push_text_previews_right_to_left_on_android_windows_and_macos_as_it_is_typed(marketer_page):
    page = marketer_page
    template = open_new_template(page, "White Friday")

    page.click("#channel-push > summary")
    page.locator("#id_push-ar-title").press_sequentially("{{ first_name }}، الجمعة البيضاء بدأت")
    page.locator("#id_push-ar-body").press_sequentially("خصم ٢٠٪ بالكود {{ discount_code }}")

    for platform in PLATFORMS:
        card = page.locator(f"#preview-push-ar [data-platform={platform}] .tpl-push")
        card.get_by_text("خصم ٢٠٪ بالكود WELCOME10").wait_for()
        assert card.get_attribute("dir") == "rtl"
        assert "نورة، الجمعة البيضاء بدأت" in card.inner_text()
        # Right-to-left for real: the title's text hugs the right edge of its line, not the left.
        assert text_side(card.locator(".tpl-push-title")) == "right"
    # Nothing typed is saved until the marketer saves.
    assert not TemplateContent.objects.filter(template=template).exists()

    page.click("button:has-text('Save')")
    page.wait_for_selector(".flash li")
    saved = TemplateContent.objects.get(template=template, channel="push", locale="ar")
    assert saved.title == "{{ first_name }}، الجمعة البيضاء بدأت"


def test_the_sms_preview_counts_characters_and_segments_as_the_marketer_types(marketer_page):
    page = marketer_page
    open_new_template(page, "Order shipped")

    page.click("#channel-sms > summary")
    body = page.locator("#id_sms-ar-body")
    body.fill("ب" * 60)
    body.press_sequentially("ب")
    count = page.locator("#preview-sms-ar .tpl-sms-count")
    count.get_by_text("61 characters, 1 segment").wait_for()
    assert page.locator("#preview-sms-ar .tpl-encoding").inner_text() == "UCS-2"
    assert page.locator("#preview-sms-ar .tpl-bubble").get_attribute("dir") == "rtl"

    body.press_sequentially("ب" * 10)
    count.get_by_text("71 characters, 2 segments of up to 67").wait_for()

    page.click("label[for=tab-sms-en]")  # the English tab
    assert not page.locator("#id_sms-ar-body").is_visible()
    english = page.locator("#id_sms-en-body")
    english.press_sequentially("Your order {{ order.id }} is on its way")
    page.locator("#preview-sms-en .tpl-bubble").get_by_text("Your order SO-5512 is on its way").wait_for()
    assert page.locator("#preview-sms-en .tpl-encoding").inner_text() == "GSM-7"
    assert page.locator("#preview-sms-en .tpl-bubble").get_attribute("dir") == "ltr"
    # The Arabic bubble sits on the right of the shopper's phone, the English one on the left.
    assert text_side(page.locator("#preview-sms-en .tpl-phone")) == "left"
    page.click("label[for=tab-sms-ar]")
    assert text_side(page.locator("#preview-sms-ar .tpl-phone")) == "right"


def test_a_typo_in_liquid_shows_in_the_preview_with_its_line(marketer_page):
    page = marketer_page
    open_new_template(page, "Welcome")

    page.click("#channel-email > summary")
    page.click("label[for=tab-email-en]")
    page.locator("#id_email-en-subject").press_sequentially("Welcome")
    page.locator("#id_email-en-html_body").press_sequentially("<p>Hello</p>\n<p>{{ frist_name }}</p>")
    error = page.locator("#preview-email-en .tpl-preview-error", has_text="frist_name")
    error.wait_for()
    assert "Line 2" in error.inner_text() and "frist_name" in error.inner_text()


def test_the_email_preview_shows_the_html_in_a_sandbox_where_scripts_do_not_run(marketer_page):
    page = marketer_page
    open_new_template(page, "Back in stock")

    page.click("#channel-email > summary")
    page.click("label[for=tab-email-en]")
    page.locator("#id_email-en-subject").press_sequentially("Back in stock, {{ first_name }}")
    page.locator("#id_email-en-html_body").fill(
        '<h1>Hello {{ first_name }}</h1><script>document.body.dataset.ran = "yes"</script>')
    page.locator("#id_email-en-html_body").press_sequentially(" ")
    page.locator("#preview-email-en .tpl-subject", has_text="Back in stock, Nora").wait_for()
    frame = page.frame_locator("#preview-email-en iframe[sandbox='']")
    assert frame.locator("h1").inner_text() == "Hello Nora"
    assert frame.locator("body").get_attribute("data-ran") is None
