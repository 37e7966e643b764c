"""The subscriber endpoints: upsert, read, consent, GDPR export and erasure."""
import pytest

from subscribers import services
from subscribers.models import (
    AnonymousId,
    Cart,
    Channel,
    Consent,
    ConsentChange,
    Event,
    Order,
    PushSubscription,
    Source,
    Subscriber,
)
from tests.factories import (  # noqa: F401 - isolated_cache is a fixture
    browser_client,
    isolated_cache,
    make_publishable_key,
    make_subscriber,
    push_keys,
    secret_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]


@pytest.fixture
def api():
    return secret_client()


def fields_of(response):
    return {e["field"]: e for e in response.json()["errors"]}


# --- Upsert --------------------------------------------------------------------

def test_upserting_a_new_customer_creates_the_profile(api):
    response = api.post("/api/v1/subscribers", {
        "external_id": "cust-1", "email": "Layla@Example.COM", "phone": "0501234567", "country": "sa",
        "first_name": "ليلى", "locale": "ar_sa", "timezone": "Asia/Riyadh",
        "attributes": {"vip": True}, "tags": ["newsletter", "newsletter", "eid"],
    }, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["external_id"] == "cust-1"
    assert body["phone"] == "+966501234567"
    assert body["email"] == "Layla@example.com"
    assert body["country"] == "SA"
    assert body["locale"] == "ar-SA"
    assert body["timezone"] == "Asia/Riyadh"
    assert body["first_name"] == "ليلى"
    assert body["tags"] == ["eid", "newsletter"]
    assert body["commerce"]["lifecycle_stage"] == "new"
    assert Subscriber.objects.get(external_id="cust-1").phone == "+966501234567"


def test_upserting_a_known_customer_changes_only_the_fields_sent(api):
    make_subscriber("cust-1", first_name="Omar", city="Riyadh", attributes={"size": "M", "vip": True})

    response = api.post("/api/v1/subscribers", {
        "external_id": "cust-1", "city": "Jeddah", "attributes": {"vip": None, "shoe": 43},
    }, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["first_name"], body["city"]) == ("Omar", "Jeddah")
    assert body["attributes"] == {"size": "M", "shoe": 43}
    assert Subscriber.objects.filter(external_id="cust-1").count() == 1


def test_upserting_with_a_browser_id_merges_that_browsers_anonymous_profile(api):
    anonymous, _ = services.resolve_subscriber(anonymous_id="browser-1")
    services.record_event(subscriber=anonymous, name="product_viewed", event_id="seen-1")

    response = api.post("/api/v1/subscribers", {"external_id": "cust-1", "anonymous_id": "browser-1"},
                        format="json")

    assert response.status_code == 201
    assert response.json()["anonymous_ids"] == ["browser-1"]
    assert Event.objects.get(event_id="seen-1").subscriber.external_id == "cust-1"
    assert not Subscriber.objects.filter(pk=anonymous.pk).exists()


@pytest.mark.parametrize("field, value, code, hint", [
    ("timezone", "Mars/Olympus", "invalid_timezone", "Asia/Riyadh"),
    ("timezone", "GMT+3", "invalid_timezone", "IANA"),
    ("phone", "12345", "invalid_phone", "E.164"),
    ("phone", "+96650", "invalid_phone", "E.164"),
    ("email", "layla@", "invalid", "name@example.com"),
    ("locale", "arabic", "invalid_locale", "'ar'"),
    ("country", "XX", "invalid_country", "ISO 3166-1"),
    ("birthday", "31/12/1990", "invalid", "YYYY-MM-DD"),
    ("tags", "vip", "not_a_list", "list"),
    ("attributes", ["a"], "not_an_object", "JSON object"),
])
def test_invalid_profile_fields_are_refused_saying_what_is_valid(api, field, value, code, hint):
    response = api.post("/api/v1/subscribers", {"external_id": "cust-1", field: value}, format="json")

    assert response.status_code == 400
    error = fields_of(response)[field]
    assert error["code"] == code
    assert hint in error["message"]
    assert not Subscriber.objects.exists()


def test_a_national_phone_number_needs_its_country(api):
    response = api.post("/api/v1/subscribers", {"external_id": "c", "phone": "0501234567"}, format="json")
    assert response.status_code == 400
    assert fields_of(response)["phone"]["code"] == "invalid_phone"

    response = api.post("/api/v1/subscribers", {"external_id": "c", "phone": "050 123 4567", "country": "SA"},
                        format="json")
    assert response.status_code == 201
    assert response.json()["phone"] == "+966501234567"


def test_an_upsert_without_external_id_is_refused(api):
    response = api.post("/api/v1/subscribers", {"email": "a@example.com"}, format="json")
    assert response.status_code == 400
    assert fields_of(response)["external_id"]["code"] == "required"


@pytest.mark.parametrize("field, value", [("email", "shared@example.com"), ("phone", "+966501234567")])
def test_an_email_or_phone_of_another_customer_is_a_conflict(api, field, value):
    make_subscriber("cust-1", **{field: value})

    response = api.post("/api/v1/subscribers", {"external_id": "cust-2", field: value}, format="json")

    assert response.status_code == 409
    assert fields_of(response)[field]["code"] == f"{field}_taken"
    assert not Subscriber.objects.filter(external_id="cust-2").exists()
    # The owner may send it again.
    assert api.post("/api/v1/subscribers", {"external_id": "cust-1", field: value}, format="json").status_code == 200


def test_an_email_seen_on_an_anonymous_browser_is_no_conflict(api):
    services.upsert_subscriber(anonymous_id="browser-1", email="guest@example.com")
    response = api.post("/api/v1/subscribers", {"external_id": "cust-1", "email": "guest@example.com"},
                        format="json")
    assert response.status_code == 201


def test_a_publishable_key_cannot_upsert_subscribers():
    _, raw = make_publishable_key()
    response = browser_client(raw).post("/api/v1/subscribers", {"external_id": "cust-1"}, format="json")
    assert response.status_code == 403
    assert "secret API key" in response.json()["errors"][0]["message"]
    assert not Subscriber.objects.exists()


# --- Read ----------------------------------------------------------------------

def test_reading_a_subscriber_shows_profile_consents_push_count_and_commerce(api):
    shopper = make_subscriber("cust-1", first_name="Omar", phone="+966501234567", locale="ar",
                              timezone="Asia/Riyadh")
    services.grant_consent(subscriber=shopper, channel=Channel.SMS, source=Source.API)
    for n in range(2):
        services.register_push_subscription(subscriber=shopper, endpoint=f"https://fcm.googleapis.com/fcm/send/{n}",
                                            p256dh="k", auth="a")
    services.expire_push_subscription(endpoint="https://fcm.googleapis.com/fcm/send/0", reason="410")
    services.place_order(subscriber_id=shopper.pk, order_id="o-1", value="120.00")
    services.place_order(subscriber_id=shopper.pk, order_id="o-2", value="80.00")

    response = api.get("/api/v1/subscribers/cust-1")

    assert response.status_code == 200
    body = response.json()
    assert (body["first_name"], body["phone"], body["timezone"]) == ("Omar", "+966501234567", "Asia/Riyadh")
    assert {c["channel"]: c["status"] for c in body["consents"]} == {"sms": "granted", "push": "granted"}
    assert body["push_subscriptions"] == {"active": 1, "total": 2}
    assert body["commerce"]["orders_count"] == 2
    assert body["commerce"]["total_spent"] == "200.00"
    assert body["commerce"]["average_order_value"] == "100.00"
    assert body["commerce"]["lifecycle_stage"] == "active"


def test_reading_an_unknown_subscriber_is_404(api):
    response = api.get("/api/v1/subscribers/nobody")
    assert response.status_code == 404
    assert response.json() == {"errors": [{"field": "external_id", "code": "not_found",
                                           "message": "No subscriber has external_id 'nobody'."}]}


def test_reading_a_subscriber_takes_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    shopper = make_subscriber("cust-1")
    for n in range(5):
        services.register_push_subscription(subscriber=shopper, endpoint=f"https://fcm.googleapis.com/fcm/send/{n}",
                                            p256dh="k", auth="a")
    with django_assert_max_num_queries(6):
        assert api.get("/api/v1/subscribers/cust-1").status_code == 200


# --- Consent -------------------------------------------------------------------

def test_consent_changes_are_kept_as_history_readable_through_the_api(api):
    make_subscriber("cust-1", phone="+966501234567")

    granted = api.post("/api/v1/subscribers/cust-1/consents", {
        "channel": "sms", "granted": True, "evidence": {"form": "checkout"}}, format="json")
    again = api.post("/api/v1/subscribers/cust-1/consents", {"channel": "sms", "granted": True}, format="json")
    revoked = api.post("/api/v1/subscribers/cust-1/consents", {
        "channel": "sms", "granted": False, "source": "keyword", "evidence": {"body": "STOP"}}, format="json")

    assert granted.status_code == 200 and granted.json()["status"] == "granted" and granted.json()["changed"]
    assert again.status_code == 200 and not again.json()["changed"]
    assert revoked.json()["status"] == "revoked" and revoked.json()["source"] == "keyword"

    listing = api.get("/api/v1/subscribers/cust-1/consents").json()
    assert [(c["channel"], c["status"]) for c in listing["consents"]] == [("sms", "revoked")]
    assert [(h["status"], h["source"], h["evidence"]) for h in listing["history"]] == [
        ("revoked", "keyword", {"body": "STOP"}), ("granted", "api", {"form": "checkout"})]


def test_sms_consent_without_a_phone_is_refused_on_the_channel(api):
    make_subscriber("cust-1")
    response = api.post("/api/v1/subscribers/cust-1/consents", {"channel": "whatsapp", "granted": True},
                        format="json")
    assert response.status_code == 400
    assert fields_of(response)["channel"]["code"] == "phone_required"
    assert not Consent.objects.exists()


@pytest.mark.parametrize("body, field, hint", [
    ({"channel": "pigeon", "granted": True}, "channel", "push, email, sms, whatsapp"),
    ({"channel": "sms"}, "granted", "required"),
    ({"channel": "sms", "granted": True, "source": "rumour"}, "source", "api"),
    ({"channel": "sms", "granted": True, "evidence": "yes"}, "evidence", "JSON object"),
])
def test_invalid_consent_updates_are_refused(api, body, field, hint):
    make_subscriber("cust-1", phone="+966501234567")
    response = api.post("/api/v1/subscribers/cust-1/consents", body, format="json")
    assert response.status_code == 400
    assert hint in fields_of(response)[field]["message"]


def test_consent_of_an_unknown_subscriber_is_404(api):
    response = api.post("/api/v1/subscribers/nobody/consents", {"channel": "push", "granted": False},
                        format="json")
    assert response.status_code == 404


# --- GDPR ----------------------------------------------------------------------

@pytest.fixture
def rich_shopper():
    shopper = make_subscriber("cust-1", email="layla@example.com", phone="+966501234567")
    services.resolve_subscriber(external_id="cust-1", anonymous_id="browser-1")
    services.grant_consent(subscriber=shopper, channel=Channel.EMAIL, source=Source.API, evidence={"form": "signup"})
    services.register_push_subscription(subscriber=shopper, endpoint="https://fcm.googleapis.com/fcm/send/x",
                                        p256dh="k", auth="a")
    services.record_event(subscriber=shopper, name="cart_updated", event_id="cart-1",
                          properties={"cart_id": "c-1", "items": [{"product_id": "p1", "price": "10", "quantity": 2}]})
    services.record_event(subscriber=shopper, name="order_placed", event_id="order-1",
                          properties={"order_id": "o-1", "cart_id": "c-1", "value": "20.00"})
    return shopper


def test_the_export_holds_everything_about_the_subscriber(api, rich_shopper):
    response = api.get("/api/v1/subscribers/cust-1/export")

    assert response.status_code == 200
    data = response.json()
    assert data["profile"]["email"] == "layla@example.com"
    assert data["anonymous_ids"] == ["browser-1"]
    events = [e for e in data["events"] if e["name"] != "subscribed"]
    assert [e["event_id"] for e in events] == ["cart-1", "order-1"]
    assert events[1]["properties"]["order_id"] == "o-1"
    assert {e["properties"]["channel"] for e in data["events"] if e["name"] == "subscribed"} == {
        c["channel"] for c in data["consents"]}
    assert {c["channel"] for c in data["consents"]} == {"email", "push"}
    assert {h["channel"] for h in data["consent_history"]} == {"email", "push"}
    assert data["push_subscriptions"][0]["endpoint"] == "https://fcm.googleapis.com/fcm/send/x"
    assert data["carts"][0]["status"] == "converted"
    assert data["orders"][0]["external_id"] == "o-1"


def test_erasing_a_subscriber_removes_everything_about_them(api, rich_shopper):
    other = make_subscriber("cust-2")
    services.record_event(subscriber=other, name="product_viewed")

    response = api.delete("/api/v1/subscribers/cust-1")

    assert response.status_code == 204
    assert not Subscriber.objects.filter(external_id="cust-1").exists()
    for model in (AnonymousId, Consent, ConsentChange, PushSubscription, Cart, Order):
        assert not model.objects.exists(), model
    assert list(Event.objects.values_list("subscriber__external_id", flat=True)) == ["cust-2"]
    assert api.get("/api/v1/subscribers/cust-1").status_code == 404
    assert api.delete("/api/v1/subscribers/cust-1").status_code == 404


def test_a_publishable_key_can_neither_export_nor_erase(rich_shopper):
    _, raw = make_publishable_key()
    browser = browser_client(raw)
    assert browser.get("/api/v1/subscribers/cust-1/export").status_code == 403
    assert browser.delete("/api/v1/subscribers/cust-1").status_code == 403
    assert browser.get("/api/v1/subscribers/cust-1").status_code == 403
    assert Subscriber.objects.filter(external_id="cust-1").exists()
