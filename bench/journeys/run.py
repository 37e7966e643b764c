"""The journey scheduler benchmark, in one command: `.venv/bin/python bench/journeys/run.py` (or `make bench-journeys`).

On PostgreSQL and Redis, with real Celery worker processes and celery-beat:

  1. the product path: N enrolments (default 100,000) of an abandoned-cart journey
     wait at "wait 15 minutes", all due at the same moment; the next step sends an
     in-app message reading each shopper's cart. celery-beat sends the product's
     journey tick (journeys.tasks.tick, every JOURNEY_TICK_SECONDS) to `--workers`
     worker processes on the `schedule` queue, which claim due enrolments with
     SKIP LOCKED and advance them. Measured: from the due moment to the last of
     the N outbox Message rows queued (polled every 0.2 s), the workers' CPU, the
     broker's memory (Redis INFO used_memory) while the enrolments wait;
  2. an event-triggered first step: `back_in_stock` events stored through
     subscribers.services.record_event (the ingest path: event_recorded signal ->
     journeys.tasks.handle_event on the `events` queue, one worker process), from
     the call to the first step's message row queued; sampled during phase 1's
     backlog and again on an idle machine;
  3. the naive design in the same run (bench/journeys/naive.py): one Celery task
     per enrolment published with an eta at the same due moment, the same N
     enrolments and worker processes: time from due to all queued, broker memory
     while the countdowns wait, the worker's memory holding them.

The enrolments' rows are written straight into PostgreSQL (the state they would
have after entering and reaching the wait); the shoppers, carts, template and
journeys are made through the ORM once and kept between runs.

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tanbih_bench_journeys;
created and migrated if missing), BENCH_REDIS_URL (broker; default redis://127.0.0.1:6379/12,
flushed at the start of each phase). `--write-docs` replaces the Journeys scheduler section of
docs/benchmarks.md; `--json PATH` also writes the figures elsewhere.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.broadcast.run import machine, process_cpu  # noqa: E402
from bench.ingest.run import ensure_database  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- journeys:start -->", "<!-- journeys:end -->"
CELERY = str(Path(sys.executable).parent / "celery")
CART_JOURNEY, EVENT_JOURNEY = "Bench: abandoned cart", "Bench: back in stock"
TEMPLATE = "bench-journey-cart"
POLL_SECONDS = 0.2


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def database_url():
    return os.environ.get("BENCH_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/tanbih_bench_journeys"


def redis_url():
    return os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/12"


# --- Data ----------------------------------------------------------------------------------------

def prepare_shoppers(count, chunk=5000):
    """`count` shoppers, each with an abandoned cart of one product (kept between runs of the same size)."""
    from django.db import connection

    from subscribers.models import Cart, Subscriber

    if Subscriber.objects.count() == count and Cart.objects.count() == count:
        return False
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE subscribers_subscriber RESTART IDENTITY CASCADE")
    made = 0
    while made < count:
        size = min(chunk, count - made)
        shoppers = Subscriber.objects.bulk_create([
            Subscriber(external_id=f"jb-{made + i}", first_name="سارة" if i % 2 else "Sara",
                       locale="ar" if i % 2 else "en", timezone="Asia/Riyadh") for i in range(size)])
        Cart.objects.bulk_create([
            Cart(subscriber=shopper, external_id=f"jb-cart-{made + i}", status="abandoned", value="249.00",
                 items=[{"product_id": f"p{i % 40}", "title": "Running shoes", "price": "249.00", "quantity": 1,
                         "image": "https://shop.example/shoes.jpg"}], abandoned_at=shopper.created_at,
                 last_activity_at=shopper.created_at)
            for i, shopper in enumerate(shoppers)])
        made += size
    return True


def prepare_journeys():
    """The in-app template and the two journeys (made once; their ids are the same on every run)."""
    from delivery.models import MessageTemplate, TemplateContent
    from journeys import engine
    from journeys.models import Journey

    template, created = MessageTemplate.objects.get_or_create(slug=TEMPLATE, defaults={"name": "Bench cart"})
    if created:
        for locale, title, body in (
                ("en", "{{ first_name | default: 'Hello' }}, your cart is saved",
                 "{{ cart.items[0].title | default: 'Your cart' }} is waiting: {{ cart.restore_url | default: "
                 "shop_url }}"),
                ("ar", "{{ first_name | default: 'مرحباً' }}، سلتك محفوظة",
                 "{{ cart.items[0].title | default: 'سلتك' }} بانتظارك: {{ cart.restore_url | default: shop_url }}")):
            TemplateContent.objects.create(template=template, channel="inapp", locale=locale, title=title, body=body)
    journeys = {}
    for name, trigger, steps in (
            (CART_JOURNEY, "cart_abandoned", {"start": "wait-15m", "steps": {
                "wait-15m": {"type": "wait", "minutes": 15, "next": "remind"},
                "remind": {"type": "send", "template": TEMPLATE, "channels": ["inapp"], "next": "end"},
                "end": {"type": "exit"}}}),
            (EVENT_JOURNEY, "back_in_stock", {"start": "remind", "steps": {
                "remind": {"type": "send", "template": TEMPLATE, "channels": ["inapp"], "next": "end"},
                "end": {"type": "exit"}}})):
        journey = Journey.objects.filter(name=name).first()
        if journey is None:
            journey = Journey.objects.create(name=name, trigger_event=trigger, status="active",
                                             goal_event="order_placed", entry_rule="every_time")
            engine.publish(journey, steps)
        journeys[trigger] = journey
    return journeys


def reset_rows():
    """Empty what a phase writes: enrolments, step runs, messages and their events."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE journeys_steprun, journeys_enrolment, delivery_messageevent, delivery_message, "
                       "subscribers_event CASCADE")


