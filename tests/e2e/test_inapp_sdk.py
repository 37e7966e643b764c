"""In-app messages in Chromium: queued through the outbox, fetched and shown by the storefront SDK."""
import base64
import json

import pytest

from delivery import outbox
from delivery.models import Message
from subscribers.models import AnonymousId
from tests.factories import make_subscriber

from .helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PRODUCT_PAGE = "/demo/store/en/products/wireless-earbuds/"
DEMO_CUSTOMER = "demo-customer-1"
# A 1×1 PNG, served for the message's image URL.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

RECORD_INAPP_EVENTS = """
window.__tanbihEvents = [];
["ready", "identified", "inapp:shown", "inapp:dismissed", "inapp:clicked"].forEach(function (name) {
  document.addEventListener("tanbih:" + name, function (event) {
    window.__tanbihEvents.push({ name: name, detail: event.detail });
  });
});
"""


@pytest.fixture
def shop(store, settings):
    """The demo store, its tracked links pointing at the live server, and no push prompt in the way."""
    settings.SITE_URL = store["url"]
    store["prompt"].enabled = False
    store["prompt"].save()
    return store


@pytest.fixture
def page(page):
    page.add_init_script(RECORD_INAPP_EVENTS)
    return page


def send_inapp(shopper, source_id, **content):
    content = {"title": "Winter sale", "body": "Everything 20% off today.", "button_label": "Shop the sale",
               "button_url": "https://shop.example/sale", "placement": "banner", **content}
    return outbox.send_message(subscriber=shopper, channel="inapp", source_type="campaign", source_id=source_id,
                               content=content)


def visitor(page):
    """The anonymous profile the SDK made for this browser on a product view."""
    page.goto(PRODUCT_PAGE)
    anonymous_id = page.evaluate("() => localStorage.getItem('tanbih.anonymous_id')")
    link = wait_until(lambda: AnonymousId.objects.filter(value=anonymous_id).select_related("subscriber").first(),
                      "the browser's anonymous profile")
    return link.subscriber


def events(page, name):
    return page.evaluate(f"() => window.__tanbihEvents.filter(e => e.name === {json.dumps(name)}).map(e => e.detail)")


def fetch_now(page):
    """Ask Tanbih for pending messages now; resolves once the answer has been handled."""
    return page.evaluate("() => tanbih.showInApp()")


def message_box(page, name):
    box = page.get_by_role("dialog", name=name)
    try:
        box.wait_for()
    except Exception as timed_out:
        # Say what the browser and the outbox knew, so a failure on a loaded CI machine can be read.
        seen = page.evaluate("() => ({visibility: document.visibilityState, events: window.__tanbihEvents, "
                             "shown: !!document.getElementById('tanbih-inapp'), "
                             "seen: localStorage.getItem('tanbih.inapp_seen')})")
        messages = list(Message.objects.values_list("code", "status", "displayed_at", "subscriber_id"))
        raise AssertionError(f"no message {name!r} on the page; browser: {seen}; messages: {messages}") \
            from timed_out
    return box


def displayed(message):
    return wait_until(lambda: Message.objects.filter(pk=message.pk, displayed_at__isnull=False).first(),
                      "the message to be marked displayed")


def test_a_message_for_the_browser_appears_on_the_next_page_view_and_is_marked_displayed(page, shop):
    message = send_inapp(visitor(page), "winter-sale")

    page.goto("/demo/store/en/")

    box = message_box(page, "Winter sale")
    assert box.get_by_role("heading").inner_text() == "Winter sale"
    assert "Everything 20% off today." in box.inner_text()
    button = box.get_by_role("link", name="Shop the sale")
    assert button.get_attribute("href") == outbox.click_url(message, 0)
    assert box.get_by_role("button", name="Close").is_visible()
    assert box.get_attribute("dir") == "ltr"
    assert displayed(message).displayed_at is not None
    assert events(page, "inapp:shown") == [{"code": message.code, "placement": "banner", "lang": "en", "dir": "ltr"}]


def test_a_message_once_shown_does_not_come_back_on_reload(page, shop):
    message = send_inapp(visitor(page), "winter-sale")
    page.goto("/demo/store/en/")
    message_box(page, "Winter sale")
    displayed(message)

    page.reload()

    assert fetch_now(page) == {"queued": 0}
    assert page.get_by_role("dialog").count() == 0
    assert events(page, "inapp:shown") == []


def test_a_message_is_not_shown_twice_in_a_browser_even_when_its_seen_report_was_lost(page, shop):
    message = send_inapp(visitor(page), "winter-sale")
    page.route("**/api/v1/inapp/*/seen", lambda route: route.abort())
    page.goto("/demo/store/en/")
    message_box(page, "Winter sale").get_by_role("button", name="Close").click()
    assert Message.objects.get(pk=message.pk).displayed_at is None
    page.unroute("**/api/v1/inapp/*/seen")

    page.reload()

    assert fetch_now(page) == {"queued": 0}
    assert page.get_by_role("dialog").count() == 0
    # The report is sent again instead, so the message stops being pending.
    assert displayed(message).displayed_at is not None


def test_signing_in_shows_the_customers_messages_on_the_same_page(page, shop):
    customer = make_subscriber(external_id=DEMO_CUSTOMER)
    message = send_inapp(customer, "for-sara", title="Sara, your size is back")
    page.goto("/demo/store/en/")
    assert fetch_now(page) == {"queued": 0}

    page.get_by_role("button", name="Sign in as the demo customer").click()

    message_box(page, "Sara, your size is back")
    assert displayed(message).displayed_at is not None


