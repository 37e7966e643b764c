"""Web push through a real push service (web-push-testing on loopback), and a tiny local one for the
answers the emulator does not give (429, 5xx, redirects, slow services)."""
import base64
import json
import os
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.utils import timezone

from delivery.channels import reset_backends
from delivery.channels.base import DeliveryError, SendResult
from delivery.channels.webpush import WebPushBackend, encrypt_payload
from delivery.models import Message
from delivery.vapid import RENEW_BEFORE, TOKEN_LIFETIME, VapidSigner
from subscribers.management.commands.generate_vapid_keys import generate_vapid_keypair
from subscribers.models import PushSubscription
from tests.factories import make_subscriber
from tests.peers import web_push_service  # noqa: F401 - fixture: the push service emulator

pytestmark = pytest.mark.django_db

ARABIC_CONTENT = {
    "title": "سلتك بانتظارك يا سارة",
    "body": "أكملي طلبك قبل نفاد الكمية — خصم ١٠٪ بالرمز SAVE10",
    "icon": "https://shop.example/static/icon.png",
    "image": "https://shop.example/media/abaya.jpg",
    "badge": "https://shop.example/static/badge.png",
    "url": "https://shop.example/c/abc123",
    "actions": [
        {"action": "checkout", "title": "أكملي الطلب", "url": "https://shop.example/c/abc123?a=checkout"},
        {"action": "later", "title": "لاحقاً", "url": "https://shop.example/c/abc123?a=later"},
    ],
    "tag": "cart-42",
    "ttl": 3600,
    "urgency": "high",
    "topic": "cart-42",
}


@pytest.fixture(scope="module")
def vapid_keys():
    return generate_vapid_keypair()


@pytest.fixture
def backend(settings, vapid_keys, web_push_service):  # noqa: F811 - fixture
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = vapid_keys
    settings.VAPID_SUBJECT = "mailto:ops@shop.example"
    settings.PUSH_ALLOWED_ENDPOINTS = [web_push_service.origin]
    reset_backends()
    yield WebPushBackend()
    reset_backends()


