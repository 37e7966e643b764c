"""Tracking events: one at a time and in batches, idempotent on event_id."""
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from subscribers import services
from subscribers.models import Cart, CartStatus, Event, Order, Source, Subscriber
from tests.factories import (  # noqa: F401 - isolated_cache is a fixture
    browser_client,
    isolated_cache,
    make_publishable_key,
    make_subscriber,
    secret_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]


@pytest.fixture
def api():
    return secret_client()


def view(n, **extra):
    return {"name": "product_viewed", "event_id": f"e-{n}", "external_id": "cust-1",
            "properties": {"product_id": f"p{n}"}, **extra}


# --- One event -----------------------------------------------------------------

def test_tracking_an_event_stores_it_for_the_customer(api):
    occurred = "2026-01-05T10:15:00+03:00"
    response = api.post("/api/v1/events", view(1, occurred_at=occurred), format="json")

    assert response.status_code == 201
    assert response.json() == {"status": "created", "event_id": "e-1"}
    event = Event.objects.get(event_id="e-1")
    assert event.subscriber.external_id == "cust-1"
    assert event.properties == {"product_id": "p1"}
    assert event.occurred_at.isoformat() == "2026-01-05T07:15:00+00:00"
    assert event.source == Source.API


def test_tracking_the_same_event_id_again_is_accepted_and_ignored(api):
    first = api.post("/api/v1/events", view(1), format="json")
    again = api.post("/api/v1/events", view(1, properties={"changed": True}), format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"status": "duplicate", "event_id": "e-1"}
    assert Event.objects.filter(event_id="e-1").count() == 1
    assert Event.objects.get(event_id="e-1").properties == {"product_id": "p1"}


def test_events_without_event_id_are_all_stored(api):
    body = {"name": "page_viewed", "anonymous_id": "browser-1"}
    assert api.post("/api/v1/events", body, format="json").status_code == 201
    assert api.post("/api/v1/events", body, format="json").status_code == 201
    assert Event.objects.filter(name="page_viewed").count() == 2
    assert Subscriber.objects.anonymous().count() == 1


def test_commerce_events_update_carts_and_orders(api):
    items = [{"product_id": "p1", "title": "سماعات", "price": "100.00", "quantity": 2}]
    api.post("/api/v1/events", {"name": "cart_updated", "external_id": "cust-1",
                                "properties": {"cart_id": "cart-9", "items": items, "currency": "SAR"}},
             format="json")
    assert Cart.objects.get(external_id="cart-9").value == 200

    api.post("/api/v1/events", {"name": "order_placed", "external_id": "cust-1",
                                "properties": {"order_id": "o-1", "cart_id": "cart-9", "items": items}},
             format="json")
    assert Cart.objects.get(external_id="cart-9").status == CartStatus.CONVERTED
    assert Order.objects.get(external_id="o-1").subscriber.external_id == "cust-1"


@pytest.mark.parametrize("change, field, code, hint", [
    ({"name": "Product Viewed"}, "name", "invalid", "lowercase letters"),
    ({"name": "9lives"}, "name", "invalid", "starting with a letter"),
    ({"name": "x" * 81}, "name", "invalid", "1–80 characters"),
    ({"name": None}, "name", "null", "null"),
    ({"properties": ["a", "b"]}, "properties", "not_an_object", "JSON object"),
    ({"properties": {"blob": "x" * 20000}}, "properties", "too_large", "limit"),
    ({"occurred_at": "yesterday"}, "occurred_at", "invalid", "format"),
    ({"event_id": "e" * 129}, "event_id", "max_length", "128"),
    ({"external_id": None}, "external_id", "required", "anonymous_id"),
])
def test_invalid_events_are_refused_saying_what_is_valid(api, change, field, code, hint):
    response = api.post("/api/v1/events", {**view(1), **change}, format="json")

    assert response.status_code == 400
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert errors[field]["code"] == code
    assert hint in errors[field]["message"]
    assert not Event.objects.exists()