def test_the_button_records_the_click_and_lands_on_the_target_page(page, shop):
    target = shop["url"] + PRODUCT_PAGE
    message = send_inapp(visitor(page), "earbuds", button_label="See the earbuds", button_url=target)
    page.goto("/demo/store/en/")

    with page.expect_navigation(url=target):
        message_box(page, "Winter sale").get_by_role("link", name="See the earbuds").click()

    clicked = wait_until(lambda: Message.objects.filter(pk=message.pk, clicked_at__isnull=False).first(),
                         "the click to be recorded")
    assert clicked.clicked_at >= clicked.displayed_at
    assert page.url == target


def test_an_arabic_message_reads_right_to_left_with_an_arabic_close_button(page, shop):
    shopper = visitor(page)
    shopper.locale = "ar"
    shopper.save(update_fields=["locale"])
    send_inapp(shopper, "ramadan", title="عروض رمضان", body="خصم ٢٠٪ على كل شيء", button_label="تسوّق الآن")

    page.goto("/demo/store/ar/")

    box = message_box(page, "عروض رمضان")
    assert (box.get_attribute("dir"), box.get_attribute("lang")) == ("rtl", "ar")
    assert box.evaluate("b => getComputedStyle(b).direction") == "rtl"
    assert box.get_by_role("button", name="إغلاق").is_visible()
    assert box.get_by_role("link", name="تسوّق الآن").is_visible()
    # Right to left: the button sits to the left of the text.
    text_left = box.get_by_role("heading").bounding_box()["x"]
    assert box.get_by_role("link").bounding_box()["x"] < text_left


def test_markup_in_a_message_is_shown_as_text_and_never_runs(page, shop):
    title = "<script>window.__ran = 1</script>Hi"
    body = '<img src="x" onerror="window.__ran = 2"><b>bold</b>'
    send_inapp(visitor(page), "markup", title=title, body=body, image="javascript:window.__ran = 3")

    page.goto("/demo/store/en/")

    box = message_box(page, title)
    assert box.get_by_role("heading").inner_text() == title
    assert body in box.inner_text()
    assert box.locator("script, b, img").count() == 0
    assert page.evaluate("() => window.__ran") is None


def test_an_http_image_is_shown_with_the_message(page, shop):
    page.route("https://images.example/**", lambda route: route.fulfill(body=PIXEL, content_type="image/png"))
    send_inapp(visitor(page), "with-image", image="https://images.example/sale.png")

    page.goto("/demo/store/en/")

    image = message_box(page, "Winter sale").locator("img")
    assert image.get_attribute("src") == "https://images.example/sale.png"
    assert image.evaluate("img => img.complete && img.naturalWidth") == 1


def test_logging_out_takes_the_customers_message_off_the_page(page, shop):
    send_inapp(visitor(page), "before-logout")
    page.goto("/demo/store/en/")
    box = message_box(page, "Winter sale")

    page.evaluate("() => tanbih.reset()")

    assert box.count() == 0
    assert events(page, "inapp:dismissed")[0]["reason"] == "reset"


def test_two_messages_show_newest_first_and_the_second_after_the_first_is_closed(page, shop):
    shopper = visitor(page)
    older = send_inapp(shopper, "older", title="Free delivery this week")
    newer = send_inapp(shopper, "newer", title="Your cart misses you")

    page.goto("/demo/store/en/")

    first = message_box(page, "Your cart misses you")
    assert page.get_by_role("dialog").count() == 1
    first.get_by_role("button", name="Close").click()
    message_box(page, "Free delivery this week")
    assert [e["code"] for e in events(page, "inapp:shown")] == [newer.code, older.code]
    assert events(page, "inapp:dismissed") == [{"code": newer.code, "placement": "banner", "reason": "close"}]
    assert displayed(older).displayed_at is not None


def test_a_modal_message_keeps_the_keyboard_inside_and_escape_closes_it(page, shop):
    send_inapp(visitor(page), "modal", placement="modal", title="One day only")
    page.goto("/demo/store/en/")
    box = message_box(page, "One day only")
    assert box.get_attribute("aria-modal") == "true"
    host = page.locator("#tanbih-inapp")
    assert host.evaluate("h => !!h.shadowRoot.querySelector('.backdrop')")

    focused = []
    for _ in range(3):
        page.keyboard.press("Tab")
        focused.append(host.evaluate("h => h.shadowRoot.activeElement && h.shadowRoot.activeElement.textContent"))
    page.keyboard.press("Escape")

    assert focused == ["Shop the sale", "\u00d7", "Shop the sale"]
    assert page.get_by_role("dialog").count() == 0
    assert events(page, "inapp:dismissed")[0]["reason"] == "escape"


def test_a_bottom_banner_sits_at_the_bottom_of_the_window(page, shop):
    send_inapp(visitor(page), "bottom", placement="bottom", title="Questions? We are here")
    page.goto("/demo/store/en/")

    box = message_box(page, "Questions? We are here").bounding_box()

    assert box["y"] + box["height"] == pytest.approx(page.viewport_size["height"], abs=1)


def test_with_in_app_turned_off_messages_wait_until_the_store_asks_for_them(page, shop):
    send_inapp(visitor(page), "manual")
    page.add_init_script(
        'window.tanbih = function () { (tanbih.q = tanbih.q || []).push(arguments) };'
        'tanbih("init", { inApp: false });')
    fetched = []
    page.on("request", lambda request: fetched.append(request.url) if "/api/v1/inapp?" in request.url else None)

    page.goto("/demo/store/en/")
    page.wait_for_function("() => window.__tanbihEvents.some(e => e.name === 'ready')")
    assert page.get_by_role("dialog").count() == 0

    assert fetch_now(page) == {"queued": 1}
    message_box(page, "Winter sale")
    assert len(fetched) == 1
