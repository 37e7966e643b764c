"""Web push through the whole outbox (send_message -> deliver -> WebPushBackend) to the real push service."""
import json

import pytest

from delivery import outbox
from delivery.channels import reset_backends
from delivery.models import Message
from subscribers import services
from subscribers.management.commands.generate_vapid_keys import generate_vapid_keypair
from subscribers.models import PushSubscription
from tests.factories import make_subscriber
from tests.peers import web_push_service  # noqa: F401 - fixture: the push service emulator

pytestmark = pytest.mark.django_db

CONTENT = {
    "title": "تم شحن طلبك",
    "body": "طلبك رقم 1042 في الطريق إليك",
    "url": "https://shop.example/orders/1042",
    "actions": [{"action": "track", "title": "تتبع الشحنة", "url": "https://shop.example/track/1042"}],
    "ttl": 3600,
}


@pytest.fixture
def browser(settings, web_push_service):  # noqa: F811 - fixture
    """A shopper's browser subscribed on the push service with our VAPID key, registered through the service."""
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = generate_vapid_keypair()
    settings.PUSH_ALLOWED_ENDPOINTS = [web_push_service.origin]
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS, "push": "delivery.channels.webpush.WebPushBackend"}
    reset_backends()
    subscribed = web_push_service.subscribe(settings.VAPID_PUBLIC_KEY)
    subscription, _ = services.register_push_subscription(
        subscriber=make_subscriber(locale="ar"), endpoint=subscribed["endpoint"], **subscribed["keys"])
    yield subscription, subscribed["clientHash"]
    reset_backends()


def send(subscription, django_capture_on_commit_callbacks, source_id="order-1042"):
    with django_capture_on_commit_callbacks(execute=True):
        message = outbox.send_message(subscriber=subscription.subscriber, channel="push", source_type="api",
                                      source_id=source_id, content=CONTENT, transactional=True,
                                      push_subscription=subscription)
    message.refresh_from_db()
    return message


def test_a_transactional_push_reaches_the_browser_and_is_marked_sent(browser, web_push_service,  # noqa: F811
                                                                      django_capture_on_commit_callbacks):
    subscription, client_hash = browser

    message = send(subscription, django_capture_on_commit_callbacks)

    assert message.status == "sent"
    assert message.provider == "webpush"
    (received,) = web_push_service.messages(client_hash)
    payload = json.loads(received)
    assert payload["code"] == message.code
    assert payload["title"] == "تم شحن طلبك"
    assert payload["actions"] == CONTENT["actions"]


def test_a_push_to_an_expired_subscription_fails_and_expires_it(browser, web_push_service,  # noqa: F811
                                                                 django_capture_on_commit_callbacks):
    subscription, client_hash = browser
    web_push_service.expire(client_hash)

    message = send(subscription, django_capture_on_commit_callbacks)

    assert message.status == "failed"
    assert PushSubscription.objects.get(pk=subscription.pk).status == "expired"
    assert Message.objects.filter(push_subscription=subscription, status="sent").count() == 0


def test_a_push_service_asking_to_wait_gets_the_message_again_after_its_retry_after(
        settings, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from tests.delivery.test_webpush import LocalPushService, browser_keys

    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = generate_vapid_keypair()
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS, "push": "delivery.channels.webpush.WebPushBackend"}
    reset_backends()
    with LocalPushService(status=429, headers={"Retry-After": "600"}) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        subscription, _ = services.register_push_subscription(
            subscriber=make_subscriber(), endpoint=f"{service.origin}/push/sub-1", **browser_keys())
        before = timezone.now()

        message = send(subscription, django_capture_on_commit_callbacks)

        assert len(service.received) == 1
        assert message.status == "queued"
        assert message.attempts == 1
        assert before + timedelta(seconds=590) <= message.send_at <= timezone.now() + timedelta(seconds=610)

        # Delivering again before then sends nothing.
        outbox.deliver([message.pk])
        assert len(service.received) == 1
    reset_backends()
