"""The storefront SDK and service worker in Chromium, against a live Tanbih and a real push service."""
import datetime
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from pywebpush import webpush

from delivery.models import NotificationReport
from subscribers.models import AnonymousId, Cart, Consent, Event, Order, PushSubscription, Subscriber

from .helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PRODUCT_PAGE = "/demo/store/en/products/wireless-earbuds/"

# Collects the SDK's DOM events (tanbih:ready, tanbih:config, tanbih:prompt, …) for the test to read.
RECORD_SDK_EVENTS = """
window.__tanbihEvents = [];
["ready", "config", "prompt", "accepted", "declined", "subscribed", "identified", "error", "service-worker"]
  .forEach(function (name) {
    document.addEventListener("tanbih:" + name, function (event) {
      window.__tanbihEvents.push({ name: name, detail: event.detail });
    });
  });
"""

# A browser's own pushManager.subscribe() needs the vendor's push service, which is not
# reachable here. This makes it create a real subscription on the local push service
# emulator instead (through __pushServiceSubscribe, exposed by the test), with the
# applicationServerKey the SDK passed; everything after that is the SDK's own code.
PUSH_MANAGER_ON_EMULATOR = """
(function () {
  function toBase64Url(bytes) {
    return btoa(String.fromCharCode.apply(null, bytes)).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  }
  function fromBase64Url(text) {
    var padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(padded), function (c) { return c.charCodeAt(0); });
  }
  var current = null;
  PushManager.prototype.subscribe = function (options) {
    var key = new Uint8Array(options.applicationServerKey);
    return window.__pushServiceSubscribe(toBase64Url(key)).then(function (data) {
      current = {
        endpoint: data.endpoint,
        expirationTime: null,
        options: { userVisibleOnly: true, applicationServerKey: key.buffer },
        getKey: function (name) { return fromBase64Url(data.keys[name]).buffer; },
        toJSON: function () { return { endpoint: data.endpoint, expirationTime: null, keys: data.keys }; },
        unsubscribe: function () { current = null; return Promise.resolve(true); },
      };
      return current;
    });
  };
  PushManager.prototype.getSubscription = function () { return Promise.resolve(current); };
})();
"""


def sdk_event(page, name):
    """Wait for the SDK to emit tanbih:<name>; returns its detail."""
    page.wait_for_function(f"() => window.__tanbihEvents.some(e => e.name === {json.dumps(name)})")
    return page.evaluate(f"() => window.__tanbihEvents.find(e => e.name === {json.dumps(name)}).detail")


def anonymous_id(page):
    return page.evaluate("() => localStorage.getItem('tanbih.anonymous_id')")


def paused_clock(page):
    """Page timers run only when the test moves the clock on."""
    start = datetime.datetime(2026, 11, 23, 12, 0, 0)
    page.clock.install(time=start)
    page.clock.pause_at(start + datetime.timedelta(seconds=1))


def test_the_sdk_registers_the_service_worker_with_its_key_and_api(page, store):
    page.goto("/demo/store/")

    script_url = page.evaluate("async () => (await navigator.serviceWorker.ready).active.scriptURL")

    assert script_url.startswith(store["url"] + "/tanbih-sw.js?")
    query = parse_qs(urlsplit(script_url).query)
    assert query["key"] == [store["key"].publishable_key]
    assert query["api"] == [store["url"]]
    scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope")
    assert scope == store["url"] + "/"


