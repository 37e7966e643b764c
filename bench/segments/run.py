"""The segments benchmark: `.venv/bin/python bench/segments/run.py` (or `make bench-segments`).

Counts segments over 1,000,000 subscribers and 10,000,000 events on PostgreSQL
with the one query subscribers.segments compiles, against the naive evaluation
in the same run (bench/segments/naive.py: load each shopper with their events,
carts, consents and push subscriptions, and test them in Python).

The data is generated inside PostgreSQL (INSERT … SELECT over generate_series,
seeded, so every run sees the same shoppers) and kept between runs: it is made
again only when the requested sizes differ from what the database holds.
Shoppers have a plan (gold / silver / bronze custom attribute), tags, a
category, commerce figures, consents and push subscriptions; events are views,
cart updates and orders over 90 days with a product category.

The naive evaluation can't hold 10,000,000 events in memory, so it runs over the
first `--naive-sample` shoppers (default 10,000) and its time is scaled to the
whole table; both counts are checked against each other on that sample.

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tanbih_bench_segments;
created if missing). `--json PATH` writes the figures.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.ingest.run import ensure_database  # noqa: E402
PYTHON = sys.executable
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tanbih_bench_segments"
EVENT_CHUNK = 1_000_000
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the data's "now" and the segments' (stable across runs)

# The segment the issue sets the target for (an attribute, an event count in a
# window and a commerce condition), then a few more shapes a marketer builds.
SEGMENTS = {
    "attribute + event count in a window + commerce (the target)": {
        "type": "group", "match": "all", "conditions": [
            {"type": "custom_attribute", "key": "plan", "operator": "equals", "value": "gold"},
            {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 3, "within_days": 30,
             "properties": [{"property": "category", "operator": "equals", "value": "shoes"}]},
            {"type": "commerce", "field": "total_spent", "operator": "gte", "value": 300}]},
    "viewed in the last 7 days and did not order": {
        "type": "group", "match": "all", "conditions": [
            {"type": "event", "name": "product_viewed", "operator": "at_least", "within_days": 7},
            {"type": "event", "name": "order_placed", "operator": "did_not", "within_days": 7}]},
    "reachable by push or SMS, Arabic, in a 20% bucket": {
        "type": "group", "match": "all", "conditions": [
            {"type": "group", "match": "any", "conditions": [
                {"type": "reachable", "channel": "push"}, {"type": "reachable", "channel": "sms"}]},
            {"type": "locale", "operator": "in", "value": ["ar"]},
            {"type": "random_bucket", "salt": "bench", "from": 0, "to": 20}]},
    "high-value at risk": {
        "type": "group", "match": "all", "conditions": [
            {"type": "commerce", "field": "orders_count", "operator": "gte", "value": 3},
            {"type": "commerce", "field": "last_order_at", "operator": "not_within_last_days", "value": 45},
            {"type": "tags", "operator": "has_none", "value": ["wholesale"]}]},
}

SUBSCRIBERS_SQL = """
INSERT INTO subscribers_subscriber (
    external_id, email, phone, first_name, last_name, locale, timezone, country, city, gender, attributes, tags,
    subscribed_page_url, subscribed_category, orders_count, total_spent, average_order_value, first_order_at,
    last_order_at, lifecycle_stage, created_at, last_seen_at, updated_at)
SELECT 'c-' || g, 'c' || g || '@bench.example',
       CASE WHEN r.a < 0.6 THEN '+9665' || lpad((g %% 100000000)::text, 8, '0') ELSE '' END,
       '', '', CASE WHEN r.b < 0.6 THEN 'ar' ELSE 'en' END,
       (ARRAY['Asia/Riyadh', 'Asia/Dubai', 'Africa/Cairo', 'Europe/London', 'America/New_York'])[1 + g %% 5],
       (ARRAY['SA', 'AE', 'EG', 'GB', 'US'])[1 + g %% 5], '', '',
       jsonb_build_object('plan', (ARRAY['gold', 'silver', 'bronze'])[1 + floor(r.c * 3)::int],
                          'score', floor(r.d * 100)::int),
       CASE WHEN r.e < 0.1 THEN '["vip"]'::jsonb WHEN r.e < 0.15 THEN '["wholesale"]'::jsonb ELSE '[]'::jsonb END,
       '', (ARRAY['shoes', 'bags', 'phones', 'beauty'])[1 + g %% 4],
       o.orders, o.orders * 120, CASE WHEN o.orders > 0 THEN 120 ELSE 0 END,
       CASE WHEN o.orders > 0 THEN %(now)s - (o.last_days + 30) * interval '1 day' END,
       CASE WHEN o.orders > 0 THEN %(now)s - o.last_days * interval '1 day' END,
       CASE WHEN o.orders = 0 THEN 'new' WHEN o.last_days > 60 THEN 'at_risk' ELSE 'active' END,
       %(now)s - floor(r.f * 365) * interval '1 day', %(now)s - floor(r.h * 60) * interval '1 day', %(now)s
