"""What runs inside the benchmark's sending processes (started with multiprocessing "spawn").

Each function sets Django up, measures its own CPU time (user + sys of the
whole process, every thread included) and peak RSS around the sending only,
and puts one dict of figures on the `results` queue.
"""
import asyncio
import json
import os
import resource
import time


def cpu_seconds():
    times = os.times()
    return times.user + times.system


def peak_rss_mb():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent through exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup_django():
    import django

    django.setup()


class PushRow:
    """What WebPushBackend.send reads of a Message: its code, locale, rendered content and push subscription."""

    __slots__ = ("code", "locale", "content", "push_subscription")

    def __init__(self, code, locale, content, push_subscription):
        self.code, self.locale, self.content, self.push_subscription = code, locale, content, push_subscription


class PushKeys:
    """What it reads of the PushSubscription: where to send and the browser's keys."""

    __slots__ = ("endpoint", "p256dh", "auth")

    def __init__(self, endpoint, p256dh, auth):
        self.endpoint, self.p256dh, self.auth = endpoint, p256dh, auth


def tanbih_sender(name, chunks, results):
    """Tanbih's send path: outbox rows read in key order, chunk by chunk, sent by WebPushBackend.send_many.

    Each chunk is one query of the six columns a push needs (values_list: no model instance per row, the
    content decoded from JSON as the ORM does). outbox.deliver reads whole Message rows instead, because it
    also claims and records them: that path is measured by `--pipeline celery`.
    """
    setup_django()
    from config.celery import tune_worker_process
    from delivery.channels.base import SendResult
    from delivery.channels.webpush import WebPushBackend
    from delivery.models import Message

    backend = WebPushBackend()
    tune_worker_process()  # as a Celery worker process does at start (worker_process_init)
    sent = failed = 0
    errors = {}
    rss_before = peak_rss_mb()
    started = cpu_seconds()
    while True:
        bounds = chunks.get()
        if bounds is None:
            break
        low, high = bounds
        # What send() reads, nothing more: the code, locale, content and the subscription's endpoint and keys.
        rows = (Message.objects.filter(pk__gte=low, pk__lte=high).order_by("pk")
                .values_list("code", "locale", "content", "push_subscription__endpoint",
                             "push_subscription__p256dh", "push_subscription__auth"))
        messages = [PushRow(code, locale, content, PushKeys(endpoint, p256dh, auth) if endpoint else None)
                    for code, locale, content, endpoint, p256dh, auth in rows]
        for result in backend.send_many(messages):
            if isinstance(result, SendResult):
                sent += 1
            else:
                failed += 1
                errors[str(result)[:120]] = errors.get(str(result)[:120], 0) + 1
    results.put({"name": name, "cpu": cpu_seconds() - started, "sent": sent, "failed": failed,
                 "errors": dict(list(errors.items())[:5]), "peak_rss_mb": peak_rss_mb(),
                 "rss_before_sending_mb": rss_before, "vapid_signatures": backend.signer.signatures})


def naive_sender(name, subscriptions, payload, private_key, results):
    """(a) The naive loop: pywebpush.webpush() per subscription (new connection, VAPID signed each time)."""
    import pywebpush

    sent = failed = 0
    started = cpu_seconds()
    for endpoint, p256dh, auth in subscriptions:
        try:
            pywebpush.webpush(
                {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}, data=payload,
                vapid_private_key=private_key, vapid_claims={"sub": "mailto:bench@example.com"},
                headers={"Content-Type": "application/octet-stream"}, ttl=86400, timeout=10,
            )
            sent += 1
        except pywebpush.WebPushException:
            failed += 1
    results.put({"name": name, "cpu": cpu_seconds() - started, "sent": sent, "failed": failed,
                 "peak_rss_mb": peak_rss_mb()})


def dpn_sender(name, low, high, payload, results):
    """(b) django-push-notifications: WebPushDevice queryset .send_message() (a loop over pywebpush.webpush)."""
    import warnings

    setup_django()
    from push_notifications.models import WebPushDevice

    warnings.simplefilter("ignore")
    started = cpu_seconds()
    replies = WebPushDevice.objects.filter(pk__gte=low, pk__lte=high).send_message(payload)
    sent = sum(1 for reply in replies if reply.get("success"))
    results.put({"name": name, "cpu": cpu_seconds() - started, "sent": sent, "failed": len(replies) - sent,
                 "peak_rss_mb": peak_rss_mb()})


def crypto_floor(keys, payload, results):
    """(c) The floor: ECDH P-256 + HKDF + AES-128-GCM of one message with `cryptography`, no network.

    Per message: parse the subscriber's key, a new ephemeral key pair, ECDH, the
    three HKDF derivations of RFC 8291/8188, one AES-GCM record.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    curve = ec.SECP256R1()
    started = cpu_seconds()
    for ua_public, auth in keys:
        ua_key = ec.EllipticCurvePublicKey.from_encoded_point(curve, ua_public)
        private = ec.generate_private_key(curve)
        as_public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        shared = private.exchange(ec.ECDH(), ua_key)
        ikm = HKDF(hashes.SHA256(), 32, salt=auth, info=b"WebPush: info\x00" + ua_public + as_public).derive(shared)
        salt = os.urandom(16)
        cek = HKDF(hashes.SHA256(), 16, salt=salt, info=b"Content-Encoding: aes128gcm\x00").derive(ikm)
        nonce = HKDF(hashes.SHA256(), 12, salt=salt, info=b"Content-Encoding: nonce\x00").derive(ikm)
        AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    results.put({"name": "floor", "cpu": cpu_seconds() - started, "sent": len(keys)})


def load_generator(port, total, connections, depth, body_size, results):
    """Drives the push server alone: `connections` keep-alive connections, `depth` pipelined requests each."""
    request = (b"POST /push/ceiling HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Encoding: aes128gcm\r\nTTL: 60\r\nContent-Length: %d\r\n\r\n" % body_size) + b"x" * body_size
    marker = b"HTTP/1.1 201"
    per_connection = total // connections

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        tail = b""
        while done < per_connection:
            batch = min(depth, per_connection - done)
            writer.write(request * batch)
            seen = 0
            while seen < batch:
                data = tail + await reader.read(65536)
                seen += data.count(marker)
                tail = data[-(len(marker) - 1):]
            done += batch
        writer.close()
        return done

    async def main():
        return sum(await asyncio.gather(*(one() for _ in range(connections))))

    started = time.perf_counter()
    sent = asyncio.run(main())
    results.put({"name": "load", "sent": sent, "wall": time.perf_counter() - started})


def count(port):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=10) as response:
        return json.loads(response.read())


def reset(port):
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/reset", method="POST"), timeout=10).read()
