"""Registering and unregistering web push subscriptions, behind the SSRF guard.

The guard decides what the server may POST to later. Redirects are a
delivery-time concern (the sender never follows them) and are not tested here.
"""
import pytest

from subscribers.models import Channel, ConsentChange, PushSubscription, PushSubscriptionStatus, Subscriber
from tests.factories import (  # noqa: F401 - isolated_cache is a fixture
    browser_client,
    isolated_cache,
    make_publishable_key,
    make_subscriber,
    push_keys,
    secret_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

FCM = "https://fcm.googleapis.com/fcm/send/abc123"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@pytest.fixture
def browser():
    _, raw = make_publishable_key()
    return browser_client(raw)


def subscription(endpoint=FCM, **extra):
    return {"endpoint": endpoint, "keys": push_keys(), "anonymous_id": "browser-1",
            "page_url": "https://shop.example/electronics/tv", "category": "electronics", **extra}


def test_a_browser_registers_its_push_subscription(browser):
    response = browser.post("/api/v1/push-subscriptions", subscription(timezone="Asia/Dubai", locale="ar"),
                            format="json", HTTP_USER_AGENT=CHROME)

    assert response.status_code == 201
    assert response.json()["status"] == "active"
    assert response.json()["browser"] == "Chrome"
    push = PushSubscription.objects.get()
    assert push.endpoint == FCM
    assert push.category == "electronics"
    shopper = push.subscriber
    assert shopper.anonymous_ids.get().value == "browser-1"
    assert shopper.subscribed_category == "electronics"
    assert shopper.subscribed_page_url == "https://shop.example/electronics/tv"
    assert (shopper.timezone, shopper.locale) == ("Asia/Dubai", "ar")
    assert shopper.consents.get(channel=Channel.PUSH).is_granted


def test_registering_a_known_endpoint_again_refreshes_it(browser):
    browser.post("/api/v1/push-subscriptions", subscription(), format="json")
    browser.post("/api/v1/push-subscriptions/unsubscribe", {"endpoint": FCM}, format="json")

    response = browser.post("/api/v1/push-subscriptions", subscription(), format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert PushSubscription.objects.count() == 1


def test_the_browser_timezone_does_not_overwrite_a_customers_profile():
    make_subscriber("cust-1", timezone="Europe/London")
    response = secret_client().post("/api/v1/push-subscriptions", subscription(
        anonymous_id=None, external_id="cust-1", timezone="Asia/Dubai"), format="json")
    assert response.status_code == 201
    assert Subscriber.objects.get(external_id="cust-1").timezone == "Europe/London"


def test_a_browser_cannot_subscribe_an_arbitrary_customer(browser):
    make_subscriber("cust-1")
    response = browser.post("/api/v1/push-subscriptions", subscription(anonymous_id=None, external_id="cust-1"),
                            format="json")
    assert response.status_code == 403
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize("endpoint", [
    "https://127.0.0.1/push/1",
    "https://localhost/push/1",
    "https://10.0.0.5/push",
    "https://192.168.1.1/push",
    "https://172.16.0.1/push",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/push",
    "https://[fe80::1]/push",
    "https://[::ffff:127.0.0.1]/push",
    "http://fcm.googleapis.com/fcm/send/abc",
    "https://evil.example.com/fcm/send/abc",
    "https://fcm.googleapis.com.evil.example/fcm/send/abc",
    "https://user:secret@fcm.googleapis.com/fcm/send/abc",
    "http://localhost:8090/notify/abc",
    "not a url",
])
def test_endpoints_that_are_not_allow_listed_push_services_are_refused(browser, endpoint):
    response = browser.post("/api/v1/push-subscriptions", subscription(endpoint), format="json")

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "endpoint"
    assert error["code"] in ("invalid_endpoint", "endpoint_not_https", "endpoint_not_allowed")
    assert not PushSubscription.objects.exists()
    assert not Subscriber.objects.exists()


def test_refusals_say_why(browser):
    def reason(endpoint):
        return browser.post("/api/v1/push-subscriptions", subscription(endpoint), format="json").json()["errors"][0]

    assert "private, loopback or link-local" in reason("https://169.254.169.254/x")["message"]
    assert "https" in reason("http://fcm.googleapis.com/x")["message"]
    assert "credentials" in reason("https://a:b@fcm.googleapis.com/x")["message"]
    assert "not an allowed push service" in reason("https://evil.example.com/x")["message"]


def test_an_endpoint_listed_in_push_allowed_endpoints_is_accepted(browser, settings):
    settings.PUSH_ALLOWED_ENDPOINTS = ["http://localhost:8090"]
    response = browser.post("/api/v1/push-subscriptions", subscription("http://localhost:8090/notify/abc"),
                            format="json")
    assert response.status_code == 201
    refused = browser.post("/api/v1/push-subscriptions", subscription("http://127.0.0.1:8090/notify/abc"),
                           format="json")
    assert refused.status_code == 400


@pytest.mark.parametrize("keys, field", [
    ({"p256dh": "short", "auth": push_keys()["auth"]}, "keys.p256dh"),
    ({"p256dh": push_keys()["p256dh"], "auth": "!!!"}, "keys.auth"),
    ({"p256dh": push_keys()["p256dh"]}, "keys.auth"),
])
def test_subscriptions_need_the_browsers_real_keys(browser, keys, field):
    response = browser.post("/api/v1/push-subscriptions", {**subscription(), "keys": keys}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_a_subscription_needs_someone_to_belong_to(browser):
    response = browser.post("/api/v1/push-subscriptions", subscription(anonymous_id=None), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "external_id"


def test_unsubscribing_by_endpoint_revokes_push_consent_with_the_last_subscription(browser):
    browser.post("/api/v1/push-subscriptions", subscription(), format="json")

    response = browser.post("/api/v1/push-subscriptions/unsubscribe", {"endpoint": FCM}, format="json")
    again = browser.post("/api/v1/push-subscriptions/unsubscribe", {"endpoint": FCM}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "unsubscribed"
    assert again.status_code == 200
    assert PushSubscription.objects.get().status == PushSubscriptionStatus.UNSUBSCRIBED
    assert [c.status for c in ConsentChange.objects.filter(channel=Channel.PUSH).order_by("id")] == [
        "granted", "revoked"]


def test_unsubscribing_an_unknown_endpoint_is_404(browser):
    response = browser.post("/api/v1/push-subscriptions/unsubscribe", {"endpoint": FCM}, format="json")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "endpoint"
