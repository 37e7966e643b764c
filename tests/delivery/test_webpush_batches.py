"""send_many: many pushes in flight from one thread, on keep-alive connections, against local push services.

The services here are real sockets on 127.0.0.1 (tests/delivery/test_webpush.py's
LocalPushService and RawPushService); the answers are what push services write.
"""
import json
import threading

import certifi
import pytest

from delivery.channels import reset_backends
from delivery.channels.base import DeliveryError, SendResult
from delivery.channels.webpush import WebPushBackend
from subscribers.management.commands.generate_vapid_keys import generate_vapid_keypair
from tests.delivery.test_webpush import (ARABIC_CONTENT, LocalPushService, RawPushService, emulator_message,
                                         make_message, tls_service_context)
from tests.peers import web_push_service  # noqa: F401 - fixture: the push service emulator

pytestmark = pytest.mark.django_db

CREATED = b"HTTP/1.1 201 Created\r\nLocation: /m/%d\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture(scope="module")
def vapid_keys():
    return generate_vapid_keypair()


@pytest.fixture
def make_backend(settings, vapid_keys):
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = vapid_keys
    settings.VAPID_SUBJECT = "mailto:ops@shop.example"
    reset_backends()

    def make(in_flight=32, timeout=10):
        settings.PUSH_SENDS_IN_FLIGHT = in_flight
        settings.PUSH_SEND_TIMEOUT_SECONDS = timeout
        return WebPushBackend()

    yield make
    reset_backends()


def test_in_a_batch_each_subscriber_decrypts_their_own_message_whatever_came_before(  # noqa: F811
        make_backend, settings, web_push_service, vapid_keys):
    settings.PUSH_ALLOWED_ENDPOINTS = [web_push_service.origin]
    backend = make_backend()
    english = {**ARABIC_CONTENT, "title": "Your cart is waiting", "ttl": 60, "urgency": "low"}
    variants = [(ARABIC_CONTENT, "ar"), (ARABIC_CONTENT, "ar"), (english, "en"), (english, "en"),
                (ARABIC_CONTENT, "en-GB"), (ARABIC_CONTENT, "ar")]
    pairs = [emulator_message(web_push_service, vapid_keys, content=dict(content), locale=locale)
             for content, locale in variants]

    results = backend.send_many([message for message, _ in pairs])

    assert all(isinstance(result, SendResult) for result in results)
    received = [json.loads(web_push_service.messages(client_hash)[0]) for _, client_hash in pairs]
    assert [payload["code"] for payload in received] == [message.code for message, _ in pairs]
    assert [payload["title"] for payload in received] == [content["title"] for content, _ in variants]
    assert [(payload["lang"], payload["dir"]) for payload in received] == [
        ("ar", "rtl"), ("ar", "rtl"), ("en", "ltr"), ("en", "ltr"), ("en-GB", "ltr"), ("ar", "rtl")]


def test_a_batch_larger_than_the_pushes_in_flight_goes_out_whole_on_that_many_connections(make_backend, settings):
    connections = set()
    lock = threading.Lock()

    def answer(connection, request):
        with lock:
            connections.add(connection)
        return CREATED % request

    with RawPushService(answer) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        backend = make_backend(in_flight=4)
        messages = [make_message(f"{service.origin}/push/sub-{i}") for i in range(25)]

        results = backend.send_many(messages)
        again = backend.send_many(messages[:8])

    assert all(isinstance(result, SendResult) and result.status == "sent" for result in results + again)
    assert service.requests == 33
    assert 1 <= len(connections) <= 4  # the second batch reused the first one's connections


def test_in_a_batch_a_service_that_does_not_answer_in_time_fails_only_its_own_pushes(make_backend, settings):
    with LocalPushService() as fast, LocalPushService(delay=2) as slow:
        settings.PUSH_ALLOWED_ENDPOINTS = [fast.origin, slow.origin]
        backend = make_backend(timeout=0.5)
        endpoints = [fast.origin, slow.origin, fast.origin, fast.origin, slow.origin]
        messages = [make_message(f"{origin}/push/sub-{i}") for i, origin in enumerate(endpoints)]

        results = backend.send_many(messages)

    assert [getattr(result, "status", None) or result.code for result in results] == \
        ["sent", "timeout", "sent", "sent", "timeout"]
    assert all(not results[i].permanent for i in (1, 4))
    assert sorted(request["path"] for request in fast.received) == ["/push/sub-0", "/push/sub-2", "/push/sub-3"]