def write_waiting_enrolments(journey, count, due):
    """`count` enrolments at the journey's 15-minute wait, all due at `due`, each with its shopper's cart."""
    from django.db import connection

    version = journey.current_version
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO journeys_enrolment (journey_id, version_id, subscriber_id, status, step, visits,
                   next_run_at, is_waiting, waiting_for, context, trigger_key, entered_at, exit_reason, is_test)
               SELECT %s, %s, s.id, 'active', 'wait-15m', 0, %s, true, '',
                      jsonb_build_object('cart_id', 'jb-cart-' || substr(s.external_id, 4),
                                         'trigger_event', 'cart_abandoned'),
                      '', %s, '', false
               FROM (SELECT id, external_id FROM subscribers_subscriber ORDER BY id LIMIT %s) s""",
            [journey.pk, version.pk, due, due - timedelta(minutes=15), count])
        for table in ("journeys_enrolment", "journeys_steprun", "delivery_message", "delivery_messageevent"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    from journeys.models import Enrolment

    return list(Enrolment.objects.filter(journey=journey).order_by("pk").values_list("pk", flat=True))


def queued_messages(journey):
    from delivery.models import Message

    return Message.objects.filter(source_type="journey_step", source_id__startswith=f"{journey.pk}:").count()


# --- Processes -----------------------------------------------------------------------------------

def start_worker(name, queues, concurrency, *extra):
    """A Celery worker; its output goes to bench/results/journeys-<name>.log (read it when a phase times out)."""
    RESULTS.mkdir(exist_ok=True)
    return subprocess.Popen(
        [CELERY, "-A", "config", "worker", "-Q", queues, "-c", str(concurrency), "--pool", "prefork",
         "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-O", "fair",
         "--loglevel", "WARNING", *extra], cwd=ROOT, stdout=open(RESULTS / f"journeys-{name}.log", "w"),
        stderr=subprocess.STDOUT)


def start_beat(folder):
    return subprocess.Popen(
        [CELERY, "-A", "config", "beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
         "--loglevel", "WARNING", "--pidfile", str(folder / "beat.pid"), "--schedule", str(folder / "beat")],
        cwd=ROOT, stdout=open(RESULTS / "journeys-beat.log", "w"), stderr=subprocess.STDOUT)


def pool_pids(worker, expected, timeout=60):
    """The worker's main process and its pool processes, once they are all up (and have imported Django)."""
    stop = time.monotonic() + timeout
    children = []
    while time.monotonic() < stop:
        path = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
        children = [int(pid) for pid in path.read_text().split()] if path.exists() else []
        if len(children) >= expected:
            break
        time.sleep(0.1)
    time.sleep(3)
    return [worker.pid, *children]


