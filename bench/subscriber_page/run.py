"""The shopper 360° page benchmark: `.venv/bin/python bench/subscriber_page/run.py`.

Renders /app/subscribers/<id>/ (and a "load more" deep in the timeline) for
shoppers with a growing history on PostgreSQL, with 40 saved segments of varied
rules, and reports the queries and the time of each render. The page reads a
bounded slice of each part (the latest rows, one keyset page of the timeline,
every segment evaluated for the one shopper in one query), so its query count
stays put and its time should grow little with the history.

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tanbih_bench_s360;
created if missing, data made again each run). `--json PATH` writes the figures.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.ingest.run import ensure_database, machine  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tanbih_bench_s360"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RUNS = 5
CHUNK = 5_000


def segment_rules(n):
    """Forty segments of the shapes marketers build: tags, events in a window, commerce, consent, nested groups."""
    shapes = [
        {"type": "tags", "operator": "has_any", "value": [f"tag-{n % 5}"]},
        {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 1 + n % 4, "within_days": 30},
        {"type": "commerce", "field": "total_spent", "operator": "gte", "value": 100 * n},
        {"type": "reachable", "channel": ("push", "sms", "email", "whatsapp")[n % 4]},
        {"type": "group", "match": "any", "conditions": [
            {"type": "locale", "operator": "in", "value": ["ar"]},
            {"type": "abandoned_cart", "operator": "has", "within_hours": 24 * (1 + n % 7)}]},
    ]
    return {"type": "group", "match": "all", "conditions": [shapes[n % len(shapes)]]}


def make_shopper(size):
    """A shopper with `size` events and size / 2 messages spread over a year, plus carts, orders and consents."""
    from delivery.models import Message
    from subscribers.models import Cart, Consent, Event, Order, Subscriber

    shopper = Subscriber.objects.create(external_id=f"bench-{size}", first_name="Bench", email=f"b{size}@x.example",
                                        phone="+966500000001", locale="ar", timezone="Asia/Riyadh", tags=["tag-1"])
    span = timedelta(days=365)
    step = span / max(size, 1)
    for start in range(0, size, CHUNK):
        Event.objects.bulk_create([
            Event(subscriber=shopper, name=("product_viewed", "cart_updated", "order_placed")[i % 3],
                  properties={"product_id": f"p{i % 97}"}, occurred_at=NOW - step * i, received_at=NOW)
            for i in range(start, min(start + CHUNK, size))])
    for start in range(0, size // 2, CHUNK):
        Message.objects.bulk_create([
            Message(idempotency_key=f"bench:{shopper.pk}:{i}", code=f"b{shopper.pk}x{i}", subscriber=shopper,
                    channel=("push", "sms", "email")[i % 3], source_type="api", status="delivered",
                    queued_at=NOW - step * 2 * i, send_at=NOW - step * 2 * i, sent_at=NOW - step * 2 * i)
            for i in range(start, min(start + CHUNK, size // 2))])
    Cart.objects.bulk_create([Cart(subscriber=shopper, external_id=f"bc-{shopper.pk}-{i}", status="abandoned",
                                   last_activity_at=NOW - timedelta(days=i)) for i in range(max(size // 100, 1))])
    Order.objects.bulk_create([Order(subscriber=shopper, external_id=f"bo-{shopper.pk}-{i}", value=10,
                                     placed_at=NOW - timedelta(days=i)) for i in range(max(size // 200, 1))])
    Consent.objects.create(subscriber=shopper, channel="sms", status="granted", source="api", granted_at=NOW)
    return shopper


def render(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    client.get(url)  # warm-up
    for _run in range(RUNS):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return {"queries": len(queries.captured_queries), "median_ms": round(statistics.median(times) * 1000, 1),
            "best_ms": round(min(times) * 1000, 1), "worst_ms": round(max(times) * 1000, 1)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,1000,10000,100000", help="events per shopper, comma-separated")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL
    ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from analytics.subscriber_profile import timeline
    from subscribers.models import Segment, Subscriber

    settings.ALLOWED_HOSTS = ["*"]
    Subscriber.objects.filter(external_id__startswith="bench-").delete()
    Segment.objects.filter(name__startswith="bench ").delete()
    Segment.objects.bulk_create([Segment(name=f"bench {n}", rules=segment_rules(n)) for n in range(40)])
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", "x")
    client = Client()
    client.force_login(user)

    rows = []
    for size in [int(size) for size in args.sizes.split(",")]:
        shopper = make_shopper(size)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE subscribers_event, delivery_message, subscribers_cart, subscribers_order")
        page = render(client, f"/app/subscribers/{shopper.pk}/")
        deep = None
        if size:
            _entries, cursor = timeline(shopper, size=size // 2)  # a cursor halfway down the history
            if cursor is not None:
                deep = render(client, f"/app/subscribers/{shopper.pk}/timeline/?after={quote(str(cursor))}")
        rows.append({"events": size, "messages": size // 2, "page": page, "load_more_halfway": deep})
        print(f"{size:>7} events, {size // 2:>6} messages: page {page['median_ms']} ms "
              f"({page['best_ms']}–{page['worst_ms']}), {page['queries']} queries"
              + (f"; load more halfway {deep['median_ms']} ms, {deep['queries']} queries" if deep else ""),
              flush=True)
    figures = {"machine": machine(), "segments": 40, "runs": RUNS, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
