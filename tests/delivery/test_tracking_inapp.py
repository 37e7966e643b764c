"""In-app messages: stored as the message, fetched by the storefront SDK, marked displayed when shown."""
import pytest

from delivery import outbox
from delivery.channels import reset_backends
from delivery.models import Message, MessageStatus
from subscribers import services
from tests.factories import (  # noqa: F401 - fixture
    SHOP_ORIGIN,
    browser_client,
    isolated_cache,
    make_publishable_key,
    make_subscriber,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

URL = "/api/v1/inapp"


@pytest.fixture(autouse=True)
def real_inapp_backend(settings):
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS, "inapp": "delivery.channels.inapp.InAppBackend"}
    reset_backends()
    yield
    reset_backends()


def send_inapp(shopper, source_id="welcome", **content):
    content = {"title": "أهلاً", "body": "خصم ١٠٪ اليوم", "button_label": "تسوق", "placement": "banner",
               "button_url": "https://shop.example/sale", **content}
    message, _ = outbox.queue_message(subscriber=shopper, channel="inapp", source_type="campaign",
                                      source_id=source_id, content=content)
    outbox.deliver([message.pk])
    message.refresh_from_db()
    return message


def test_an_inapp_message_is_delivered_at_once():
    message = send_inapp(make_subscriber())

    assert message.status == MessageStatus.DELIVERED and message.provider == "inapp"
    assert message.delivered_at is not None


def test_the_sdk_fetches_pending_messages_for_a_browser_and_they_stop_coming_once_seen():
    key, raw = make_publishable_key(require_identity_verification=False)
    visitor = services.upsert_subscriber(anonymous_id="anon-inapp-1")[0]
    message = send_inapp(visitor)
    browser = browser_client(raw)

    listed = browser.get(URL, {"anonymous_id": "anon-inapp-1"})

    assert listed.status_code == 200
    [item] = listed.json()["messages"]
    assert (item["code"], item["title"], item["body"]) == (message.code, "أهلاً", "خصم ١٠٪ اليوم")
    assert item["button_url"] == outbox.click_url(message, 0)

    seen = browser.post(f"{URL}/{message.code}/seen", {"anonymous_id": "anon-inapp-1"}, format="json")

    assert seen.status_code == 204
    assert Message.objects.get(pk=message.pk).displayed_at is not None
    assert browser.get(URL, {"anonymous_id": "anon-inapp-1"}).json() == {"messages": []}


def test_a_signed_in_shopper_needs_a_valid_user_hash():
    key, raw = make_publishable_key(require_identity_verification=True)
    shopper = make_subscriber(external_id="cust-inapp")
    send_inapp(shopper)
    browser = browser_client(raw)

    refused = browser.get(URL, {"external_id": "cust-inapp", "user_hash": "0" * 64})
    allowed = browser.get(URL, {"external_id": "cust-inapp", "user_hash": key.identity_hash("cust-inapp")})

    assert refused.status_code == 403
    assert allowed.status_code == 200 and len(allowed.json()["messages"]) == 1


def test_a_browser_cannot_mark_someone_elses_message_seen():
    _, raw = make_publishable_key(require_identity_verification=False)
    services.upsert_subscriber(anonymous_id="anon-a")
    other = send_inapp(make_subscriber())

    response = browser_client(raw).post(f"{URL}/{other.code}/seen", {"anonymous_id": "anon-a"}, format="json")

    assert response.status_code == 404
    assert Message.objects.get(pk=other.pk).displayed_at is None


def test_asking_without_any_identity_is_a_field_error():
    _, raw = make_publishable_key(require_identity_verification=False)

    response = browser_client(raw).get(URL)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "anonymous_id"


def test_an_unknown_browser_simply_has_no_messages():
    _, raw = make_publishable_key(require_identity_verification=False)

    response = browser_client(raw).get(URL, {"anonymous_id": "never-seen"})

    assert response.status_code == 200 and response.json() == {"messages": []}


def test_each_message_says_its_language_so_the_sdk_can_lay_arabic_out_right_to_left():
    _, raw = make_publishable_key(require_identity_verification=False)
    visitor = services.upsert_subscriber(anonymous_id="anon-ar", locale="ar")[0]
    send_inapp(visitor)

    [item] = browser_client(raw).get(URL, {"anonymous_id": "anon-ar"}).json()["messages"]

    assert item["locale"] == "ar"


def test_a_same_origin_page_without_an_origin_header_is_known_by_its_referer():
    _, raw = make_publishable_key(require_identity_verification=False)
    send_inapp(services.upsert_subscriber(anonymous_id="anon-same-origin")[0])
    allowed = browser_client(raw, origin=None)
    allowed.credentials(HTTP_X_TANBIH_KEY=raw, HTTP_REFERER=SHOP_ORIGIN + "/products/42")
    elsewhere = browser_client(raw, origin=None)
    elsewhere.credentials(HTTP_X_TANBIH_KEY=raw, HTTP_REFERER="https://evil.example/page")

    assert len(allowed.get(URL, {"anonymous_id": "anon-same-origin"}).json()["messages"]) == 1
    assert elsewhere.get(URL, {"anonymous_id": "anon-same-origin"}).status_code == 403