def test_an_event_from_the_future_is_refused_but_small_clock_skew_is_not(api):
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    response = api.post("/api/v1/events", view(1, occurred_at=future), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "occurred_at"
    assert response.json()["errors"][0]["code"] == "in_future"

    skewed = (timezone.now() + timedelta(seconds=30)).isoformat()
    assert api.post("/api/v1/events", view(2, occurred_at=skewed), format="json").status_code == 201


# --- From the browser ------------------------------------------------------------

@pytest.fixture
def browser_key():
    return make_publishable_key()


def test_a_browser_tracks_events_of_its_anonymous_id(browser_key):
    _, raw = browser_key
    response = browser_client(raw).post("/api/v1/events", {"name": "product_viewed", "anonymous_id": "b-1"},
                                        format="json")
    assert response.status_code == 201
    event = Event.objects.get()
    assert event.source == Source.SDK
    assert event.subscriber.anonymous_ids.get().value == "b-1"


def test_a_browser_cannot_write_events_onto_an_arbitrary_customer(browser_key):
    _, raw = browser_key
    make_subscriber("cust-1")
    browser = browser_client(raw)

    missing = browser.post("/api/v1/events", {"name": "order_placed", "external_id": "cust-1"}, format="json")
    forged = browser.post("/api/v1/events", {"name": "order_placed", "external_id": "cust-1",
                                             "user_hash": "0" * 64}, format="json")

    assert (missing.status_code, forged.status_code) == (403, 403)
    assert missing.json()["errors"][0]["field"] == "user_hash"
    assert missing.json()["errors"][0]["code"] == "user_hash_required"
    assert forged.json()["errors"][0]["code"] == "invalid_user_hash"
    assert not Event.objects.exists()


def test_a_browser_names_a_customer_with_the_hash_from_the_stores_server(browser_key):
    key, raw = browser_key
    response = browser_client(raw).post("/api/v1/events", {
        "name": "product_viewed", "external_id": "cust-1", "user_hash": key.identity_hash("cust-1"),
    }, format="json")
    assert response.status_code == 201
    assert Event.objects.get().subscriber.external_id == "cust-1"


def test_without_verification_a_browser_names_only_the_customer_it_identified_as():
    _, raw = make_publishable_key(require_identity_verification=False)
    browser = browser_client(raw)
    make_subscriber("someone-else")
    assert browser.post("/api/v1/identify", {"anonymous_id": "b-1", "external_id": "cust-1"},
                        format="json").status_code == 200

    mine = browser.post("/api/v1/events", {"name": "product_viewed", "external_id": "cust-1",
                                           "anonymous_id": "b-1"}, format="json")
    theirs = browser.post("/api/v1/events", {"name": "product_viewed", "external_id": "someone-else",
                                             "anonymous_id": "b-1"}, format="json")
    bare = browser.post("/api/v1/events", {"name": "product_viewed", "external_id": "cust-1"}, format="json")

    assert mine.status_code == 201
    assert (theirs.status_code, bare.status_code) == (403, 403)
    assert theirs.json()["errors"][0]["code"] == "not_identified"
    assert list(Event.objects.values_list("subscriber__external_id", flat=True)) == ["cust-1"]


def test_a_browser_cannot_send_batches(browser_key):
    _, raw = browser_key
    response = browser_client(raw).post("/api/v1/events/batch", {"events": [{"name": "x", "anonymous_id": "b"}]},
                                        format="json")
    assert response.status_code == 403
    assert not Event.objects.exists()


# --- Batches -------------------------------------------------------------------

def test_a_batch_stores_every_event_and_reports_each_in_order(api):
    events = [view(n) for n in range(3)] + [{"name": "signed_up", "anonymous_id": "browser-7"}]
    response = api.post("/api/v1/events/batch", {"events": events}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["duplicates"], body["errors"]) == (4, 0, 0)
    assert [(r["index"], r["status"], r["event_id"]) for r in body["results"]] == [
        (0, "created", "e-0"), (1, "created", "e-1"), (2, "created", "e-2"), (3, "created", None)]
    assert Event.objects.count() == 4


def test_the_same_batch_sent_twice_is_all_duplicates_the_second_time(api):
    events = [view(n) for n in range(5)]
    first = api.post("/api/v1/events/batch", {"events": events}, format="json").json()
    second = api.post("/api/v1/events/batch", {"events": events}, format="json").json()

    assert first["created"] == 5
    assert (second["created"], second["duplicates"]) == (0, 5)
    assert {r["status"] for r in second["results"]} == {"duplicate"}
    assert Event.objects.count() == 5


def test_a_repeated_event_id_inside_a_batch_is_stored_once(api):
    response = api.post("/api/v1/events/batch", {"events": [view(1), view(2), view(1)]}, format="json")

    assert [r["status"] for r in response.json()["results"]] == ["created", "created", "duplicate"]
    assert Event.objects.filter(event_id="e-1").count() == 1


def test_a_half_valid_batch_stores_the_valid_events_and_says_which_failed(api):
    future = (timezone.now() + timedelta(days=1)).isoformat()
    events = [view(0), {"name": "Bad Name", "external_id": "cust-1", "event_id": "bad-1"}, view(2),
              view(3, occurred_at=future), "not an object", {"name": "nobody_did_it"}]

    response = api.post("/api/v1/events/batch", {"events": events}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["errors"]) == (2, 4)
    results = body["results"]
    assert [r["status"] for r in results] == ["created", "error", "created", "error", "error", "error"]
    assert results[1]["event_id"] == "bad-1"
    assert results[1]["errors"][0]["field"] == "name"
    assert "lowercase letters" in results[1]["errors"][0]["message"]
    assert results[3]["errors"][0]["code"] == "in_future"
    assert results[4]["errors"][0]["field"] is None
    assert results[5]["errors"][0]["field"] == "external_id"
    assert set(Event.objects.values_list("event_id", flat=True)) == {"e-0", "e-2"}


def test_a_batch_over_the_limit_is_refused_whole(api, settings):
    settings.API_MAX_BATCH_EVENTS = 1000
    response = api.post("/api/v1/events/batch", {"events": [view(n) for n in range(1001)]}, format="json")

    assert response.status_code == 413
    assert response.json()["errors"][0]["field"] == "events"
    assert "1000" in response.json()["errors"][0]["message"]
    assert not Event.objects.exists()


def test_a_batch_of_exactly_the_limit_is_stored_in_a_few_queries(api, settings, django_assert_max_num_queries):
    settings.API_MAX_BATCH_EVENTS = 1000
    for n in range(10):
        make_subscriber(f"cust-{n}")
    events = [{**view(n), "external_id": f"cust-{n % 10}"} for n in range(1000)]

    # SQLite splits the INSERT by its bound-variable limit; PostgreSQL sends one.
    with django_assert_max_num_queries(12 if connection.vendor == "postgresql" else 20):
        response = api.post("/api/v1/events/batch", {"events": events}, format="json")

    assert response.json()["created"] == 1000
    assert Event.objects.count() == 1000


@pytest.mark.parametrize("body", [{"events": []}, {"events": "lots"}, {"items": [{"name": "x"}]}, [{"name": "x"}]])
def test_a_batch_that_is_not_a_list_of_events_is_refused(api, body):
    response = api.post("/api/v1/events/batch", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "events"
    assert "1 to 1000" in response.json()["errors"][0]["message"]


def test_an_event_stored_by_a_batch_is_a_duplicate_when_tracked_alone(api):
    api.post("/api/v1/events/batch", {"events": [view(1)]}, format="json")
    response = api.post("/api/v1/events", view(1), format="json")
    assert response.json()["status"] == "duplicate"
    services_count = Event.objects.filter(event_id="e-1").count()
    assert services_count == 1


def test_a_batch_event_for_a_new_customer_creates_the_profile(api):
    api.post("/api/v1/events/batch", {"events": [view(1, external_id="brand-new")]}, format="json")
    assert Subscriber.objects.get(external_id="brand-new").events.count() == 1


def test_a_batch_with_a_browser_id_and_a_customer_id_merges_the_browser(api):
    anonymous, _ = services.resolve_subscriber(anonymous_id="b-1")
    services.record_event(subscriber=anonymous, name="product_viewed", event_id="before-login")

    api.post("/api/v1/events/batch", {"events": [view(1, anonymous_id="b-1")]}, format="json")

    assert set(Event.objects.values_list("subscriber__external_id", flat=True)) == {"cust-1"}
    assert Subscriber.objects.count() == 1
