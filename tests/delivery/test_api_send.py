"""The store's backend sends one message through the REST API: POST /api/v1/messages, GET /api/v1/messages/<code>."""
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import Message, MessageLane
from delivery.starter_templates import load_starter_templates
from subscribers import services
from subscribers.models import Channel, Order, PushSubscription, Source
from tests.factories import (  # noqa: F401 - isolated_cache is a fixture
    browser_client,
    isolated_cache,
    make_publishable_key,
    make_subscriber,
    push_keys,
    secret_client,
)
from tests.twilio_peer import _twilio_server, twilio_peer  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

URL = "/api/v1/messages"
PHONE = "+966501234567"


@pytest.fixture
def api():
    return secret_client()


@pytest.fixture
def shopper(twilio_peer):
    load_starter_templates()
    subscriber = make_subscriber("cust-1001", first_name="ليلى", phone=PHONE, locale="ar", timezone="Asia/Riyadh")
    services.grant_consent(subscriber=subscriber, channel=Channel.SMS, source=Source.API)
    Order.objects.create(subscriber=subscriber, external_id="A-1001", value="249.00", currency="SAR",
                         placed_at=timezone.now())
    return subscriber


def send(api, capture, **body):
    payload = {"external_id": "cust-1001", "template": "order-shipped", "channel": "sms", "order_id": "A-1001",
               **body}
    payload = {name: value for name, value in payload.items() if value is not None}
    with capture(execute=True):
        return api.post(URL, payload, format="json")


def errors_of(response):
    return {error["field"]: error for error in response.json()["errors"]}


def test_an_order_shipped_sms_reaches_twilio_in_the_customers_language_with_the_order_number(
        api, shopper, twilio_peer, django_capture_on_commit_callbacks):
    response = send(api, django_capture_on_commit_callbacks, idempotency_key="A-1001-shipped")

    assert response.status_code == 202
    [message] = response.json()["messages"]
    assert message["channel"] == "sms" and message["template"] == "order-shipped" and message["locale"] == "ar"
    assert len(twilio_peer.requests) == 1
    assert twilio_peer.last.field("To") == PHONE
    assert twilio_peer.last.field("Body") == "شحنّا طلبك رقم A-1001."
    stored = Message.objects.get(code=message["code"])
    assert stored.status == "sent" and stored.lane == MessageLane.TRANSACTIONAL and stored.is_transactional


def test_a_retry_with_the_same_idempotency_key_returns_the_same_message_and_sends_nothing_again(
        api, shopper, twilio_peer, django_capture_on_commit_callbacks):
    first = send(api, django_capture_on_commit_callbacks, idempotency_key="A-1001-shipped")
    again = send(api, django_capture_on_commit_callbacks, idempotency_key="A-1001-shipped")

    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["messages"][0]["code"] == first.json()["messages"][0]["code"]
    assert again.json()["messages"][0]["status"] == "sent"
    assert len(twilio_peer.requests) == 1
    assert Message.objects.count() == 1


def test_without_an_idempotency_key_every_call_sends(api, shopper, twilio_peer,
                                                     django_capture_on_commit_callbacks):
    send(api, django_capture_on_commit_callbacks)
    send(api, django_capture_on_commit_callbacks)

    assert len(twilio_peer.requests) == 2


def test_reusing_a_key_for_another_template_is_refused_as_a_conflict(api, shopper, twilio_peer,
                                                                      django_capture_on_commit_callbacks):
    send(api, django_capture_on_commit_callbacks, idempotency_key="A-1001")

    response = send(api, django_capture_on_commit_callbacks, idempotency_key="A-1001", template="welcome")

    assert response.status_code == 409
    assert errors_of(response)["idempotency_key"]["code"] == "key_reused"
    assert len(twilio_peer.requests) == 1


def test_a_variable_the_template_needs_but_the_call_lacks_is_a_400_and_nothing_is_queued(
        api, shopper, twilio_peer, django_capture_on_commit_callbacks):
    response = send(api, django_capture_on_commit_callbacks, order_id=None, idempotency_key="no-order")

    assert response.status_code == 400
    error = errors_of(response)["data"]
    assert error["code"] == "missing_variable" and "order" in error["message"]
    assert not Message.objects.exists() and twilio_peer.requests == []


def test_a_retry_after_fixing_a_missing_variable_sends_under_the_same_key(
        api, shopper, twilio_peer, django_capture_on_commit_callbacks):
    send(api, django_capture_on_commit_callbacks, order_id=None, idempotency_key="A-1001-shipped")

    response = send(api, django_capture_on_commit_callbacks, idempotency_key="A-1001-shipped")

    assert response.status_code == 202
    assert len(twilio_peer.requests) == 1