def stop(*processes):
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
    for process in processes:
        if process is not None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def peak_rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def broker():
    import redis

    return redis.Redis.from_url(redis_url())


def broker_memory_mb():
    return broker().info("memory")["used_memory"] / 1e6


class LoadSampler(threading.Thread):
    """The 1-minute load average once a second while a phase runs (the machine is shared)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.done = [], threading.Event()

    def run(self):
        while not self.done.wait(1.0):
            self.samples.append(os.getloadavg()[0])

    def finish(self):
        self.done.set()
        self.join()
        return {"mean": statistics.mean(self.samples) if self.samples else os.getloadavg()[0],
                "max": max(self.samples) if self.samples else os.getloadavg()[0]}


def wait_until_queued(journey, expected, timeout):
    """Poll the outbox until `expected` messages of the journey are queued; -> (wall-clock time seen, count)."""
    stop_at = time.monotonic() + timeout
    count = 0
    while time.monotonic() < stop_at:
        count = queued_messages(journey)
        if count >= expected:
            return time.time(), count
        time.sleep(POLL_SECONDS)
    return None, count


# --- The event-triggered first step ---------------------------------------------------------------

def event_to_first_message(journey, shopper):
    """Store one back_in_stock event through the ingest service; -> seconds until its message row exists."""
    from django.db import connection

    from delivery.models import Message
    from subscribers import services

    started = time.monotonic()
    services.record_event(subscriber=shopper, name="back_in_stock", properties={
        "product_id": "p7", "title": "Running shoes", "url": "https://shop.example/p7", "price": "249.00"})
    prefix = f"{journey.pk}:"
    while time.monotonic() - started < 60:
        if Message.objects.filter(subscriber=shopper, source_id__startswith=prefix).exists():
            return time.monotonic() - started
        time.sleep(0.005)
    connection.close()
    return None


def sample_events(journey, shoppers, spacing, stop_event=None):
    """Latencies of events from these shoppers, one every `spacing` seconds (until stop_event is set)."""
    from django.db import connection

    latencies = []
    try:
        for shopper in shoppers:
            if stop_event is not None and stop_event.is_set():
                break
            latencies.append(event_to_first_message(journey, shopper))
            time.sleep(spacing)
    finally:
        connection.close()
    return latencies


def summary(latencies):
    done = sorted(x for x in latencies if x is not None)
    if not done:
        return {"samples": len(latencies), "missed": len(latencies)}
    return {"samples": len(latencies), "missed": len(latencies) - len(done),
            "p50_s": statistics.median(done), "p95_s": done[min(len(done) - 1, int(round(0.95 * (len(done) - 1))))],
            "max_s": done[-1]}


# --- Phases --------------------------------------------------------------------------------------

def run_product(options, journeys, folder):
    """Phase 1 (+ phase 2 under load): beat's tick and W worker processes advance N due enrolments."""
    from django.db import connections
    from django.utils import timezone

    from subscribers.models import Subscriber

    cart_journey, event_journey = journeys["cart_abandoned"], journeys["back_in_stock"]
    reset_rows()
    broker().flushdb()
    event_shoppers = list(Subscriber.objects.order_by("-pk")[:options.event_samples * 2])
    connections.close_all()
    schedule = start_worker("schedule", "schedule", options.workers)
    send = start_worker("send", "send", 1)
    events = start_worker("events", "events", 1)
    beat = start_beat(folder)
    try:
        pids = pool_pids(schedule, options.workers)
        pool_pids(send, 1)
        pool_pids(events, 1)
        # Due shortly after the rows are written, as a minute's worth of waits ending at once.
        due = timezone.now() + timedelta(seconds=options.lead)
        write_waiting_enrolments(cart_journey, options.enrolments, due)
        memory_waiting = broker_memory_mb()
        connections.close_all()
        cpu_before = {pid: process_cpu(pid) for pid in pids}
        wait = (due - timezone.now()).total_seconds()
        log(f"product path: {options.enrolments:,} enrolments due in {wait:.0f} s; "
            f"{options.workers} worker processes on the schedule queue, beat every "
            f"{os.environ['JOURNEY_TICK_SECONDS']} s")
        time.sleep(max(0.0, wait))
        load = LoadSampler()
        load.start()
        stop_events = threading.Event()
        under_load = []
        sampler = threading.Thread(target=lambda: under_load.extend(sample_events(
            event_journey, event_shoppers[:options.event_samples], 1.0, stop_events)), daemon=True)
        sampler.start()
        done_at, count = wait_until_queued(cart_journey, options.enrolments, options.timeout)
        waited = time.time() - due.timestamp()
        stop_events.set()
        sampler.join()
        loads = load.finish()
        cpu = sum(process_cpu(pid) - cpu_before[pid] for pid in pids)
        rss = max(peak_rss_mb(pid) for pid in pids[1:])
    finally:
        stop(beat, schedule, send, events)
    first = first_step_figures(cart_journey)
    result = {
        "enrolments": options.enrolments, "queued": count, "workers": options.workers,
        "tick_seconds": int(os.environ["JOURNEY_TICK_SECONDS"]),
        "due_to_last_queued_s": done_at - due.timestamp() if done_at else None, "waited_s": waited,
        "worker_cpu_s": cpu, "worker_cpu_us_per_enrolment": cpu / max(1, count) * 1e6,
        "peak_rss_mb_per_worker": rss, "broker_memory_waiting_mb": memory_waiting, "load_average": loads,
        "events_under_load": summary(under_load), **first,
    }
    log(f"  {json.dumps(result)}")
    return result, event_shoppers[options.event_samples:]


