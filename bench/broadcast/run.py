"""The broadcast benchmark, in one command: `.venv/bin/python bench/broadcast/run.py [--subscriptions 100000]`.

A web-push broadcast to N subscriptions with real P-256 keys, against a light
push service on 127.0.0.1 (bench/broadcast/push_server.py: accepts, counts,
never decrypts; its own ceiling is measured alone first). On PostgreSQL:

  1. fan out: one Message row per push subscription, written with bulk_create in
     chunks walked in key order, each chunk handed to the senders as soon as it
     is written (--pipeline celery: the product's outbox.fan_out, enqueuing on
     Celery's bulk queue);
  2. send: W processes send each chunk with WebPushBackend.send_many (--pipeline
     celery: W Celery worker processes run outbox.deliver: claim, policy, send,
     record) until the push service has accepted the last push;
  3. in the same run, with the same W processes: (a) a naive loop calling
     pywebpush.webpush() per subscription and (b) django-push-notifications'
     WebPushDevice send, both on a sample; (c) the cryptographic floor.

Reported: messages/s, the senders' CPU time per message (user + sys of the
sending processes / messages) and peak RSS per worker. All traffic stays on
127.0.0.1 and is bounded by the number of subscriptions.

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tanbih_push_bench,
created and migrated if missing; its subscribers and messages are emptied), BENCH_REDIS_URL (the
Celery broker for --pipeline celery; default redis://127.0.0.1:6379/5).
`--write-docs` replaces the Broadcast section of docs/benchmarks.md.
Needs bench/requirements.txt (django-push-notifications) for (b).
"""
import argparse
import datetime
import json
import multiprocessing
import os
import platform
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- broadcast:start -->", "<!-- broadcast:end -->"
TICKS = os.sysconf("SC_CLK_TCK")

CONTENT = {
    "title": "سلتك بانتظارك يا سارة",
    "body": "أكملي طلبك قبل نفاد الكمية — خصم ١٠٪ بالرمز SAVE10 حتى منتصف الليل",
    "icon": "https://shop.example/static/icon-192.png",
    "image": "https://shop.example/media/products/abaya-black-silk.jpg",
    "badge": "https://shop.example/static/badge-72.png",
    "url": "https://tanbih.example/c/Xk3v9aQp2Lm8/0.sig",
    "actions": [
        {"action": "checkout", "title": "أكملي الطلب", "url": "https://tanbih.example/c/Xk3v9aQp2Lm8/1.sig"},
        {"action": "later", "title": "ذكّريني لاحقاً", "url": "https://tanbih.example/c/Xk3v9aQp2Lm8/2.sig"},
    ],
    "tag": "cart-reminder", "ttl": 86400, "urgency": "normal", "topic": "cart-reminder",
}


