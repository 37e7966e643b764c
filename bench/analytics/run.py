"""The analytics benchmark: `.venv/bin/python bench/analytics/run.py` (or `make bench-analytics`).

Issue 6 §2: the dashboard and a campaign report render in < 300 ms with
10,000,000 messages in PostgreSQL, compared in the same run with computing them
from raw rows. In one command:

  1. the store (bench/analytics/data.py): 10,000,000 messages over 90 days with
     their events, carts, orders, campaigns and journeys, made inside PostgreSQL
     once and reused (`--rebuild` makes it again);
  2. the backfill, timed, when the analytics tables are empty (or `--backfill`):
     every order attributed by the product's sweep (analytics.attribution), then
     the rollups rebuilt by analytics.rollups.rebuild (what `manage.py
     rebuild_rollups` runs) — the cost of turning analytics on over old data;
  3. analytics.reports.dashboard (the last 30 days) and campaign_report (the
     campaign with the most messages) through the functions and through HTTP
     (the Django test client, logged in: view, template, charts' JSON), warm
     (`--runs` calls, p50 / p95) and cold (`--cold-runs` calls each on a new
     database connection), with each call's query count and its slowest query
     EXPLAIN (ANALYZE, BUFFERS)-ed into bench/results/;
  4. the naive baseline in the same run: the raw_* twins (the same figures from
     the messages' events), `--raw-runs` calls each under a statement timeout of
     `--raw-timeout` seconds, reported as "> N s" when they hit it. The timeout is per
     statement: at 10,000,000 messages the dashboard's twin ran past 5 minutes
     without any one statement reaching 120 s (`--raw-runs 0` leaves the twins out).

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tanbih_bench_analytics; created and
migrated if missing). `--json PATH` also writes the figures elsewhere; `--write-docs` replaces the "Analytics
reports" section of docs/benchmarks.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.ingest.run import ensure_database, load_average, machine  # noqa: E402

PYTHON = sys.executable
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tanbih_bench_analytics"
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- analytics:start -->", "<!-- analytics:end -->"
WINDOW_DAYS = 30
BENCH_USER = "bench-analytics"


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def setup(url):
    ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()


# --- Backfill -------------------------------------------------------------------------------

def backfill(args):
    """Attributions and rollups for the store, when missing (or `--backfill`): -> the figures.

    Timed product paths: analytics.attribution.sweep (on `--sample-orders` orders
    unless `--product-backfill`: one order at a time, hours for 300,000 here; the
    rest are written set-based by bench/analytics/fill.py, checked against the
    product's rows by `--check-fill`), the incremental roll-up
    (analytics.rollups.roll_up_all on `--sample-events` events: what the periodic
    task sustains) and, with `--product-backfill`, analytics.rollups.rebuild
    (`manage.py rebuild_rollups`) over every event — it marks each event rolled
    up, hours for 33,000,000 here; without it the rollups are written set-based
    by bench/analytics/fill.py (the same rows: `--check-fill`).
    """
    from analytics import attribution, rollups
    from analytics.models import Attribution, DailyRollup, SubscriberDaily
    from bench.analytics import fill
    from delivery.models import MessageEvent
    from subscribers.models import Order

    if not (args.backfill or args.rebuild) and DailyRollup.objects.exists() and SubscriberDaily.objects.exists() \
            and not Order.objects.filter(attribution__isnull=True).exists():
        log("Attributions and rollups already there.")
        return {}
    figures = {"product_backfill": args.product_backfill}
    with connection_cursor() as cursor:
        cursor.execute("TRUNCATE analytics_attribution, analytics_dailyrollup, analytics_reasonrollup, "
                       "analytics_subscriberdaily")
    orders, events = Order.objects.count(), MessageEvent.objects.count()

    limit = None if args.product_backfill else args.sample_orders
    log(f"analytics.attribution.sweep over {limit or orders:,} of {orders:,} orders…")
    started, done = time.perf_counter(), 0
    while limit is None or done < limit:
        made = attribution.sweep(limit=min(1000, (limit or orders) - done))
        done += made
        if not made:
            break
    seconds = time.perf_counter() - started
    figures["attribution"] = {"orders": done, "of": orders, "seconds": seconds,
                              "ms_per_order": seconds * 1000 / max(1, done)}
    log(f"  {done:,} orders in {seconds:.1f}s: {figures['attribution']['ms_per_order']:.1f} ms an order "
        f"(all {orders:,}: ≈ {figures['attribution']['ms_per_order'] * orders / 3.6e6:.1f} h)")
    if not args.product_backfill:
        started = time.perf_counter()
        written = fill.attribute_rest()
        figures["attribution_fill"] = {"orders": written, "seconds": time.perf_counter() - started}
        log(f"  the other {written:,} set-based (bench/analytics/fill.py) in "
            f"{figures['attribution_fill']['seconds']:.0f}s")

    if args.sample_events:
        log(f"analytics.rollups.roll_up_all over {args.sample_events:,} message events (the periodic task)…")
        started = time.perf_counter()
        rolled = rollups.roll_up_all(limit=args.sample_events)
        seconds = time.perf_counter() - started
        figures["roll_up"] = {"events": rolled, "seconds": seconds, "us_per_event": seconds * 1e6 / max(1, rolled)}
        log(f"  {rolled:,} events in {seconds:.1f}s: {figures['roll_up']['us_per_event']:.0f} µs an event")

    started = time.perf_counter()
    if args.product_backfill:
        log(f"analytics.rollups.rebuild over {events:,} message events…")
        rollups.rebuild()
    else:
        log(f"The rollups of {events:,} message events set-based (bench/analytics/fill.py)…")
        fill.roll_up_everything()
    seconds = time.perf_counter() - started
    figures["rebuild"] = {"events": events, "seconds": seconds, "rows": DailyRollup.objects.count(),
                          "days": SubscriberDaily.objects.values("day").distinct().count(),
                          "by": "analytics.rollups.rebuild" if args.product_backfill else "fill"}
    log(f"  {seconds:.0f}s: {figures['rebuild']['rows']:,} daily rows, subscribers per channel for "
        f"{figures['rebuild']['days']} days")
    figures["rows"] = {"attributions": Attribution.objects.count(), "daily": DailyRollup.objects.count()}
    return figures


def connection_cursor():
    from django.db import connection

    return connection.cursor()


# --- Timing ---------------------------------------------------------------------------------

def _percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(seconds):
    return {"runs": len(seconds), "p50_ms": statistics.median(seconds) * 1000,
            "p95_ms": _percentile(seconds, 0.95) * 1000, "best_ms": min(seconds) * 1000,
            "worst_ms": max(seconds) * 1000}


def timed(call):
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(call, runs, cold_runs, budget):
    """Warm: one call to warm up, then `runs` timed calls; cold: `cold_runs` calls each on a new connection.
    A slow report gets fewer calls, so that each phase stays within about `budget` seconds (at least 3)."""
    from django.db import connection

    first = timed(call)
    runs, cold_runs = (max(3, min(n, int(budget / max(first, 1e-3)))) for n in (runs, cold_runs))
    warm = [timed(call) for _ in range(runs)]
    cold = []
    for _ in range(cold_runs):
        connection.close()
        cold.append(timed(call))
    return {"warm": summary(warm), "cold": summary(cold)}


def queries_of(call):
    """The call's queries: (count, total ms, the slowest one's SQL and ms)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    timings = [(float(query["time"]), query["sql"]) for query in captured.captured_queries]
    slowest = max(timings, default=(0.0, ""))
    return {"count": len(timings), "total_ms": sum(t for t, _sql in timings) * 1000,
            "slowest_ms": slowest[0] * 1000, "slowest_sql": slowest[1]}