def browser_keys():
    """Keys as a browser makes them: a real P-256 point and a 16-byte auth secret."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {"p256dh": b64(key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)), "auth": b64(os.urandom(16))}


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_message(endpoint, *, keys=None, content=None, locale="ar"):
    subscriber = make_subscriber()
    # Test data: an endpoint the push service gave us (or a deliberately hostile one), stored as a row.
    subscription = PushSubscription.objects.create(subscriber=subscriber, endpoint=endpoint, **(keys or browser_keys()))
    code = uuid.uuid4().hex[:16]
    return Message.objects.create(
        idempotency_key=f"test:{code}", code=code, subscriber=subscriber, channel="push", locale=locale,
        source_type="test", content=content if content is not None else dict(ARABIC_CONTENT),
        push_subscription=subscription, to=endpoint,
    )


def emulator_message(service, vapid_keys, **kwargs):
    browser = service.subscribe(vapid_keys[0])
    message = make_message(browser["endpoint"], keys=browser["keys"], **kwargs)
    return message, browser["clientHash"]


def jwt_claims(authorization):
    token = authorization.split("t=", 1)[1].split(",", 1)[0]
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class LocalPushService:
    """An HTTP server on 127.0.0.1 that answers every POST as told and records what it received."""

    def __init__(self, status=201, headers=None, delay=0.0):
        self.status, self.headers, self.delay = status, dict(headers or {}), delay
        self.received = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                service.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if service.delay:
                    time.sleep(service.delay)
                self.send_response(service.status)
                for name, value in service.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# --- Through the real push service ---------------------------------------------------

def test_the_push_service_decrypts_the_rendered_notification_with_its_code(backend, web_push_service, vapid_keys):  # noqa: F811
    message, client_hash = emulator_message(web_push_service, vapid_keys)

    result = backend.send(message)

    assert isinstance(result, SendResult) and result.status == "sent"
    (received,) = web_push_service.messages(client_hash)
    payload = json.loads(received)
    assert payload["title"] == "سلتك بانتظارك يا سارة"
    assert payload["body"] == "أكملي طلبك قبل نفاد الكمية — خصم ١٠٪ بالرمز SAVE10"
    assert payload["image"] == "https://shop.example/media/abaya.jpg"
    assert payload["icon"] == "https://shop.example/static/icon.png"
    assert payload["badge"] == "https://shop.example/static/badge.png"
    assert payload["url"] == "https://shop.example/c/abc123"
    assert payload["tag"] == "cart-42"
    assert payload["actions"] == ARABIC_CONTENT["actions"]
    assert payload["code"] == message.code
    assert (payload["lang"], payload["dir"]) == ("ar", "rtl")


def test_a_subscription_expired_on_the_push_service_is_a_permanent_410(backend, web_push_service, vapid_keys):  # noqa: F811
    message, client_hash = emulator_message(web_push_service, vapid_keys)
    web_push_service.expire(client_hash)

    with pytest.raises(DeliveryError) as raised:
        backend.send(message)

    assert raised.value.permanent is True
    assert raised.value.code == "410"


def test_send_many_returns_one_result_per_message_in_order(backend, web_push_service, vapid_keys):  # noqa: F811
    pairs = [emulator_message(web_push_service, vapid_keys) for _ in range(6)]
    web_push_service.expire(pairs[2][1])
    web_push_service.expire(pairs[5][1])

    results = backend.send_many([message for message, _ in pairs])

    assert [type(result) for result in results] == [SendResult, SendResult, DeliveryError,
                                                     SendResult, SendResult, DeliveryError]
    assert all(results[i].code == "410" and results[i].permanent for i in (2, 5))
    for index in (0, 1, 3, 4):
        message, client_hash = pairs[index]
        (received,) = web_push_service.messages(client_hash)
        assert json.loads(received)["code"] == message.code


def test_one_vapid_token_serves_every_message_to_the_same_push_service(backend, web_push_service, vapid_keys):  # noqa: F811
    pairs = [emulator_message(web_push_service, vapid_keys) for _ in range(3)]

    results = backend.send_many([message for message, _ in pairs])

    assert all(isinstance(result, SendResult) for result in results)
    assert backend.signer.signatures == 1


# --- Answers the emulator does not give: a tiny local push service -------------------

def test_429_with_retry_after_is_transient_and_says_when_to_retry(backend, settings):
    with LocalPushService(status=429, headers={"Retry-After": "120"}) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        message = make_message(f"{service.origin}/push/sub-1")

        with pytest.raises(DeliveryError) as raised:
            backend.send(message)

    assert raised.value.permanent is False
    assert raised.value.retry_after == 120
    assert raised.value.code == "429"


def test_a_503_with_a_retry_date_is_transient(backend, settings):
    later = (timezone.now() + timedelta(minutes=5)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    with LocalPushService(status=503, headers={"Retry-After": later}) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]

        with pytest.raises(DeliveryError) as raised:
            backend.send(make_message(f"{service.origin}/push/sub-1"))

    assert raised.value.permanent is False
    assert 200 < raised.value.retry_after <= 300


@pytest.mark.parametrize("status", [400, 413])
def test_a_refused_request_is_permanent(backend, settings, status):
    with LocalPushService(status=status) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]

        with pytest.raises(DeliveryError) as raised:
            backend.send(make_message(f"{service.origin}/push/sub-1"))

    assert raised.value.permanent is True
    assert raised.value.code == str(status)


def test_a_redirecting_endpoint_is_not_followed(backend, settings):
    with LocalPushService() as target, \
            LocalPushService(status=307, headers={"Location": "/elsewhere"}) as redirecting:
        redirecting.headers["Location"] = f"{target.origin}/internal"
        settings.PUSH_ALLOWED_ENDPOINTS = [redirecting.origin, target.origin]

        with pytest.raises(DeliveryError) as raised:
            backend.send(make_message(f"{redirecting.origin}/push/sub-1"))

    assert raised.value.permanent is True
    assert raised.value.code == "307"
    assert len(redirecting.received) == 1
    assert target.received == []


def test_an_endpoint_whose_name_resolves_to_loopback_is_refused_at_connect_time(backend, settings):
    with LocalPushService() as service:
        # Only the literal 127.0.0.1 origin is allowed; "localhost" resolves there but is not listed.
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        port = service.origin.rsplit(":", 1)[1]

        with pytest.raises(DeliveryError) as raised:
            backend.send(make_message(f"http://localhost:{port}/push/sub-1"))

    assert raised.value.permanent is True
    assert raised.value.code == "endpoint_refused"
    assert service.received == []


def test_a_push_service_that_does_not_answer_in_time_is_a_transient_error(settings, vapid_keys):
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = vapid_keys
    settings.PUSH_SEND_TIMEOUT_SECONDS = 0.3
    with LocalPushService(delay=2) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]

        with pytest.raises(DeliveryError) as raised:
            WebPushBackend().send(make_message(f"{service.origin}/push/sub-1"))

    assert raised.value.permanent is False
    assert raised.value.code == "timeout"


def test_the_request_carries_the_content_headers_and_an_encrypted_body(backend, settings, vapid_keys):
    with LocalPushService() as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        backend.send(make_message(f"{service.origin}/push/sub-1?x=1"))

    (request,) = service.received
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert request["path"] == "/push/sub-1?x=1"
    assert headers["ttl"] == "3600"
    assert headers["urgency"] == "high"
    assert headers["topic"] == "cart-42"
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["authorization"].endswith(f", k={vapid_keys[0]}")
    assert jwt_claims(headers["authorization"])["aud"] == service.origin
    assert "سلتك".encode() not in request["body"]


# --- VAPID tokens --------------------------------------------------------------------

def test_vapid_tokens_are_per_push_service_origin(vapid_keys):
    signer = VapidSigner(private_key=vapid_keys[1], subject="mailto:ops@shop.example")

    fcm = signer.authorization("https://fcm.googleapis.com/fcm/send/aaa")
    fcm_again = signer.authorization("https://fcm.googleapis.com/fcm/send/bbb")
    mozilla = signer.authorization("https://updates.push.services.mozilla.com/wpush/v2/ccc")

    assert fcm == fcm_again
    assert jwt_claims(fcm)["aud"] == "https://fcm.googleapis.com"
    assert jwt_claims(mozilla)["aud"] == "https://updates.push.services.mozilla.com"
    assert jwt_claims(mozilla)["sub"] == "mailto:ops@shop.example"
    assert signer.signatures == 2


def test_a_vapid_token_is_renewed_before_it_expires(vapid_keys):
    endpoint = "https://fcm.googleapis.com/fcm/send/aaa"
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        signer = VapidSigner(private_key=vapid_keys[1], subject="mailto:ops@shop.example")
        first = signer.authorization(endpoint)

        traveller.shift(timedelta(seconds=TOKEN_LIFETIME - RENEW_BEFORE - 60))
        assert signer.authorization(endpoint) == first

        traveller.shift(timedelta(seconds=120))
        renewed = signer.authorization(endpoint)

    assert renewed != first
    assert jwt_claims(renewed)["exp"] > jwt_claims(first)["exp"]
    assert signer.signatures == 2


def test_the_encrypted_body_opens_with_the_subscribers_keys():
    import http_ece

    browser_key = ec.generate_private_key(ec.SECP256R1())
    public = browser_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    auth = b"0123456789abcdef"
    body = encrypt_payload("مرحبا".encode(), p256dh=b64(public), auth=b64(auth))

    assert http_ece.decrypt(body, private_key=browser_key, auth_secret=auth, version="aes128gcm") == "مرحبا".encode()


# --- The HTTP exchange: answers as real servers write them ---------------------------

class RawPushService:
    """A socket server on 127.0.0.1 whose `answer(connection_number, request_number)` returns raw bytes to send
    back for each request (a list: parts written one by one, a pause between them), or None to close the
    connection without answering. Each connection is served in its own thread, as push services serve many."""

    def __init__(self, answer):
        import socket

        self.answer = answer
        self.requests = 0
        self.heads = []  # each request's head (request line and headers), in the order they arrived
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.origin = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self):
        connection_number = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            connection_number += 1
            threading.Thread(target=self.serve_connection, args=(conn, connection_number), daemon=True).start()

    def serve_connection(self, conn, connection_number):
        with conn:
            buffer, request_number = b"", 0
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                request_number += 1
                with self.lock:
                    self.requests += 1
                    self.heads.append(head)
                reply = self.answer(connection_number, request_number)
                if reply is None:
                    return
                for part in reply if isinstance(reply, list) else [reply]:
                    conn.sendall(part)
                    if isinstance(reply, list):
                        time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.listener.close()


def test_a_chunked_refusal_is_read_whole_and_reported(backend, settings):
    answer = (b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"7\r\nInvalid\r\n9\r\n TTL hdr.\r\n0\r\n\r\n")
    with RawPushService(lambda connection, request: answer) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]

        with pytest.raises(DeliveryError) as raised:
            backend.send(make_message(f"{service.origin}/push/sub-1"))

    assert raised.value.permanent is True
    assert "Invalid TTL hdr." in str(raised.value)


def test_pushes_share_a_keep_alive_connection(backend, settings):
    created = b"HTTP/1.1 201 Created\r\nLocation: /m/1\r\nContent-Length: 0\r\n\r\n"
    connections = set()

    def answer(connection, request):
        connections.add(connection)
        return created

    with RawPushService(answer) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        results = [backend.send(make_message(f"{service.origin}/push/sub-{i}")) for i in range(3)]

    assert [result.provider_id for result in results] == ["/m/1"] * 3
    assert connections == {1}


def test_a_keep_alive_connection_the_service_dropped_is_replaced(backend, settings):
    created = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"

    def answer(connection, request):
        # The first connection serves one push, then the service drops it while idle.
        return None if (connection, request) == (1, 2) else created

    with RawPushService(answer) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        first = backend.send(make_message(f"{service.origin}/push/sub-1"))
        second = backend.send(make_message(f"{service.origin}/push/sub-2"))

    assert first.status == second.status == "sent"
    assert service.requests == 3


def test_a_service_that_closes_after_answering_gets_a_new_connection_next_time(backend, settings):
    closing = b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

    with RawPushService(lambda connection, request: closing if request == 1 else None) as service:
        settings.PUSH_ALLOWED_ENDPOINTS = [service.origin]
        results = [backend.send(make_message(f"{service.origin}/push/sub-{i}")) for i in range(2)]

    assert [result.status for result in results] == ["sent", "sent"]


def tls_service_context(tmp_path):
    """A server TLS context for 127.0.0.1, its self-signed certificate written to tmp_path/cert.pem."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_a_push_service_whose_certificate_is_not_trusted_gets_nothing(backend, settings, tmp_path):
    context = tls_service_context(tmp_path)

    with LocalPushService() as service:
        service.server.socket = context.wrap_socket(service.server.socket, server_side=True)
        origin = service.origin.replace("http://", "https://")
        settings.PUSH_ALLOWED_ENDPOINTS = [origin]

        with pytest.raises(DeliveryError) as raised:
            backend.send(make_message(f"{origin}/push/sub-1"))

    assert raised.value.code == "connection"
    assert "certificate" in str(raised.value).lower()
    assert service.received == []