def database_url():
    return os.environ.get("BENCH_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/tanbih_push_bench"


def ensure_database(url):
    import psycopg
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(url.replace(parts.path, "/postgres", 1), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine():
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def b64(raw):
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def browser_keys(count):
    """`count` subscriptions' keys as browsers make them: a fresh P-256 key pair each, a 16-byte auth secret."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    curve = ec.SECP256R1()
    for _ in range(count):
        public = ec.generate_private_key(curve).public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        yield public, os.urandom(16)


def prepare_audience(count, origin, chunk=5000):
    """Empty the bench tables and store `count` subscribers, each with one active push subscription."""
    from django.db import connection

    from subscribers.models import PushSubscription, Subscriber

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE subscribers_subscriber, push_notifications_webpushdevice RESTART IDENTITY CASCADE")
    keys = browser_keys(count)
    made = 0
    while made < count:
        size = min(chunk, count - made)
        subscribers = Subscriber.objects.bulk_create(
            [Subscriber(external_id=f"bench-{made + i}", locale="ar", first_name="سارة") for i in range(size)])
        PushSubscription.objects.bulk_create([
            PushSubscription(subscriber=subscriber, endpoint=f"{origin}/push/{made + i}",
                             p256dh=b64(public), auth=b64(auth), browser="Chrome")
            for i, (subscriber, (public, auth)) in enumerate(zip(subscribers, keys))
        ])
        made += size


def fan_out_rows(run_id, chunk, on_chunk):
    """Write one Message per active push subscription, walking subscriptions in key order (bulk_create),
    and hand each written chunk's (first pk, last pk) to `on_chunk` at once, as the outbox enqueues chunks."""
    from django.utils import timezone

    from delivery.models import Message
    from subscribers.models import PushSubscription

    now = timezone.now()
    last = 0
    written = 0
    while True:
        subs = list(PushSubscription.objects.filter(pk__gt=last, status="active").order_by("pk")
                    .values_list("pk", "subscriber_id", "endpoint")[:chunk])
        if not subs:
            return written
        last = subs[-1][0]
        rows = Message.objects.bulk_create([
            Message(idempotency_key=f"campaign:{run_id}:{subscriber_id}:push::{pk}", code=secrets.token_urlsafe(12),
                    subscriber_id=subscriber_id, channel="push", locale="ar", source_type="campaign",
                    source_id=run_id, lane="bulk", content=CONTENT, push_subscription_id=pk, to=endpoint,
                    queued_at=now, send_at=now)
            for pk, subscriber_id, endpoint in subs
        ])
        on_chunk(rows[0].pk, rows[-1].pk)
        written += len(subs)


def run_processes(context, target, argument_lists):
    results = context.Queue()
    processes = [context.Process(target=target, args=(*args, results)) for args in argument_lists]
    for process in processes:
        process.start()
    figures = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return figures


def wait_for_count(port, expected, deadline=600):
    from bench.broadcast.workers import count

    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        totals = count(port)
        if totals["accepted"] >= expected:
            return totals
        time.sleep(0.05)
    return count(port)


def summarise(figures, window, messages):
    cpu = sum(f["cpu"] for f in figures)
    return {
        "messages": messages, "sent": sum(f["sent"] for f in figures), "failed": sum(f["failed"] for f in figures),
        "window_s": window, "messages_per_s": messages / window if window else 0,
        "cpu_us_per_message": cpu / messages * 1e6 if messages else 0,
        "peak_rss_mb_per_worker": max(f.get("peak_rss_mb", 0) for f in figures),
        "workers": figures,
    }


FLOOR_SAMPLE = 5000
BENCH_TABLES = ("subscribers_subscriber", "subscribers_pushsubscription", "subscribers_consent",
                "delivery_message", "delivery_messageevent")


def settle_database():
    """Vacuum and analyse the tables a phase just filled, now, so autovacuum does not start in the middle of
    the next measurement (it is off for these tables in the benchmark's own database)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in BENCH_TABLES:
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            cursor.execute(f"VACUUM ANALYZE {table}")


def measure_floor(context, workers, payload):
    """ECDH + HKDF + AES-128-GCM of the payload for FLOOR_SAMPLE browsers' keys, in one process: CPU µs each."""
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: F401 - warm import

    keys = [(public, auth) for public, auth in browser_keys(FLOOR_SAMPLE)]
    (floor,) = run_processes(context, workers.crypto_floor, [(keys, payload.encode())])
    return {"messages": floor["sent"], "cpu_us_per_message": floor["cpu"] / floor["sent"] * 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=500, help="messages per send chunk (a Celery task's worth)")
    parser.add_argument("--sample", type=int, default=3000, help="subscriptions for the naive loop and d-p-n")
    parser.add_argument("--pipeline", choices=["backend", "celery"], default="backend",
                        help="backend: WebPushBackend.send_many over chunks in W processes; celery: the product's "
                             "outbox.fan_out, chunks enqueued on the bulk queue, W Celery worker processes running "
                             "outbox.deliver (claim, policy, send, record)")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--skip-send-only", action="store_true",
                        help="skip the second pass that sends the written rows again with nothing else running")
    parser.add_argument("--write-docs", action="store_true")
    options = parser.parse_args()

    url = database_url()
    ensure_database(url)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    from subscribers.management.commands.generate_vapid_keys import generate_vapid_keypair

    public_key, private_key = generate_vapid_keypair()
    os.environ.update({
        "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bench.broadcast.settings", "BENCH_PUSH_ORIGIN": origin,
        "VAPID_PUBLIC_KEY": public_key, "VAPID_PRIVATE_KEY": private_key, "PUSH_SENDS_IN_FLIGHT": "32",
        "DELIVERY_RATE_LIMITS": "", "QUIET_HOURS": "off",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
    })
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0, interactive=False)
    from bench.broadcast import workers

    server = subprocess.Popen([sys.executable, str(ROOT / "bench/broadcast/push_server.py"), str(port)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    context = multiprocessing.get_context("spawn")
    report = {"machine": machine(), "subscriptions": options.subscriptions, "workers": options.workers,
              "chunk": options.chunk, "pipeline": options.pipeline}
    try:
        # The push service alone: how fast it accepts when the client costs nearly nothing.
        log("push service ceiling, measured alone")
        total = 200_000
        server_cpu = process_cpu(server.pid)
        (load,) = run_processes(context, workers.load_generator, [(port, total, 8, 64, 300)])
        report["server_ceiling"] = {"requests": load["sent"], "requests_per_s": load["sent"] / load["wall"],
                                    "server_cpu_us_per_request": (process_cpu(server.pid) - server_cpu)
                                    / load["sent"] * 1e6}
        log(f"  {report['server_ceiling']}")

        # The payload the baselines and the floor encrypt: the rendered message the service worker reads.
        payload = json.dumps({**CONTENT, "code": "Xk3v9aQp2Lm8"}, ensure_ascii=False)
        log("(c) crypto floor, measured first")
        floors = [measure_floor(context, workers, payload)]
        log(f"  {floors[0]}")

        log(f"storing {options.subscriptions:,} subscriptions with real keys")
        started = time.perf_counter()
        prepare_audience(options.subscriptions, origin)
        report["prepare_s"] = time.perf_counter() - started
        settle_database()

        run_id = f"bench-{int(time.time())}"
        workers.reset(port)
        connections.close_all()
        if options.pipeline == "celery":
            report["tanbih"] = run_celery_pipeline(options, server, port, run_id)
        else:
            report["tanbih"] = run_backend_pipeline(options, context, server, port, run_id)
        log(f"  {json.dumps({k: v for k, v in report['tanbih'].items() if k != 'workers'})}")
        log(f"  workers: {report['tanbih']['workers']}")
        settle_database()

        from subscribers.models import PushSubscription

        sample = list(PushSubscription.objects.order_by("pk").values_list("endpoint", "p256dh", "auth")
                      [:options.sample])
        shares = [sample[i::options.workers] for i in range(options.workers)]

        if not options.skip_baselines:
            log(f"(a) naive pywebpush.webpush() loop on {len(sample):,}")
            workers.reset(port)
            figures = run_processes(context, workers.naive_sender,
                                    [(f"naive-{i}", share, payload, private_key) for i, share in enumerate(shares)])
            totals = wait_for_count(port, len(sample), deadline=120)
            report["naive"] = summarise(figures, totals["last"] - totals["first"], totals["accepted"])
            log(f"  {json.dumps({k: v for k, v in report['naive'].items() if k != 'workers'})}")

            log(f"(b) django-push-notifications on {len(sample):,}")
            report["dpn"] = run_dpn(context, workers, port, sample, payload, options.workers)
            log(f"  {json.dumps({k: v for k, v in report['dpn'].items() if k != 'workers'})}")

        log("(c) crypto floor, measured again after everything else")
        floors.append(measure_floor(context, workers, payload))
        # The lowest floor of the run is the strictest yardstick: a floor measured while the machine was busy
        # (autovacuum after the bulk insert, another job) would make the sender look closer to it than it is.
        report["floor"] = min(floors, key=lambda floor: floor["cpu_us_per_message"])
        report["floor"]["runs_us"] = [round(floor["cpu_us_per_message"], 1) for floor in floors]
        log(f"  {report['floor']}")
    finally:
        server.terminate()
        server.wait(timeout=10)

    report["load_average"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    name = f"broadcast-{options.pipeline}-{options.subscriptions}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    log(f"results in {RESULTS / name}")
    if options.write_docs:
        write_docs(report if options.subscriptions == 100_000 or options.pipeline == "celery"
                   else json.loads((RESULTS / "broadcast-backend-100000.json").read_text()))


def run_backend_pipeline(options, context, server, port, run_id):
    """Fan out rows chunk by chunk while W processes send each written chunk with WebPushBackend.send_many."""
    from bench.broadcast import workers

    chunks = context.Queue()
    results = context.Queue()
    target = workers.tanbih_sender
    processes = [context.Process(target=target, args=(f"worker-{i}", chunks, results))
                 for i in range(options.workers)]
    for process in processes:
        process.start()
    time.sleep(3)  # let the workers import Django before the clock starts, as long-running Celery workers would
    log("fan out + send")
    server_cpu = process_cpu(server.pid)
    fan_out_started = time.perf_counter()
    fan_out_cpu = workers.cpu_seconds()

    bounds = []

    def on_chunk(low, high):
        chunks.put((low, high))
        bounds.append((low, high))

    written = fan_out_rows(run_id, options.chunk, on_chunk)
    fan_out_s = time.perf_counter() - fan_out_started
    fan_out_cpu = workers.cpu_seconds() - fan_out_cpu
    for _ in range(options.workers):
        chunks.put(None)
    figures = [results.get() for _ in processes]
    for process in processes:
        process.join()
    totals = wait_for_count(port, written)
    end_to_end = time.perf_counter() - fan_out_started
    window = totals["last"] - totals["first"] if totals["first"] is not None else 0
    tanbih = summarise(figures, window, totals["accepted"])
    tanbih.update({"fan_out_rows": written, "fan_out_s": fan_out_s, "end_to_end_s": end_to_end,
                   "fan_out_cpu_us_per_message": fan_out_cpu / max(1, written) * 1e6,
                   "end_to_end_messages_per_s": totals["accepted"] / end_to_end,
                   "server_cpu_us_per_push": (process_cpu(server.pid) - server_cpu) / max(1, totals["accepted"])
                   * 1e6, "body_bytes_per_push": totals["body_bytes"] / max(1, totals["accepted"])})

    if options.skip_send_only:
        return tanbih
    # The same rows sent again with nothing else running: what the senders do when rows are ready
    # (the backend records nothing, so a second pass is possible; the push service counts afresh).
    log("send only (rows already written)")
    workers.reset(port)
    for pair in bounds:
        chunks.put(pair)
    for _ in range(options.workers):
        chunks.put(None)
    processes = [context.Process(target=target, args=(f"worker-{i}", chunks, results))
                 for i in range(options.workers)]
    for process in processes:
        process.start()
    figures = [results.get() for _ in processes]
    for process in processes:
        process.join()
    totals = wait_for_count(port, written)
    tanbih["send_only"] = summarise(figures, totals["last"] - totals["first"], totals["accepted"])
    return tanbih


def run_celery_pipeline(options, server, port, run_id):
    """The product's path: outbox.fan_out enqueues chunks on the bulk queue; W Celery worker processes deliver."""
    import redis
    from django.conf import settings
    from django.utils import timezone

    from bench.broadcast import workers
    from delivery import outbox
    from subscribers.models import Consent, Subscriber

    # Push consent as register_push_subscription would have recorded it (bench data, written in bulk).
    Consent.objects.all().delete()
    now = timezone.now()
    last = 0
    while True:
        ids = list(Subscriber.objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:5000])
        if not ids:
            break
        last = ids[-1]
        Consent.objects.bulk_create([Consent(subscriber_id=pk, channel="push", status="granted", granted_at=now,
                                             source="sdk") for pk in ids])
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("bulk")
    from django.db import connections

    connections.close_all()
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker", "-Q", "bulk", "-c", str(options.workers),
         "--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat", "-O", "fair",
         "--loglevel", "WARNING"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        children = []
        for _ in range(200):
            time.sleep(0.1)
            path = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
            children = [int(pid) for pid in path.read_text().split()] if path.exists() else []
            if len(children) >= options.workers:
                break
        time.sleep(3)  # let the pool processes finish importing Django
        pids = [worker.pid, *children]
        cpu_before = {pid: process_cpu(pid) for pid in pids}
        server_cpu = process_cpu(server.pid)
        log("fan out + send (outbox.fan_out -> Celery bulk queue -> outbox.deliver)")
        started = time.perf_counter()
        fan_out_cpu = workers.cpu_seconds()
        counts = outbox.fan_out(audience=Subscriber.objects.all(), channel="push", template=None, content=CONTENT,
                                source_type="campaign", source_id=run_id, chunk_size=1000)
        fan_out_s = time.perf_counter() - started
        fan_out_cpu = workers.cpu_seconds() - fan_out_cpu
        totals = wait_for_count(port, counts["created"], deadline=1800)
        end_to_end = time.perf_counter() - started
        time.sleep(1)  # the last chunk's outcomes are being recorded
        cpu = {pid: process_cpu(pid) - cpu_before[pid] for pid in pids}
        rss = {}
        for pid in children:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    rss[pid] = int(line.split()[1]) / 1024
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    from delivery.models import Message

    from django.db.models import Count

    statuses = {row["status"]: row["n"] for row in
                Message.objects.filter(source_id=run_id).values("status").annotate(n=Count("pk"))}
    accepted = totals["accepted"]
    figures = [{"name": f"celery-{pid}", "cpu": cpu[pid], "sent": 0, "failed": 0, "peak_rss_mb": rss.get(pid, 0)}
               for pid in children]
    figures.append({"name": "celery-main", "cpu": cpu[worker.pid], "sent": 0, "failed": 0, "peak_rss_mb": 0})
    result = summarise(figures, totals["last"] - totals["first"] if totals["first"] is not None else 0, accepted)
    result.update({"sent": statuses.get("sent", 0), "failed": sum(n for status, n in statuses.items()
                                                                  if status != "sent"), "statuses": statuses,
        "fan_out_rows": counts["created"], "fan_out_s": fan_out_s,
        "fan_out_cpu_us_per_message": fan_out_cpu / max(1, counts["created"]) * 1e6,
        "end_to_end_s": end_to_end, "end_to_end_messages_per_s": accepted / end_to_end,
        "server_cpu_us_per_push": (process_cpu(server.pid) - server_cpu) / max(1, accepted) * 1e6,
        "body_bytes_per_push": totals["body_bytes"] / max(1, accepted)})
    return result


def run_dpn(context, workers, port, sample, payload, worker_count):
    from push_notifications.models import WebPushDevice

    WebPushDevice.objects.all().delete()
    devices = WebPushDevice.objects.bulk_create([
        WebPushDevice(registration_id=endpoint.rsplit("/push/", 1)[1], p256dh=p256dh, auth=auth, browser="CHROME",
                      active=True)
        for endpoint, p256dh, auth in sample
    ])
    ids = sorted(device.pk for device in devices)
    from django.db import connections

    connections.close_all()
    share = -(-len(ids) // worker_count)
    ranges = [(ids[i], ids[min(i + share, len(ids)) - 1]) for i in range(0, len(ids), share)]
    workers.reset(port)
    figures = run_processes(context, workers.dpn_sender,
                            [(f"dpn-{i}", low, high, payload) for i, (low, high) in enumerate(ranges)])
    totals = wait_for_count(port, len(sample), deadline=120)
    return summarise(figures, totals["last"] - totals["first"], totals["accepted"])


def write_docs(report):
    """The section from this run, with the latest run of the other pipeline beside it when there is one."""
    other = "celery" if report["pipeline"] == "backend" else "backend"
    runs = sorted(RESULTS.glob(f"broadcast-{other}-*.json"), key=lambda path: path.stat().st_mtime)
    other_report = json.loads(runs[-1].read_text()) if runs else None
    backend, celery = (report, other_report) if other == "celery" else (other_report, report)
    from bench.broadcast.docs import render

    million = RESULTS / "broadcast-backend-1000000.json"
    million = json.loads(million.read_text()) if million.exists() else None
    text = DOCS.read_text()
    DOCS.write_text(replace_section(text, render(backend or report, celery=celery, million=million,
                                                 million_text=earlier_million_paragraph(text),
                                                 extra="" if celery else earlier_celery_subsection(text))))


def earlier_celery_subsection(text):
    """The documented `--pipeline celery` subsection, kept when this machine has no results of such a run."""
    match = re.search(r"^### The whole product path.*?(?=^" + re.escape(END) + ")", text, flags=re.M | re.S)
    if not match:
        return ""
    subsection = match.group(0).rstrip()
    note = "That run used the sending code of its date; the send figure it cites is from the same date."
    return subsection if note in subsection else f"{subsection} {note}"


def earlier_million_paragraph(text):
    """The documented 1,000,000-subscription paragraph, kept when this machine has no results of such a run."""
    match = re.search(r"^\*\*1,000,000 subscriptions\*\* \(run [^)]*\).*$", text, flags=re.M)
    if not match:
        return ""
    paragraph = match.group(0)
    note = " That run used the sending code of its date (a thread per exchange in flight) and the machine of its date."
    return paragraph if note.strip() in paragraph else paragraph + note


def replace_section(text, section):
    block = f"{START}\n{section.rstrip()}\n{END}"
    if START in text and END in text:
        return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
    return text.rstrip() + "\n\n" + block + "\n"


if __name__ == "__main__":
    main()
