"""Click tracking through signed /c/ links, and service-worker reports tied to the message they are about."""
import pytest

from delivery import outbox
from delivery.channels import reset_backends
from delivery.models import MessageStatus
from subscribers import services
from tests.factories import browser_client, isolated_cache, make_publishable_key, make_subscriber, push_keys  # noqa: F401

pytestmark = pytest.mark.django_db

CONTENT = {
    "title": "Your cart misses you", "body": "Come back", "url": "https://shop.example/cart",
    "actions": [{"action": "buy", "title": "Buy now", "url": "https://shop.example/checkout"},
                {"action": "later", "title": "Later", "url": "https://shop.example/wishlist"}],
}


@pytest.fixture(autouse=True)
def sandbox(settings):
    settings.DELIVERY_BACKENDS = {channel: "delivery.channels.sandbox.SandboxBackend"
                                  for channel in ("push", "sms", "whatsapp", "email", "inapp")}
    settings.QUIET_HOURS = {channel: "off" for channel in ("push", "sms", "whatsapp", "email", "inapp")}
    reset_backends()
    yield
    reset_backends()


@pytest.fixture
def push_message():
    shopper = make_subscriber()
    subscription, _ = services.register_push_subscription(
        subscriber=shopper, endpoint="https://fcm.googleapis.com/fcm/send/track-1", **push_keys())
    message, _ = outbox.queue_message(subscriber=shopper, channel="push", source_type="campaign", source_id="1",
                                      content=CONTENT, push_subscription=subscription)
    outbox.deliver([message.pk])
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    return message


def test_a_signed_click_link_redirects_to_the_stored_url_and_records_the_click(client, push_message):
    response = client.get(outbox.click_path(push_message.code, 0))

    assert response.status_code == 302
    assert response["Location"] == "https://shop.example/cart"
    push_message.refresh_from_db()
    assert push_message.clicked_at is not None
    assert push_message.status == MessageStatus.DELIVERED


def test_an_action_button_link_records_which_action_was_clicked(client, push_message):
    response = client.get(outbox.click_path(push_message.code, 1))

    assert response["Location"] == "https://shop.example/checkout"
    event = push_message.history.filter(kind="clicked").get()
    assert event.detail == {"action": "buy"}


def test_the_tracking_url_is_absolute_on_the_site(settings, push_message):
    settings.SITE_URL = "https://tanbih.example"
    assert outbox.click_url(push_message, 2).startswith(f"https://tanbih.example/c/{push_message.code}/2.")


def test_a_tampered_link_is_refused_and_never_redirects_elsewhere(client, push_message):
    good = outbox.click_path(push_message.code, 0)
    signature = good.rsplit(".", 1)[1]

    assert client.get(f"/c/{push_message.code}/1.{signature}").status_code == 404
    assert client.get(f"/c/other-code/0.{signature}").status_code == 404
    assert client.get(f"/c/{push_message.code}/0.AAAAAAAAAAAA").status_code == 404
    assert client.get(f"/c/{push_message.code}/0.{signature}?next=https://evil.example").get("Location") == \
        "https://shop.example/cart"
    push_message.refresh_from_db()
    assert push_message.history.filter(kind="clicked").count() == 1


def test_a_link_number_beyond_the_message_links_is_refused(client, push_message):
    assert client.get(outbox.click_path(push_message.code, 7)).status_code == 404


def test_a_stored_link_that_is_not_http_is_never_followed(client):
    message, _ = outbox.queue_message(subscriber=make_subscriber(), channel="inapp", source_type="api",
                                      source_id="js", content={"title": "x", "button_url": "javascript:alert(1)"})

    assert client.get(outbox.click_path(message.code, 0)).status_code == 404


def test_a_head_request_from_a_link_preview_is_not_counted_as_a_click(client, push_message):
    response = client.head(outbox.click_path(push_message.code, 0))

    assert response.status_code == 302
    push_message.refresh_from_db()
    assert push_message.clicked_at is None


@pytest.mark.usefixtures("isolated_cache")
def test_service_worker_reports_mark_the_message_displayed_and_clicked(push_message):
    worker = browser_client(make_publishable_key()[1])

    shown = worker.post("/api/v1/notification-reports", {"code": push_message.code, "kind": "displayed"},
                        format="json")
    clicked = worker.post("/api/v1/notification-reports",
                          {"code": push_message.code, "kind": "clicked", "action": "buy"}, format="json")

    assert (shown.status_code, clicked.status_code) == (201, 201)
    push_message.refresh_from_db()
    assert push_message.displayed_at is not None and push_message.clicked_at is not None
    assert push_message.status == MessageStatus.DELIVERED
    assert push_message.history.get(kind="clicked").detail == {"action": "buy"}


@pytest.mark.usefixtures("isolated_cache")
def test_a_report_for_an_unknown_code_is_stored_and_changes_no_message(push_message):
    worker = browser_client(make_publishable_key()[1])

    response = worker.post("/api/v1/notification-reports", {"code": "not-ours", "kind": "clicked"}, format="json")

    assert response.status_code == 201
    push_message.refresh_from_db()
    assert push_message.clicked_at is None