def test_it_shows_the_soft_prompt_once_the_delay_has_passed(page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    paused_clock(page)
    page.goto("/demo/store/")

    assert sdk_event(page, "config")["prompt_in_ms"] == 1000
    dialog = page.get_by_role("dialog")
    assert dialog.count() == 0

    page.clock.run_for(1000)

    dialog.wait_for()
    assert dialog.get_attribute("dir") == "ltr"
    assert dialog.get_by_role("heading").inner_text() == store["prompt"].title_en
    assert store["prompt"].body_en in dialog.inner_text()
    allow = dialog.get_by_role("button", name=store["prompt"].accept_en)
    not_now = dialog.get_by_role("button", name=store["prompt"].decline_en)
    allow.focus()
    assert allow.evaluate("b => b.matches(':focus')")
    not_now.focus()
    assert not_now.evaluate("b => b.matches(':focus')")


def test_the_prompt_speaks_arabic_right_to_left_and_shows_the_marketers_text_as_text(page, store):
    config = store["prompt"]
    config.title_ar = "عروض اليوم <b>لك</b>"
    config.accept_ar = "نعم، أرسلوا لي"
    config.save()
    page.goto("/demo/store/ar/")

    dialog = page.get_by_role("dialog")
    dialog.wait_for()

    assert dialog.get_attribute("dir") == "rtl"
    assert dialog.get_attribute("lang") == "ar"
    assert dialog.get_by_role("heading").inner_text() == "عروض اليوم <b>لك</b>"
    assert dialog.locator("b").count() == 0
    assert dialog.get_by_role("button", name="نعم، أرسلوا لي").is_visible()
    assert dialog.get_by_role("button", name=config.decline_ar).is_visible()


def test_not_now_is_remembered_across_a_reload(page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    page.goto("/demo/store/")
    page.get_by_role("dialog").get_by_role("button", name=store["prompt"].decline_en).click()
    assert page.get_by_role("dialog").count() == 0

    page.reload()

    assert sdk_event(page, "config")["prompt_in_ms"] is None
    assert page.evaluate("() => localStorage.getItem('tanbih.prompt_declined_at')")


def test_the_prompt_is_usable_from_the_keyboard_and_escape_means_not_now(page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    page.goto("/demo/store/")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()

    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.getElementById('tanbih-prompt').shadowRoot.activeElement.textContent")
    page.keyboard.press("Escape")

    assert focused in (store["prompt"].decline_en, store["prompt"].accept_en)
    assert dialog.count() == 0
    assert sdk_event(page, "declined") == {}
    assert page.evaluate("() => localStorage.getItem('tanbih.prompt_declined_at')")


def test_it_asks_again_once_the_reprompt_days_have_passed(page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    fifteen_days_ago = (datetime.datetime.now() - datetime.timedelta(days=15)).timestamp() * 1000
    page.add_init_script(f"localStorage.setItem('tanbih.prompt_declined_at', '{int(fifteen_days_ago)}')")

    page.goto("/demo/store/")

    assert store["prompt"].reprompt_after_days == 14
    assert sdk_event(page, "config")["prompt_in_ms"] == 1000


def test_the_prompt_appears_only_on_the_pages_the_marketer_chose(page, store):
    config = store["prompt"]
    config.page_patterns = ["/demo/store/*/products/*"]
    config.save()
    page.add_init_script(RECORD_SDK_EVENTS)

    page.goto("/demo/store/en/")
    on_home = sdk_event(page, "config")["prompt_in_ms"]
    page.goto(PRODUCT_PAGE)
    on_product = sdk_event(page, "config")["prompt_in_ms"]

    assert (on_home, on_product) == (None, 1000)


def test_it_does_not_prompt_when_notifications_are_already_allowed(context, page, store):
    context.grant_permissions(["notifications"], origin=store["url"])
    page.add_init_script(RECORD_SDK_EVENTS)

    page.goto("/demo/store/")

    assert sdk_event(page, "config")["prompt_in_ms"] is None


def test_a_call_made_before_the_sdk_loaded_is_queued_and_reaches_the_database(page, store):
    page.route("**/static/tanbih/sdk.js", lambda route: route.abort())
    page.goto(PRODUCT_PAGE)
    queued = page.evaluate("() => window.tanbih.q.map(args => Array.from(args))")
    assert queued[0][:2] == ["track", "product_viewed"]
    assert queued[0][2]["product_id"] == "DEMO-1001"

    page.unroute("**/static/tanbih/sdk.js")
    page.add_init_script(RECORD_SDK_EVENTS)
    page.reload()
    sdk_event(page, "ready")

    event = wait_until(lambda: Event.objects.filter(name="product_viewed").first(), "the product_viewed event")
    assert event.properties["product_id"] == "DEMO-1001"
    assert event.properties["category"] == "electronics"
    assert event.subscriber_id == AnonymousId.objects.get(value=anonymous_id(page)).subscriber_id


def test_track_sends_an_event_that_reaches_the_database(page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    page.goto("/demo/store/")
    sdk_event(page, "ready")

    answer = page.evaluate("() => tanbih.track('video_watched', {video: 'تجربة المنتج', seconds: 42})")

    assert answer["status"] == "created"
    event = Event.objects.get(name="video_watched")
    assert event.properties == {"video": "تجربة المنتج", "seconds": 42}
    assert event.subscriber.anonymous_ids.get().value == anonymous_id(page)


def test_the_demo_shops_cart_and_order_reach_tanbih_as_commerce_facts(page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    page.goto(PRODUCT_PAGE)
    sdk_event(page, "ready")

    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("button", name="Add to cart").click()
    cart = wait_until(lambda: Cart.objects.filter(items__0__quantity=2).first(), "the cart with two earbuds")
    page.get_by_role("button", name="Place order").click()
    order = wait_until(lambda: Order.objects.first(), "the order")

    assert cart.items[0]["product_id"] == "DEMO-1001"
    assert str(order.value) == "498.00"
    assert order.currency == "SAR"
    cart.refresh_from_db()
    assert cart.status == "converted"


def test_identify_ties_the_browser_to_the_customer_with_the_servers_user_hash(page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    page.goto(PRODUCT_PAGE)
    wait_until(lambda: Event.objects.filter(name="product_viewed").exists(), "the anonymous product view")

    page.get_by_role("button", name="Sign in as the demo customer").click()
    sdk_event(page, "identified")

    customer = Subscriber.objects.get(external_id="demo-customer-1")
    assert customer.timezone == "Asia/Riyadh"
    assert customer.locale == "en"
    assert customer.first_name == "Sara"
    assert customer.anonymous_ids.filter(value=anonymous_id(page)).exists()
    assert customer.events.filter(name="product_viewed").exists()


def test_accepting_the_prompt_sends_a_real_push_subscription_that_can_be_pushed_to(
    context, page, store, settings, web_push_service, vapid_keys,
):
    settings.PUSH_ALLOWED_ENDPOINTS = [web_push_service.origin]
    page.expose_function("__pushServiceSubscribe", web_push_service.subscribe)
    page.add_init_script(PUSH_MANAGER_ON_EMULATOR)
    page.add_init_script(RECORD_SDK_EVENTS)
    page.goto(PRODUCT_PAGE)
    dialog = page.get_by_role("dialog")
    dialog.wait_for()

    # The shopper answers the browser's own prompt with "Allow".
    context.grant_permissions(["notifications"], origin=store["url"])
    dialog.get_by_role("button", name=store["prompt"].accept_en).click()
    endpoint = sdk_event(page, "subscribed")["endpoint"]

    subscription = PushSubscription.objects.get(endpoint=endpoint)
    assert endpoint.startswith(web_push_service.origin + "/notify/")
    assert subscription.category == "electronics"
    assert subscription.page_url == store["url"] + PRODUCT_PAGE
    assert subscription.browser == "Chrome"
    assert subscription.subscriber.anonymous_ids.get().value == anonymous_id(page)
    assert Consent.objects.get(subscriber=subscription.subscriber, channel="push").is_granted

    message = {"title": "سلتك بانتظارك", "body": "أكمل طلبك الآن", "code": "msg-e2e-1"}
    response = webpush(
        {"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}},
        json.dumps(message, ensure_ascii=False),
        vapid_private_key=vapid_keys["private"],
        vapid_claims={"sub": "mailto:ops@example.com"},
        headers={"Content-Type": "application/octet-stream"},
        ttl=60, timeout=10,
    )
    assert response.status_code == 201
    client_hash = endpoint.rsplit("/", 1)[1]
    assert [json.loads(m) for m in web_push_service.messages(client_hash)] == [message]


def _notifications(page):
    return page.evaluate("""async () => {
        const registration = await navigator.serviceWorker.ready;
        return (await registration.getNotifications()).map(n => ({
            title: n.title, body: n.body, tag: n.tag, dir: n.dir, data: n.data,
            actions: n.actions.map(a => ({action: a.action, title: a.title})),
        }));
    }""")


def _push_and_wait_until_shown(context, page, store, payload):
    """Push `payload` into the page's service worker through the DevTools protocol.

    Returns once the worker reported the display, which it does after its
    showNotification() resolved. Reading notifications earlier is not safe:
    Chromium's getNotifications() deletes from its database a notification
    written but not yet on display, and later reads never list it.
    """
    page.evaluate("async () => { await navigator.serviceWorker.ready; }")
    cdp = context.new_cdp_session(page)
    registrations = {}

    def remember(params):
        for registration in params["registrations"]:
            registrations[registration["scopeURL"]] = registration["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", remember)
    cdp.send("ServiceWorker.enable")
    scope = store["url"] + "/"
    while scope not in registrations:
        page.wait_for_timeout(50)
    cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": store["url"], "registrationId": registrations[scope],
        "data": json.dumps(payload, ensure_ascii=False),
    })
    return wait_until(
        lambda: NotificationReport.objects.filter(code=payload["code"], kind="displayed").first(),
        "the display report",
    )


PUSH_PAYLOAD = {
    "title": "طلبك في الطريق",
    "body": "شحنّا طلبك رقم ١٠٢٤ — تابعه الآن",
    "tag": "order-1024",
    "url": "/demo/store/ar/",
    "code": "msg-1024",
    "actions": [
        {"action": "track", "title": "تتبع الطلب", "url": "/demo/store/ar/products/smart-watch/"},
        {"action": "help", "title": "المساعدة", "url": "/demo/store/ar/"},
        {"action": "third", "title": "A third button is one too many", "url": "/"},
    ],
}


def test_a_push_delivered_to_the_service_worker_shows_the_notification_and_reports_its_display(
    context, page, store,
):
    context.grant_permissions(["notifications"], origin=store["url"])
    page.goto("/demo/store/ar/")

    report = _push_and_wait_until_shown(context, page, store, PUSH_PAYLOAD)

    [shown] = _notifications(page)
    assert shown["title"] == "طلبك في الطريق"
    assert shown["body"] == "شحنّا طلبك رقم ١٠٢٤ — تابعه الآن"
    assert shown["tag"] == "order-1024"
    assert shown["actions"] == [{"action": "track", "title": "تتبع الطلب"}, {"action": "help", "title": "المساعدة"}]
    assert shown["data"]["url"] == store["url"] + "/demo/store/ar/"
    assert report.action == ""
    assert "Chrome" in report.user_agent


def test_a_click_on_an_action_is_reported_with_the_action(context, page, store):
    context.grant_permissions(["notifications"], origin=store["url"])
    page.goto("/demo/store/ar/")
    _push_and_wait_until_shown(context, page, store, PUSH_PAYLOAD)
    worker = next(w for w in context.service_workers if "/tanbih-sw.js" in w.url)

    # No DevTools command clicks a notification: dispatch the click event the browser would
    # send, on the notification the push showed, to the worker's own handler.
    worker.evaluate("""async () => {
        const [notification] = await self.registration.getNotifications({tag: "order-1024"});
        const pending = [];
        const click = new NotificationEvent("notificationclick", {notification, action: "track"});
        Object.defineProperty(click, "waitUntil", {value: (promise) => pending.push(promise)});
        self.dispatchEvent(click);
        await Promise.all(pending);
    }""")

    report = NotificationReport.objects.get(code="msg-1024", kind="clicked")
    assert report.action == "track"
    assert _notifications(page) == []
