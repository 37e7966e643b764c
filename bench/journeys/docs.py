"""The Journeys scheduler section of docs/benchmarks.md, rendered from one run's figures
(bench/results/journeys-<N>.json)."""
import re

TARGET_SECONDS = 60
EVENT_SLACK_SECONDS = 5


def _n(value, digits=0):
    return f"{value:,.{digits}f}"


def _queued_after(row):
    """'48.2 s', or how far it got when the phase gave up, with the time all would take at that pace."""
    if row.get("due_to_last_queued_s") is not None:
        return f"{row['due_to_last_queued_s']:.1f} s"
    waited = row.get("waited_s")
    if not waited or not row["queued"]:
        return f"not done ({_n(row['queued'])} queued)"
    pace = row["queued"] / waited
    return (f"not done: {_n(row['queued'])} queued in {waited:.0f} s ({_n(pace)}/s; all {_n(row['enrolments'])} "
            f"≈ {row['enrolments'] / pace / 60:.0f} min at that pace)")


def _latency(row):
    if "p50_s" not in row:
        return f"| {row['samples']} | — | — | — | {row['missed']} |"
    return (f"| {row['samples']} | {row['p50_s'] * 1000:.0f} ms | {row['p95_s'] * 1000:.0f} ms "
            f"| {row['max_s'] * 1000:.0f} ms | {row['missed']} |")