@pytest.mark.parametrize("change, status, field, code", [
    ({"external_id": "nobody"}, 404, "external_id", "not_found"),
    ({"template": "no-such-template"}, 404, "template", "not_found"),
    ({"order_id": "B-9"}, 400, "order_id", "not_found"),
    ({"cart_id": "C-9"}, 400, "cart_id", "not_found"),
    ({"channel": "fax"}, 400, "channel", "invalid_choice"),
    ({"channel": "inapp"}, 400, "channel", "no_content"),
    ({"data": ["not", "an", "object"]}, 400, "data", None),
    ({"send_at": "tomorrow"}, 400, "send_at", "invalid"),
    ({"idempotency_key": "k" * 65}, 400, "idempotency_key", "max_length"),
])
def test_bad_input_is_refused_with_the_field_and_the_reason_and_sends_nothing(
        api, shopper, twilio_peer, django_capture_on_commit_callbacks, change, status, field, code):
    response = send(api, django_capture_on_commit_callbacks, **change)

    assert response.status_code == status
    error = errors_of(response)[field]
    assert error["message"]
    if code:
        assert error["code"] == code
    assert not Message.objects.exists() and twilio_peer.requests == []


def test_a_send_more_than_thirty_days_ahead_is_refused(api, shopper, django_capture_on_commit_callbacks):
    later = (timezone.now() + timedelta(days=31)).isoformat()

    response = send(api, django_capture_on_commit_callbacks, send_at=later)

    assert response.status_code == 400 and errors_of(response)["send_at"]["code"] == "too_far"


def test_a_send_at_in_the_future_is_queued_until_then(api, shopper, twilio_peer, django_capture_on_commit_callbacks):
    later = timezone.now() + timedelta(hours=3)

    response = send(api, django_capture_on_commit_callbacks, send_at=later.isoformat())

    assert response.status_code == 202
    message = Message.objects.get()
    assert message.status == "queued" and abs((message.send_at - later).total_seconds()) < 1
    assert twilio_peer.requests == []


def test_a_push_goes_to_every_browser_the_customer_subscribed(api, shopper, django_capture_on_commit_callbacks,
                                                               settings):
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS, "push": "delivery.channels.sandbox.SandboxBackend"}
    for n in range(2):
        PushSubscription.objects.create(subscriber=shopper, endpoint=f"https://fcm.googleapis.com/fcm/send/b{n}",
                                        **push_keys())

    response = send(api, django_capture_on_commit_callbacks, channel="push", idempotency_key="A-1001-push")

    assert response.status_code == 202
    messages = response.json()["messages"]
    assert len(messages) == 2 and {m["channel"] for m in messages} == {"push"}
    assert Message.objects.filter(push_subscription__isnull=False).count() == 2


def test_a_push_to_a_customer_with_no_subscribed_browser_is_a_conflict(api, shopper,
                                                                        django_capture_on_commit_callbacks):
    response = send(api, django_capture_on_commit_callbacks, channel="push")

    assert response.status_code == 409
    assert errors_of(response)["channel"]["code"] == "not_reachable"


def test_a_marketing_template_sent_through_the_api_is_not_transactional_unless_the_call_says_so(
        api, shopper, django_capture_on_commit_callbacks):
    send(api, django_capture_on_commit_callbacks, template="welcome", order_id=None, idempotency_key="w1")
    send(api, django_capture_on_commit_callbacks, template="welcome", order_id=None, idempotency_key="w2",
         transactional=True)

    capped, exempt = Message.objects.order_by("pk")
    assert capped.is_transactional is False
    assert exempt.is_transactional is True


def test_a_publishable_key_cannot_send_messages(shopper, django_capture_on_commit_callbacks):
    _key, raw = make_publishable_key()

    response = browser_client(raw).post(URL, {"external_id": "cust-1001", "template": "order-shipped",
                                              "channel": "sms"}, format="json")

    assert response.status_code == 403
    assert not Message.objects.exists()


def test_sending_without_a_key_is_unauthenticated(client, shopper):
    response = client.post(URL, {}, content_type="application/json")

    assert response.status_code == 401


def test_the_store_reads_what_became_of_a_message_with_its_events(api, shopper, twilio_peer,
                                                                    django_capture_on_commit_callbacks):
    code = send(api, django_capture_on_commit_callbacks, idempotency_key="A-1001").json()["messages"][0]["code"]

    response = api.get(f"{URL}/{code}")

    assert response.status_code == 200
    detail = response.json()
    assert detail["status"] == "sent" and detail["sent_at"]
    assert detail["content"]["body"] == "شحنّا طلبك رقم A-1001."
    assert [event["kind"] for event in detail["events"]] == ["queued", "sending", "sent"]


def test_reading_an_unknown_message_is_a_404_naming_the_code(api, shopper):
    response = api.get(f"{URL}/nope")

    assert response.status_code == 404 and errors_of(response)["code"]["code"] == "not_found"


def test_the_endpoints_are_in_the_openapi_schema(api):
    schema = api.get("/api/schema/?format=json").json()

    assert "post" in schema["paths"]["/api/v1/messages"]
    assert "get" in schema["paths"]["/api/v1/messages/{code}"]