def test_in_a_batch_each_answer_lands_on_its_own_message(make_backend, settings):
    def answer(connection, request):
        return CREATED % request

    with LocalPushService(status=410) as gone, LocalPushService(status=429, headers={"Retry-After": "30"}) as busy, \
            RawPushService(answer) as accepting:
        settings.PUSH_ALLOWED_ENDPOINTS = [gone.origin, busy.origin, accepting.origin]
        backend = make_backend()
        origins = [accepting.origin, gone.origin, busy.origin, accepting.origin]
        messages = [make_message(f"{origin}/push/sub-{i}") for i, origin in enumerate(origins)]

        results = backend.send_many(messages)

    assert isinstance(results[0], SendResult) and isinstance(results[3], SendResult)
    assert (results[1].code, results[1].permanent) == ("410", True)
    assert (results[2].code, results[2].permanent, results[2].retry_after) == ("429", False, 30)


def test_in_a_batch_keep_alive_connections_the_service_dropped_are_replaced(make_backend, settings):
    def answer(connection, request):
        # The first connections serve one push each, then the service drops them while idle.
        return CREATED % request if request == 1 or connection > 2 else None

    with RawPushService(answer) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        backend = make_backend(in_flight=2)
        first = backend.send_many([make_message(f"{service.origin}/push/a-{i}") for i in range(2)])
        second = backend.send_many([make_message(f"{service.origin}/push/b-{i}") for i in range(4)])

    assert all(isinstance(result, SendResult) for result in first + second)


def test_a_chunked_answer_split_across_packets_is_read_whole(make_backend, settings):
    parts = [b"HTTP/1.1 400 Bad Request\r\nTransfer-", b"Encoding: chunked\r\n\r\n7\r\nInv",
             b"alid\r\n9\r\n TTL hdr.\r\n0\r", b"\n\r\n"]

    with RawPushService(lambda connection, request: parts) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        backend = make_backend()
        results = backend.send_many([make_message(f"{service.origin}/push/sub-{i}") for i in range(2)])

    assert [result.code for result in results] == ["400", "400"]
    assert all("Invalid TTL hdr." in str(result) for result in results)


def test_a_batch_over_tls_reaches_a_service_whose_certificate_is_trusted(make_backend, settings, tmp_path,
                                                                         monkeypatch):
    context = tls_service_context(tmp_path)
    monkeypatch.setattr(certifi, "where", lambda: str(tmp_path / "cert.pem"))  # the trust store: this service only
    connections = set()

    def answer(connection, request):
        connections.add(connection)
        return CREATED % request

    service = RawPushService(answer)
    service.listener = context.wrap_socket(service.listener, server_side=True)
    with service:
        origin = service.origin.replace("http://", "https://")
        settings.PUSH_ALLOWED_ENDPOINTS = [origin]
        backend = make_backend(in_flight=3)
        messages = [make_message(f"{origin}/push/sub-{i}") for i in range(10)]

        results = backend.send_many(messages)
        single = backend.send(make_message(f"{origin}/push/single"))

    assert all(isinstance(result, SendResult) for result in results)
    assert single.status == "sent"
    assert sorted(head.split(b" ")[1].decode() for head in service.heads) == \
        sorted([f"/push/sub-{i}" for i in range(10)] + ["/push/single"])
    assert 1 <= len(connections) <= 3  # keep-alive TLS connections, reused


def test_a_batch_with_an_unusable_subscription_still_sends_the_others(make_backend, settings):
    def answer(connection, request):
        return CREATED % request

    with RawPushService(answer) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        backend = make_backend()
        broken = make_message(f"{service.origin}/push/broken", keys={"p256dh": "not-a-key", "auth": "abc"})
        messages = [make_message(f"{service.origin}/push/sub-1"), broken, make_message(f"{service.origin}/push/sub-2")]

        results = backend.send_many(messages)

    assert isinstance(results[0], SendResult) and isinstance(results[2], SendResult)
    assert isinstance(results[1], DeliveryError)
    assert (results[1].code, results[1].permanent) == ("invalid_keys", True)
    assert service.requests == 2
