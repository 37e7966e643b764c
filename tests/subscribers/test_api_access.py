"""Keys, origins, CORS, rate limits and the error format of the storefront API."""
import os
import uuid

import pytest
from django.db import IntegrityError
from rest_framework.test import APIClient

from subscribers.api.errors import handle_exception

from subscribers.models import ApiKey, Event, Subscriber
from tests.factories import (  # noqa: F401 - isolated_cache is a fixture
    SHOP_ORIGIN,
    browser_client,
    isolated_cache,
    make_publishable_key,
    make_secret_key,
    secret_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

EVENT = {"name": "product_viewed", "anonymous_id": "browser-1"}


def only_error(response):
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


# --- Keys ------------------------------------------------------------------------

def test_a_request_without_a_key_is_401_saying_how_to_send_one():
    response = APIClient().post("/api/v1/events", EVENT, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer tnb_sk_" in only_error(response)["message"]
    assert not Event.objects.exists()


def test_an_unknown_key_is_401():
    response = secret_client("tnb_sk_not-a-real-key").post("/api/v1/events", EVENT, format="json")
    assert response.status_code == 401
    assert only_error(response)["code"] == "invalid_key"


def test_a_revoked_key_is_401():
    key, raw = make_secret_key()
    ApiKey.objects.filter(pk=key.pk).update(is_active=False)
    assert secret_client(raw).post("/api/v1/events", EVENT, format="json").status_code == 401


def test_a_publishable_key_works_only_from_its_origins():
    _, raw = make_publishable_key(origins=[SHOP_ORIGIN])

    allowed = browser_client(raw).post("/api/v1/events", EVENT, format="json")
    elsewhere = browser_client(raw, origin="https://evil.example").post("/api/v1/events", EVENT, format="json")
    no_origin = browser_client(raw, origin=None).post("/api/v1/events", EVENT, format="json")

    assert allowed.status_code == 201
    assert (elsewhere.status_code, no_origin.status_code) == (403, 403)
    assert "https://evil.example" in only_error(elsewhere)["message"]
    assert Event.objects.count() == 1


def test_a_publishable_key_is_refused_where_a_secret_key_is_needed():
    _, raw = make_publishable_key()
    browser = browser_client(raw)
    for method, path in [("post", "/api/v1/subscribers"), ("post", "/api/v1/events/batch"),
                         ("get", "/api/v1/subscribers/x"), ("get", "/api/v1/subscribers/x/export"),
                         ("post", "/api/v1/subscribers/x/consents"), ("delete", "/api/v1/subscribers/x")]:
        response = getattr(browser, method)(path, {}, format="json")
        assert response.status_code == 403, path
        assert only_error(response)["code"] == "permission_denied"


def test_a_secret_key_may_also_call_the_browser_endpoints():
    api = secret_client()
    assert api.post("/api/v1/events", EVENT, format="json").status_code == 201
    assert api.post("/api/v1/identify", {"anonymous_id": "browser-1", "external_id": "c"},
                    format="json").status_code == 200


# --- CORS ------------------------------------------------------------------------

def preflight(origin, path="/api/v1/events"):
    return APIClient().options(path, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-tanbih-key")


def test_a_preflight_from_an_origin_of_a_publishable_key_is_allowed():
    make_publishable_key(origins=["https://shop.example", "https://m.shop.example/"])

    for origin in ("https://shop.example", "https://m.shop.example"):
        response = preflight(origin)
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == origin
        assert "x-tanbih-key" in response["Access-Control-Allow-Headers"]
        assert "POST" in response["Access-Control-Allow-Methods"]


def test_a_preflight_from_any_other_origin_gets_no_cors_headers():
    make_publishable_key(origins=["https://shop.example"])
    inactive, _ = make_publishable_key(origins=["https://old-shop.example"])
    ApiKey.objects.filter(pk=inactive.pk).update(is_active=False)

    for origin in ("https://evil.example", "https://old-shop.example", "null"):
        assert "Access-Control-Allow-Origin" not in preflight(origin)


def test_answers_carry_cors_headers_for_the_browser_to_read_them():
    _, raw = make_publishable_key()
    response = browser_client(raw).post("/api/v1/events", EVENT, format="json")
    assert response["Access-Control-Allow-Origin"] == SHOP_ORIGIN
    error = browser_client(raw).post("/api/v1/events", {"name": "Bad"}, format="json")
    assert error.status_code == 400 and error["Access-Control-Allow-Origin"] == SHOP_ORIGIN


def test_pages_outside_the_api_get_no_cors_headers_from_a_publishable_key():
    make_publishable_key(origins=[SHOP_ORIGIN])
    response = APIClient().get("/admin/login/", HTTP_ORIGIN=SHOP_ORIGIN)
    assert "Access-Control-Allow-Origin" not in response


# --- Rate limits -------------------------------------------------------------------

def test_publishable_keys_are_limited_per_key_and_client_address(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"publishable": "3/min", "secret": "1000/min"}}
    _, raw = make_publishable_key()
    browser = browser_client(raw)

    statuses = [browser.post("/api/v1/events", EVENT, format="json", REMOTE_ADDR="203.0.113.7").status_code
                for _ in range(4)]
    other_shopper = browser.post("/api/v1/events", EVENT, format="json", REMOTE_ADDR="203.0.113.8")
    limited = browser.post("/api/v1/events", EVENT, format="json", REMOTE_ADDR="203.0.113.7")

    assert statuses == [201, 201, 201, 429]
    assert other_shopper.status_code == 201
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert only_error(limited)["code"] == "throttled"
    assert Event.objects.count() == 4


def test_secret_keys_are_limited_per_key(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"publishable": "1000/min", "secret": "2/min"}}
    _, raw = make_secret_key()
    api = secret_client(raw)
    statuses = [api.post("/api/v1/events", EVENT, format="json").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert secret_client().post("/api/v1/events", EVENT, format="json").status_code == 201


def test_rate_limits_count_in_redis_across_processes(settings):
    """The production path: counters live in Redis, shared by every web process."""
    settings.CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        "KEY_PREFIX": f"tanbih-test-{uuid.uuid4().hex}",
    }}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"publishable": "2/min", "secret": "1000/min"}}
    _, raw = make_publishable_key()
    browser = browser_client(raw)

    statuses = [browser.post("/api/v1/events", EVENT, format="json").status_code for _ in range(3)]

    assert statuses == [201, 201, 429]
    assert int(browser.post("/api/v1/events", EVENT, format="json")["Retry-After"]) <= 60