FROM generate_series(1, %(count)s) g,
     LATERAL (SELECT random() a, random() b, random() c, random() d, random() e, random() f, random() h WHERE g > 0) r,
     LATERAL (SELECT (CASE WHEN r.d < 0.5 THEN 0 ELSE floor(r.d * 10)::int - 4 END) orders,
                     floor(r.a * 120)::int last_days) o
"""

EVENTS_SQL = """
INSERT INTO subscribers_event (subscriber_id, name, properties, occurred_at, received_at, source)
SELECT %(first)s + floor(random() * %(subscribers)s)::bigint, e.name,
       jsonb_build_object('category', (ARRAY['shoes', 'bags', 'phones', 'beauty'])[1 + floor(random() * 4)::int],
                          'price', 50 + floor(random() * 400)::int),
       e.happened, e.happened, 'sdk'
FROM generate_series(1, %(count)s) g,
     LATERAL (SELECT CASE WHEN random() < 0.8 THEN 'product_viewed' WHEN random() < 0.8 THEN 'cart_updated'
                          ELSE 'order_placed' END name,
                     %(now)s - random() * interval '90 days' happened
              WHERE g > 0) e
"""

SIDE_TABLES_SQL = [
    """INSERT INTO subscribers_consent (subscriber_id, channel, status, granted_at, source, evidence, updated_at)
       SELECT id, 'sms', CASE WHEN id %% 4 = 0 THEN 'revoked' ELSE 'granted' END, %(now)s, 'import', '{}', %(now)s
       FROM subscribers_subscriber WHERE phone <> ''""",
    """INSERT INTO subscribers_pushsubscription (subscriber_id, endpoint, p256dh, auth, user_agent, browser, page_url,
           category, status, failure_count, last_failure_reason, created_at, updated_at)
       SELECT id, 'https://push.bench.example/' || id, 'k', 'a', '', 'chrome', '', '',
              CASE WHEN id %% 5 = 0 THEN 'expired' ELSE 'active' END, 0, '', %(now)s, %(now)s
       FROM subscribers_subscriber WHERE id %% 3 = 0""",
    """INSERT INTO subscribers_cart (subscriber_id, items, value, currency, status, last_activity_at, abandoned_at,
           created_at)
       SELECT id, '[]', 100, 'SAR', 'abandoned', %(now)s - (id %% 96) * interval '1 hour',
              %(now)s - (id %% 96) * interval '1 hour', %(now)s
       FROM subscribers_subscriber WHERE id %% 7 = 0""",
]


def log(message):
    print(message, flush=True)


def database_url():
    return os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL


def ensure_data(subscribers, events):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM subscribers_subscriber), "
                       "(SELECT reltuples::bigint FROM pg_class WHERE relname = 'subscribers_event')")
        have_subscribers, have_events = cursor.fetchone()
        if have_subscribers == subscribers and abs((have_events or 0) - events) <= events * 0.02:
            log(f"Data already there: {have_subscribers:,} subscribers, ~{have_events:,} events.")
            # A migration may have rewritten the tables since: mark their pages all-visible again, as
            # autovacuum would, so index-only scans need no heap (a no-op when nothing changed).
            cursor.execute("VACUUM (ANALYZE) subscribers_event")
            cursor.execute("VACUUM (ANALYZE) subscribers_subscriber")
            return None
        started = time.perf_counter()
        log(f"Generating {subscribers:,} subscribers and {events:,} events in PostgreSQL…")
        cursor.execute("TRUNCATE subscribers_subscriber, subscribers_event, subscribers_consent, "
                       "subscribers_consentchange, subscribers_pushsubscription, subscribers_cart, "
                       "subscribers_order, subscribers_segment, subscribers_segmentmembership, "
                       "subscribers_anonymousid RESTART IDENTITY CASCADE")
        # Generated rows point at rows generated just before: skip the per-row foreign key triggers.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(SUBSCRIBERS_SQL, {"count": subscribers, "now": NOW})
        for sql in SIDE_TABLES_SQL:
            cursor.execute(sql, {"now": NOW})
        cursor.execute("SELECT min(id) FROM subscribers_subscriber")
        first = cursor.fetchone()[0]
        # Ten million random inserts into four B-trees are slow; building them once afterwards is not.
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'subscribers_event' "
                       "AND indexname NOT IN (SELECT conname FROM pg_constraint "
                       "WHERE conrelid = 'subscribers_event'::regclass)")
        indexes = cursor.fetchall()
        for index_name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{index_name}"')
        done = 0
        while done < events:
            chunk = min(EVENT_CHUNK, events - done)
            cursor.execute(EVENTS_SQL, {"count": chunk, "first": first, "subscribers": subscribers, "now": NOW})
            done += chunk
            log(f"  {done:,} events ({time.perf_counter() - started:.0f}s)")
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        for index_name, definition in indexes:
            cursor.execute(definition)
            log(f"  index {index_name} ({time.perf_counter() - started:.0f}s)")
        cursor.execute("VACUUM (ANALYZE) subscribers_subscriber")
        cursor.execute("VACUUM (ANALYZE) subscribers_event")
        cursor.execute("ANALYZE")
    seconds = time.perf_counter() - started
    log(f"Generated in {seconds:.0f}s.")
    return seconds


def time_count(queryset, repeat, *, jit):
    """Median, best and worst seconds of `repeat` counts after a warm-up, with PostgreSQL's JIT on or off.

    Tanbih's own connections run with JIT off (config/settings.py); "on" shows what that setting saves.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SET jit = {'on' if jit else 'off'}")
    queryset.count()  # warm-up: the first run reads the tables into the cache
    timings = []
    count = None
    for _ in range(repeat):
        started = time.perf_counter()
        count = queryset.count()
        timings.append(time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("RESET jit")
    return count, {"median": statistics.median(timings), "best": min(timings), "worst": max(timings)}


def explain(queryset):
    from django.db import connection

    sql, params = queryset.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) SELECT count(*) FROM ({sql}) s", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed counts per segment, with JIT off (Tanbih's setting) then on, each after a warm-up")
    parser.add_argument("--naive-sample", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--explain", action="store_true", help="print each segment's query plan")
    args = parser.parse_args()

    url = database_url()
    ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from bench.segments.naive import load_facts, matches
    from subscribers.models import Subscriber
    from subscribers.segments import compile_rules

    generated = ensure_data(args.subscribers, args.events)
    sample_ids = list(Subscriber.objects.order_by("pk").values_list("pk", flat=True)[:args.naive_sample])
    sample = Subscriber.objects.filter(pk__in=sample_ids)
    total = Subscriber.objects.count()

    results = []
    for name, rules in SEGMENTS.items():
        matching = Subscriber.objects.filter(compile_rules(rules, NOW))
        count, timings = time_count(matching, args.repeat, jit=False)
        _count, with_jit = time_count(matching, args.repeat, jit=True)
        sql_on_sample = matching.filter(pk__in=sample_ids).count()

        started = time.perf_counter()
        naive_on_sample = sum(1 for facts in load_facts(sample) if matches(rules, facts, NOW))
        naive_seconds = time.perf_counter() - started
        if naive_on_sample != sql_on_sample:
            raise SystemExit(f"{name}: SQL counts {sql_on_sample} on the sample, Python {naive_on_sample}")
        row = {
            "segment": name, "count": count, "sql_seconds": timings, "sql_seconds_jit_on": with_jit,
            "naive_sample": len(sample_ids), "naive_sample_seconds": naive_seconds,
            "naive_seconds_scaled": naive_seconds * total / max(1, len(sample_ids)),
        }
        results.append(row)
        log(f"{name}: {count:,} shoppers; SQL median {timings['median'] * 1000:.0f} ms "
            f"(best {timings['best'] * 1000:.0f}, worst {timings['worst'] * 1000:.0f}; "
            f"with JIT on: median {with_jit['median'] * 1000:.0f} ms); "
            f"naive {naive_seconds:.1f} s for {len(sample_ids):,} shoppers ≈ "
            f"{row['naive_seconds_scaled'] / 60:.1f} min for {total:,}")
        if args.explain:
            log(explain(matching))

    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), current_setting('shared_buffers'), current_setting('work_mem'), "
                       "current_setting('max_parallel_workers_per_gather'), "
                       "(SELECT reltuples::bigint FROM pg_class WHERE relname = 'subscribers_event')")
        version, shared_buffers, work_mem, workers, events = cursor.fetchone()
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "subscribers": total, "events": events,
        "generated_seconds": generated, "postgres": version, "shared_buffers": shared_buffers,
        "work_mem": work_mem, "parallel_workers_per_gather": workers, "cpus": os.cpu_count(),
        "machine": platform.platform(), "segments": results,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log(f"Figures written to {args.json}.")


if __name__ == "__main__":
    main()