def explain(sql, name):
    """EXPLAIN (ANALYZE, BUFFERS) of one captured query, saved as bench/results/analytics-explain-<name>.txt."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    path = RESULTS / f"analytics-explain-{name}.txt"
    path.write_text(f"-- the slowest query of {name}\n{sql}\n\n{plan}\n")
    return path.relative_to(ROOT).as_posix()


def raw(call, runs, timeout):
    """The raw_* twin `runs` times under a statement timeout: its timings, or the timeout when it hit it."""
    from django.db import OperationalError, connection

    seconds = []
    with connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = '{int(timeout)}s'")
    try:
        for _ in range(runs):
            started = time.perf_counter()
            try:
                call()
            except OperationalError as error:
                if "statement timeout" not in str(error):
                    raise
                log(f"  raw: a statement hit the {timeout:.0f} s timeout after {time.perf_counter() - started:.0f}s")
                return {"timed_out": True, "timeout_s": timeout, "after_s": time.perf_counter() - started,
                        "completed_runs": seconds}
            seconds.append(time.perf_counter() - started)
            log(f"  raw: {seconds[-1]:.1f}s")
    finally:
        connection.close()  # a cancelled statement leaves nothing to reuse; the next call connects afresh
    return {"timed_out": False, "timeout_s": timeout, **summary(seconds)}


# --- The reports ----------------------------------------------------------------------------

def largest_campaign():
    """The campaign with the most messages (all its variants), from the rollups."""
    from django.db.models import Sum

    from analytics.models import DailyRollup
    from campaigns.models import Campaign

    per_campaign = {}
    for row in DailyRollup.objects.filter(source_type="campaign").values("source_id").annotate(n=Sum("targeted")):
        pk = int(row["source_id"].split(":", 1)[0])
        per_campaign[pk] = per_campaign.get(pk, 0) + row["n"]
    pk, messages = max(per_campaign.items(), key=lambda item: item[1])
    return Campaign.objects.get(pk=pk), messages


def http_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _created = get_user_model().objects.get_or_create(username=BENCH_USER,
                                                          defaults={"is_staff": True, "is_superuser": True})
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    return client


def page_urls(campaign):
    """The pages of the two reports, or None where this checkout has no such page."""
    from django.urls import NoReverseMatch, reverse

    urls = {}
    for name, (view, args, query) in {"dashboard": ("analytics:dashboard", [], f"?days={WINDOW_DAYS}"),
                                      "campaign": ("analytics:campaign-report", [campaign.pk], "")}.items():
        try:
            urls[name] = reverse(view, args=args) + query
        except NoReverseMatch:
            urls[name] = None
    return urls


def page(client, url):
    def call():
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code}")
        return response
    return call


def run_reports(args):
    from django.utils import timezone

    from analytics import reports

    campaign, messages = largest_campaign()
    urls = page_urls(campaign)
    end = timezone.now()
    start = end - timedelta(days=WINDOW_DAYS)
    client = http_client()
    subjects = {
        "dashboard": {"label": f"dashboard, last {WINDOW_DAYS} days", "call": lambda: reports.dashboard(start, end),
                      "raw": lambda: reports.raw_dashboard(start, end),
                      "url": urls["dashboard"]},
        "campaign": {"label": f"campaign report: “{campaign.name}”, {messages:,} messages, "
                              f"{campaign.variants.count()} variants, hold-out {campaign.holdout_percent} %",
                     "call": lambda: reports.campaign_report(campaign),
                     "raw": lambda: reports.raw_campaign_report(campaign),
                     "url": urls["campaign"]},
    }
    results = {}
    for name, subject in subjects.items():
        log(f"{subject['label']}: the function…")
        row = {"label": subject["label"], "function": measure(subject["call"], args.runs, args.cold_runs, args.budget)}
        row["queries"] = queries_of(subject["call"])
        row["explain"] = explain(row["queries"].pop("slowest_sql"), name)
        log(f"  p50 {row['function']['warm']['p50_ms']:.0f} ms, p95 {row['function']['warm']['p95_ms']:.0f} ms, "
            f"cold p50 {row['function']['cold']['p50_ms']:.0f} ms; {row['queries']['count']} queries, "
            f"slowest {row['queries']['slowest_ms']:.0f} ms")
        if subject["url"]:
            log(f"{subject['label']}: GET {subject['url']}…")
            row["http"] = {"url": subject["url"], **measure(page(client, subject["url"]), args.runs, args.cold_runs,
                                                           args.budget)}
            row["http"]["bytes"] = len(page(client, subject["url"])().content)
            log(f"  p50 {row['http']['warm']['p50_ms']:.0f} ms, p95 {row['http']['warm']['p95_ms']:.0f} ms, "
                f"cold p50 {row['http']['cold']['p50_ms']:.0f} ms")
        else:
            log("  (no report pages in this checkout: the HTTP timing is left out)")
        if args.raw_runs:
            log(f"{subject['label']}: the raw twin (the naive baseline)…")
            row["raw"] = raw(subject["raw"], args.raw_runs, args.raw_timeout)
        results[name] = row
    return results


def database_facts():
    from django.db import connection

    from bench.analytics import data

    with connection.cursor() as cursor:
        cursor.execute("SELECT split_part(version(), ' ', 2), current_setting('shared_buffers'), "
                       "current_setting('work_mem'), current_setting('jit'), "
                       "pg_total_relation_size('delivery_message'), pg_total_relation_size('delivery_messageevent'), "
                       "(SELECT pg_total_relation_size(c.oid) FROM pg_class c WHERE relname = 'analytics_dailyrollup'),"
                       " (SELECT count(*) FROM analytics_dailyrollup)")
        keys = ("postgres", "shared_buffers", "work_mem", "jit", "message_bytes", "event_bytes", "rollup_bytes",
                "rollup_rows")
        return {**dict(zip(keys, cursor.fetchone())), **data.counts()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--rebuild", action="store_true", help="make the data again even when it is there")
    parser.add_argument("--backfill", action="store_true", help="attribute and roll up again even when done")
    parser.add_argument("--product-backfill", action="store_true",
                        help="attribute and roll up everything with the product's functions (hours at 10M)")
    parser.add_argument("--sample-orders", type=int, default=300, help="orders attributed by the product's sweep")
    parser.add_argument("--sample-events", type=int, default=50_000,
                        help="events rolled up incrementally before the rebuild (0: skip)")
    parser.add_argument("--check-fill", action="store_true",
                        help="compare bench/analytics/fill.py's rows with the product's (on a small store) and stop")
    parser.add_argument("--runs", type=int, default=20, help="warm calls of each report (p50 / p95)")
    parser.add_argument("--budget", type=float, default=60,
                        help="seconds for the warm calls of one report (a slow report gets fewer, at least 3)")
    parser.add_argument("--cold-runs", type=int, default=5, help="calls of each report on a new connection")
    parser.add_argument("--raw-runs", type=int, default=3, help="calls of each raw twin (0: skip)")
    parser.add_argument("--raw-timeout", type=float, default=120, help="statement timeout of the raw twins (s)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--write-docs", action="store_true", help="replace the section of docs/benchmarks.md")
    args = parser.parse_args()

    setup(os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL)
    from bench.analytics import data

    _counts, generated = data.ensure(args.messages, args.subscribers, args.orders, rebuild=args.rebuild)
    if args.check_fill:
        from bench.analytics import fill

        for line in fill.check_against_product():
            log(line)
        return
    report = {"machine": machine(), "generated_seconds": generated,
              "backfill": backfill(args)}
    report["reports"] = run_reports(args)
    report["database"] = database_facts()
    report["load_average"] = [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    report["load_average_during"] = load_average()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"analytics-{report['database']['messages']}.json"
    for target in filter(None, [path, args.json]):
        target.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"Figures written to {path.relative_to(ROOT)}.")
    if args.write_docs:
        from bench.analytics.docs import write

        small = sorted(RESULTS.glob("analytics-*.json"), key=lambda path: int(path.stem.split("-")[1]))
        small = json.loads(small[0].read_text()) if small and small[0] != path else None
        write(DOCS, report, START, END, small)
        log(f"{DOCS.relative_to(ROOT)} updated.")


if __name__ == "__main__":
    main()