def render(report):
    m, product = report["machine"], report["product"]
    naive, idle, busy = report.get("naive"), report["events_idle"], product["events_under_load"]
    load = product["load_average"]
    naive_load = naive["load_average"]["mean"] if naive else None
    tick = product["tick_seconds"]
    met = product.get("due_to_last_queued_s") is not None and product["due_to_last_queued_s"] <= TARGET_SECONDS
    lines = [
        "## Journeys scheduler",
        "",
        f"Measured {m['date']} on this project's machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"PostgreSQL and Redis on the same machine. **The machine was shared**: other engineers' test suites and "
        f"benchmarks ran on the same two cores during the run — 1-minute load average "
        f"{report['load_average_before']:.1f} before it, {load['mean']:.1f} on average (at most {load['max']:.1f}) "
        f"while the enrolments were advanced"
        f"{f', {naive_load:.1f} on average during the naive design' if naive_load is not None else ''} "
        f"(a load of 2 keeps both cores busy). Worker CPU time per enrolment is the figure that load inflates least. Re-run with "
        f"`make bench-journeys BENCH_ARGS=--write-docs` (`bench/journeys/run.py`; `--enrolments`, `--workers`, "
        f"`--skip-naive`).",
        "",
        f"**{_n(product['enrolments'])} enrolments due at the same moment**: an abandoned-cart journey whose "
        f"shoppers all reach the end of its 15-minute wait at once; the next step sends an in-app message that "
        f"reads each shopper's cart (first item's title, the restore link), in Arabic or English. The enrolments' "
        f"rows are written straight into PostgreSQL in the state a wait leaves them. The product path is what "
        f"`make run` runs: celery-beat sends `journeys.tasks.tick` every {tick} s (`JOURNEY_TICK_SECONDS`) to "
        f"{product['workers']} Celery prefork worker processes on the `schedule` queue, which claim due enrolments "
        f"in batches of 500 (`SELECT … FOR UPDATE SKIP LOCKED`) and advance them, writing one outbox `Message` "
        f"per enrolment (and its send task on the `send` queue). Measured from the due moment to the last of the "
        f"{_n(product['enrolments'])} message rows queued (the outbox polled every 0.2 s), so the wait for the "
        f"next tick (up to {tick} s) is included.",
        "",
        "| design | all messages queued after the due moment | worker CPU / enrolment | broker memory while "
        "the enrolments wait | peak RSS / worker |",
        "|---|---|---:|---:|---:|",
        f"| **Tanbih**: rows with `next_run_at`, beat's tick, {product['workers']} worker processes "
        f"| {_queued_after(product)} | {product['worker_cpu_us_per_enrolment'] / 1000:.2f} ms "
        f"| nothing: the waits are rows (Redis's whole `used_memory` was {product['broker_memory_waiting_mb']:.1f} MB) "
        f"| {product['peak_rss_mb_per_worker']:.0f} MB |",
    ]
    if naive:
        held = max(naive["broker_memory_published_mb"], naive["broker_memory_held_mb"]) - \
            naive["broker_memory_empty_mb"]
        scale = product["enrolments"] / naive["enrolments"]
        scaled = ""
        late = naive.get("late_by_s") or 0
        if scale > 1:
            pace = naive["queued"] / ((naive.get("due_to_last_queued_s") or naive["waited_s"]) - late)
            scaled = (f"; at that pace {_n(product['enrolments'])} ≈ {product['enrolments'] / pace / 60:.0f} min, "
                      f"and ≈ {held * scale:.0f} MB of broker memory (it grows by "
                      f"{held * 1e6 / naive['enrolments']:,.0f} bytes per waiting task)")
        lines.append(
            f"| naive: one Celery task per enrolment published with `eta` = the due moment "
            f"(`bench/journeys/naive.py`), {naive['workers']} worker processes, **{_n(naive['enrolments'])} "
            f"enrolments**{' (run ' + report['naive_date'] + ')' if report.get('naive_date') else ''} "
            f"| {_queued_after(naive)}{scaled}"
            f"{f' (counted from the due moment; publishing took {late:.0f} s longer than planned, so the worker started that late)' if late else ''}"
            f" | {naive['worker_cpu_us_per_enrolment'] / 1000:.2f} ms "
            f"| +{held:.1f} MB of Redis `used_memory` over before publishing "
            + (f"| {naive['worker_main_rss_mb_holding']:.0f} MB (the worker's main process; the tasks were already "
               f"due when it started, so it held none) |" if late else
               f"| {naive['worker_main_rss_mb_holding']:.0f} MB (the worker's main process, holding every ETA "
               f"task) |"))
    lines += [
        "",
        f"Target: {_n(product['enrolments'])} enrolments due in the same minute all advanced within "
        f"{TARGET_SECONDS} s on this 2-core machine — **{'met' if met else 'not met'}** in this run "
        f"({product.get('ticks_that_sent', '?')} ticks sent the messages).",
    ]
    if naive:
        lines += [
            "",
            f"The naive design published {_n(naive['enrolments'])} tasks ({naive['publish_s']:.0f} s from one "
            f"process, one producer connection) that sit in Redis until a worker takes them — a worker fetches an ETA "
            f"task at once and holds it in its memory until it is due, and in Redis's unacknowledged set meanwhile, so "
            f"a restart or a deploy redelivers them only after the visibility timeout. Each task then locks, advances "
            f"and commits one "
            f"enrolment, so the per-enrolment cost is several statements and a transaction, where the tick pays them "
            f"once per 500: {naive['worker_cpu_us_per_enrolment'] / product['worker_cpu_us_per_enrolment']:.0f}× "
            f"the worker CPU per enrolment here. Over a real 15-minute wait this is every waiting shopper of every journey held as a "
            f"broker message; with Tanbih a waiting enrolment is a row and an index entry.",
        ]
    lines += [
        "",
        f"**An event-triggered first step**: `back_in_stock` events stored through "
        f"`subscribers.services.record_event` (the ingest path: `event_recorded` → `journeys.tasks.handle_event` on "
        f"the `events` queue, one worker process of its own) for a journey whose first step sends an in-app message; from the "
        f"call to the message row queued. Target: within one tick + {EVENT_SLACK_SECONDS} s "
        f"({tick + EVENT_SLACK_SECONDS} s).",
        "",
        "| when | events | p50 | p95 | max (of those queued) | not queued within 60 s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| idle (only the `events` worker running) {_latency(idle)}",
        f"| during the {_n(product['enrolments'])}-enrolment backlog above {_latency(busy)}",
    ]
    limit = tick + EVENT_SLACK_SECONDS

    def verdict(row):
        if row.get("missed") or "max_s" not in row:
            return f"**not met** ({row['missed']} of {row['samples']} not queued within a minute)"
        return f"**{'met' if row['max_s'] <= limit else 'not met'}** (worst {row['max_s']:.1f} s)"

    lines += [
        "",
        f"Idle: {verdict(idle)} — the first step does not wait for the tick: `handle_event` enrols the shopper and "
        f"runs the steps up to the first wait at once. During the backlog: {verdict(busy)}."
        + (" `handle_event` has the `events` queue and its worker process to itself, so no send task or tick of the "
           "backlog is in front of it: what delayed these events is the CPU and the PostgreSQL they share with "
           "the backlog's workers." if busy.get("missed") else ""),
        "",
        "What keeps the tick fast (found by profiling this benchmark with cProfile, one tick in one process):",
        "",
        "- the enrolments' new state is written with one `UPDATE … FROM json_populate_recordset(…)`, the batch as "
        "one JSON parameter: Django's `bulk_update` builds a `CASE WHEN` per field and row (under the profiler it "
        "took 160 of the 210 s a tick of 2,000 enrolments took), and a `VALUES` list still had psycopg parse and "
        "quote a placeholder per value;",
        "- a send step's messages are inserted the same way (`INSERT … SELECT … FROM json_populate_recordset(…) "
        "ON CONFLICT DO NOTHING RETURNING …`): `bulk_create` sends a column as an array whose text psycopg escapes "
        "element by element in Python, the largest cost of writing the messages;",
        "- a message's cart is converted for templates once (its restore link is signed once), and a field's "
        "Liquid render is reused by the values it reads (a title that reads only the first name);",
        "- a batch advances in one transaction with its rows locked: each enrolment runs its steps until it waits, "
        "ends or reaches a send, the enrolments at the same send step send together, then go on — a wait, a send and "
        "an exit cost one locked read and one write of the batch instead of three;",
        "- step runs are inserted with `COPY` (three per enrolment here);",
        "- the carts and orders a batch's messages read come in one query each, by two `IN` lists and the pairs "
        "picked in Python, instead of an `OR` of one term per enrolment.",
    ]
    return "\n".join(lines) + "\n"


def replace_section(text, section, start, end):
    block = f"{start}\n{section.rstrip()}\n{end}"
    if start in text and end in text:
        return re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    return text.rstrip() + "\n\n" + block + "\n"
