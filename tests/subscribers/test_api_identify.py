"""Identify: a browser's anonymous profile becomes (part of) a known customer."""
import pytest

from subscribers import services
from subscribers.models import AnonymousId, Cart, Channel, Event, PushSubscription, Source, Subscriber
from tests.factories import (  # noqa: F401 - isolated_cache is a fixture
    browser_client,
    isolated_cache,
    make_publishable_key,
    make_subscriber,
    secret_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]


@pytest.fixture
def browsing_history():
    """An anonymous visitor who looked around, filled a cart and subscribed to push."""
    anonymous, _ = services.resolve_subscriber(anonymous_id="browser-1")
    services.record_event(subscriber=anonymous, name="product_viewed", event_id="view-1")
    services.record_event(subscriber=anonymous, name="cart_updated", event_id="cart-1", properties={
        "cart_id": "cart-1", "items": [{"product_id": "p1", "price": "50", "quantity": 1}]})
    services.register_push_subscription(subscriber=anonymous, endpoint="https://fcm.googleapis.com/fcm/send/b1",
                                        p256dh="k", auth="a")
    return anonymous


@pytest.fixture
def key():
    return make_publishable_key()


def test_identify_merges_anonymous_events_carts_and_push_subscriptions_into_the_customer(browsing_history, key):
    customer = make_subscriber("cust-1", first_name="Omar")
    services.record_event(subscriber=customer, name="signed_up", event_id="signup")
    api_key, raw = key

    response = browser_client(raw).post("/api/v1/identify", {
        "anonymous_id": "browser-1", "external_id": "cust-1", "user_hash": api_key.identity_hash("cust-1"),
    }, format="json")

    assert response.status_code == 200
    assert response.json() == {"external_id": "cust-1", "anonymous_id": "browser-1", "merged": True}
    assert Subscriber.objects.count() == 1
    customer.refresh_from_db()
    assert customer.first_name == "Omar"
    # The browsing history moved over (with the push subscription's own "subscribed").
    assert set(customer.events.exclude(name="subscribed").values_list("event_id", flat=True)) == {
        "view-1", "cart-1", "signup"}
    assert customer.events.filter(name="subscribed", properties__channel="push").exists()
    assert Cart.objects.get(external_id="cart-1").subscriber == customer
    assert PushSubscription.objects.get().subscriber == customer
    assert customer.consents.get(channel=Channel.PUSH).is_granted
    assert AnonymousId.objects.get(value="browser-1").subscriber == customer


def test_identifying_again_changes_nothing(browsing_history):
    api = secret_client()
    body = {"anonymous_id": "browser-1", "external_id": "cust-1"}
    first = api.post("/api/v1/identify", body, format="json")
    before = sorted(Event.objects.values_list("event_id", "subscriber_id"))

    second = api.post("/api/v1/identify", body, format="json")

    assert first.json()["merged"] is True
    assert second.status_code == 200 and second.json()["merged"] is False
    assert sorted(Event.objects.values_list("event_id", "subscriber_id")) == before
    assert Subscriber.objects.count() == 1
    assert Event.objects.exclude(name="subscribed").count() == 2
    assert PushSubscription.objects.count() == 1


def test_identify_of_a_new_customer_creates_them_from_the_browser_profile(browsing_history):
    response = secret_client().post("/api/v1/identify", {"anonymous_id": "browser-1", "external_id": "new"},
                                    format="json")
    assert response.status_code == 200
    known = Subscriber.objects.get()
    assert known.external_id == "new"
    assert known.events.exclude(name="subscribed").count() == 2


def test_identify_sets_traits_on_the_customer(key):
    api_key, raw = key
    response = browser_client(raw).post("/api/v1/identify", {
        "anonymous_id": "browser-1", "external_id": "cust-1", "user_hash": api_key.identity_hash("cust-1"),
        "traits": {"timezone": "Africa/Cairo", "locale": "ar", "first_name": "منى"},
    }, format="json")
    assert response.status_code == 200
    customer = Subscriber.objects.get(external_id="cust-1")
    assert (customer.timezone, customer.locale, customer.first_name) == ("Africa/Cairo", "ar", "منى")
    assert customer.anonymous_ids.get().value == "browser-1"


def test_identify_refuses_invalid_traits_naming_the_trait():
    response = secret_client().post("/api/v1/identify", {
        "anonymous_id": "b", "external_id": "c", "traits": {"timezone": "Riyadh"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "traits.timezone"
    assert "IANA" in response.json()["errors"][0]["message"]
    assert not Subscriber.objects.exists()


def test_a_browser_identify_without_user_hash_is_refused_when_verification_is_required(browsing_history, key):
    _, raw = key
    response = browser_client(raw).post("/api/v1/identify", {"anonymous_id": "browser-1", "external_id": "cust-1"},
                                        format="json")

    assert response.status_code == 403
    error = response.json()["errors"][0]
    assert (error["field"], error["code"]) == ("user_hash", "user_hash_required")
    assert "HMAC-SHA256" in error["message"]
    assert not Subscriber.objects.filter(external_id="cust-1").exists()


def test_a_browser_identify_with_a_wrong_user_hash_is_refused(browsing_history, key):
    api_key, raw = key
    response = browser_client(raw).post("/api/v1/identify", {
        "anonymous_id": "browser-1", "external_id": "cust-1", "user_hash": api_key.identity_hash("cust-2"),
    }, format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "invalid_user_hash"
    assert Event.objects.get(event_id="view-1").subscriber.external_id is None


def test_a_key_without_verification_lets_the_browser_identify():
    _, raw = make_publishable_key(require_identity_verification=False)
    response = browser_client(raw).post("/api/v1/identify", {"anonymous_id": "b", "external_id": "c"},
                                        format="json")
    assert response.status_code == 200
    assert Subscriber.objects.get().external_id == "c"


def test_identify_with_another_customers_email_is_a_conflict():
    make_subscriber("cust-1", email="taken@example.com")
    response = secret_client().post("/api/v1/identify", {
        "anonymous_id": "b", "external_id": "cust-2", "traits": {"email": "taken@example.com"}}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "email"
    assert not Subscriber.objects.filter(external_id="cust-2").exists()


@pytest.mark.parametrize("body, field", [
    ({"external_id": "c"}, "anonymous_id"),
    ({"anonymous_id": "b"}, "external_id"),
    ({"anonymous_id": "b", "external_id": "c" * 129}, "external_id"),
])
def test_identify_needs_both_ids(body, field):
    response = secret_client().post("/api/v1/identify", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_a_browser_identify_records_its_source_as_the_sdk(key):
    api_key, raw = key
    browser_client(raw).post("/api/v1/identify", {
        "anonymous_id": "b", "external_id": "c", "user_hash": api_key.identity_hash("c"),
        "traits": {"city": "Dubai"}}, format="json")
    browser_client(raw).post("/api/v1/events", {
        "name": "product_viewed", "external_id": "c", "user_hash": api_key.identity_hash("c")}, format="json")
    assert Event.objects.get().source == Source.SDK