# --- Bodies and errors ---------------------------------------------------------------

def test_a_body_that_is_not_json_is_415():
    response = secret_client().post("/api/v1/events", "name=product_viewed", content_type="text/plain")
    assert response.status_code == 415
    assert "application/json" in only_error(response)["message"]


def test_malformed_json_is_400():
    response = secret_client().post("/api/v1/events", '{"name": "product_viewed",', content_type="application/json")
    assert response.status_code == 400
    assert only_error(response)["code"] == "parse_error"


def test_a_body_over_the_size_limit_is_refused_whole_with_413(settings):
    settings.API_MAX_BODY_BYTES = 10_000
    events = [{"name": "product_viewed", "anonymous_id": f"b-{n}", "properties": {"pad": "x" * 200}}
              for n in range(100)]
    response = secret_client().post("/api/v1/events/batch", {"events": events}, format="json")
    assert response.status_code == 413
    assert only_error(response)["code"] == "payload_too_large"
    assert not Event.objects.exists()


def test_a_wrong_method_is_a_json_405():
    response = secret_client().get("/api/v1/events")
    assert response.status_code == 405
    assert only_error(response)["code"] == "method_not_allowed"


def test_every_error_names_field_code_and_message():
    response = secret_client().post("/api/v1/subscribers", {"external_id": "", "timezone": "Nowhere"},
                                    format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {"external_id", "timezone"}
    assert all(set(e) == {"field", "code", "message"} for e in errors)
    assert not Subscriber.objects.exists()


def test_an_unknown_api_path_is_a_json_404():
    response = secret_client().get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert only_error(response)["code"] == "not_found"
    assert "/api/docs/" in only_error(response)["message"]


def test_a_write_that_loses_a_race_for_a_unique_row_answers_409():
    # Two requests creating the same row: the database refuses the second one.
    response = handle_exception(IntegrityError("duplicate key value violates unique constraint"), {})
    assert response.status_code == 409
    assert response.data == {"errors": [{
        "field": None, "code": "conflict",
        "message": "Another request changed the same data at the same time; retry the request."}]}


@pytest.mark.django_db
def test_api_errors_stay_in_english_when_the_caller_asks_for_arabic():
    client = secret_client()
    response = client.post("/api/v1/subscribers", {"external_id": "x", "timezone": "Mars/Olympus"}, format="json",
                           HTTP_ACCEPT_LANGUAGE="ar")
    assert response.status_code == 400
    assert "IANA timezone" in response.json()["errors"][0]["message"]