def first_step_figures(journey):
    """How many ticks sent the messages (a step run's time is its tick's `now`, one per tick)."""
    from django.db.models import Count

    from journeys.models import StepRun

    runs = StepRun.objects.filter(enrolment__journey=journey, step="remind").aggregate(ticks=Count("at", distinct=True))
    return {"ticks_that_sent": runs["ticks"]}


def run_idle_events(options, journeys, shoppers):
    """Phase 2 on a quiet machine: only the `events` worker, on empty queues (phase 1's sends are dropped from the
    broker; their rows stay queued), events a second apart."""
    from django.db import connections

    broker().flushdb()
    connections.close_all()
    events = start_worker("events", "events", 1)
    try:
        pool_pids(events, 1)
        latencies = sample_events(journeys["back_in_stock"], shoppers, 1.0)
    finally:
        stop(events)
    result = summary(latencies)
    log(f"  idle events: {json.dumps(result)}")
    return result


def run_naive(options, journeys):
    """Phase 3: one countdown task per enrolment, the same N enrolments and worker processes."""
    from django.db import connections
    from django.utils import timezone

    from bench.journeys import naive

    cart_journey = journeys["cart_abandoned"]
    reset_rows()
    broker().flushdb()
    memory_empty = broker_memory_mb()
    due = timezone.now() + timedelta(seconds=options.naive_lead)
    ids = write_waiting_enrolments(cart_journey, options.naive_enrolments, due)
    connections.close_all()
    log(f"naive: publishing {len(ids):,} tasks with eta = due")
    started = time.monotonic()
    naive.schedule_all(ids, due)
    publish_s = time.monotonic() - started
    memory_published = broker_memory_mb()
    worker = start_worker("naive", "bench-naive", options.workers, "--include", "bench.journeys.naive")
    try:
        pids = pool_pids(worker, options.workers)
        # The worker takes every ETA task from the queue at once and holds it until it is due.
        wait = (due - timezone.now()).total_seconds()
        memory_held = broker_memory_mb()
        held_rss = peak_rss_mb(worker.pid)
        if wait < 0:
            log(f"  publishing took longer than --naive-lead {options.naive_lead} s: the tasks were late")
        cpu_before = {pid: process_cpu(pid) for pid in pids}
        time.sleep(max(0, wait))
        load = LoadSampler()
        load.start()
        done_at, count = wait_until_queued(cart_journey, options.naive_enrolments, options.naive_timeout)
        waited = time.time() - due.timestamp()
        loads = load.finish()
        cpu = sum(process_cpu(pid) - cpu_before[pid] for pid in pids)
        main_rss = peak_rss_mb(worker.pid)
    finally:
        stop(worker)
    result = {
        "enrolments": options.naive_enrolments, "queued": count, "workers": options.workers, "publish_s": publish_s,
        "late_by_s": max(0.0, -wait), "due_to_last_queued_s": done_at - due.timestamp() if done_at else None,
        "waited_s": waited, "worker_cpu_s": cpu, "worker_cpu_us_per_enrolment": cpu / max(1, count) * 1e6,
        "broker_memory_empty_mb": memory_empty, "broker_memory_published_mb": memory_published,
        "broker_memory_held_mb": memory_held, "worker_main_rss_mb_holding": held_rss,
        "worker_main_peak_rss_mb": main_rss, "load_average": loads,
    }
    log(f"  {json.dumps(result)}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enrolments", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes on the schedule queue (and naive)")
    parser.add_argument("--tick-seconds", type=int, default=10, help="JOURNEY_TICK_SECONDS for beat")
    parser.add_argument("--lead", type=int, default=30,
                        help="seconds from writing the rows (the workers and beat are up) to their due moment")
    parser.add_argument("--naive-lead", type=int, default=90,
                        help="seconds from publishing the naive tasks to their eta (publishing must fit in it)")
    parser.add_argument("--event-samples", type=int, default=20)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--naive-timeout", type=int, default=1800)
    parser.add_argument("--naive-enrolments", type=int,
                        help="enrolments for the naive design (default: --enrolments; fewer when time is short, the "
                             "section then scales its figures to --enrolments, per task)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-product", action="store_true",
                        help="only the naive design; the section keeps the product figures of the last results file")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    options.naive_enrolments = options.naive_enrolments or options.enrolments
    # Stopped with SIGTERM (a timeout): stop the workers and beat on the way out too.
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))

    url = database_url()
    ensure_database(url)
    os.environ.update({
        "DATABASE_URL": url, "REDIS_URL": redis_url(), "CELERY_BROKER_URL": redis_url(),
        "DJANGO_SETTINGS_MODULE": "bench.journeys.settings", "JOURNEY_TICK_SECONDS": str(options.tick_seconds),
        "CELERY_TASK_ALWAYS_EAGER": "false", "PYTHONPATH": str(ROOT),
    })
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    report = {"machine": machine(), "load_average_before": os.getloadavg()[0]}
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        if prepare_shoppers(options.enrolments):
            log(f"stored {options.enrolments:,} shoppers with a cart in {time.perf_counter() - started:.0f} s")
        journeys = prepare_journeys()
        path = RESULTS / f"journeys-{options.enrolments}.json"
        if options.skip_product:
            earlier = json.loads(path.read_text())
            report.update({key: earlier[key] for key in ("machine", "load_average_before", "product", "events_idle")})
            report["naive_date"] = machine()["date"]
        else:
            report["product"], idle_shoppers = run_product(options, journeys, Path(folder))
            report["events_idle"] = run_idle_events(options, journeys, idle_shoppers)
        if not options.skip_naive:
            report["naive"] = run_naive(options, journeys)
    report["load_average_after"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if options.json:
        options.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    log(f"results in {path}")
    if options.write_docs:
        from bench.journeys.docs import render, replace_section

        DOCS.write_text(replace_section(DOCS.read_text(), render(report), START, END))
        log(f"section written to {DOCS}")


if __name__ == "__main__":
    main()
