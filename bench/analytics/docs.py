"""The "Analytics reports" section of docs/benchmarks.md, rendered from one run's figures (bench/results/)."""
import re

TARGET_MS = 300


def _ms(value):
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def _raw(row):
    raw = row.get("raw")
    if not raw:
        return "not run"
    if raw["timed_out"]:
        done = raw.get("completed_runs") or []
        return f"> {raw['timeout_s']:.0f} s (a statement hit the timeout)" + (
            f"; earlier runs {', '.join(f'{s:.0f} s' for s in done)}" if done else "")
    return f"{raw['p50_ms'] / 1000:,.1f} s (median of {raw['runs']})"


def _verdict(row):
    worst = max(row["function"]["warm"]["p95_ms"], (row.get("http") or row["function"])["warm"]["p95_ms"])
    return "met" if worst < TARGET_MS else "**missed**"


def render(report):
    m, db = report["machine"], report["database"]
    load = report["load_average"]
    lines = [
        "## Analytics reports",
        "",
        f"Measured {m['date']} on this project's machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"PostgreSQL {db['postgres']} on the same machine with its packaged settings (`shared_buffers` "
        f"{db['shared_buffers']}, `work_mem` {db['work_mem']}, JIT {db['jit']}). **The machine was shared with other "
        f"jobs during the run** (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end on 2 cores), "
        f"so every figure is slower than on an idle machine. Re-run with `make bench-analytics` "
        f"(`BENCH_ARGS=--write-docs` rewrites this section).",
        "",
        f"The store (`bench/analytics/data.py`, made inside PostgreSQL with INSERT … SELECT and kept between runs): "
        f"{db['subscribers']:,} shoppers, {db['campaigns']} campaigns (variants, a quarter with a 10 % hold-out), "
        f"{db['journeys']} journeys from the recipes, **{db['messages']:,} messages** over 90 days "
        f"({db['message_bytes'] / 2**30:.1f} GiB with indexes) with {db['message_events']:,} message events "
        f"({db['event_bytes'] / 2**30:.1f} GiB), {db['orders']:,} orders and {db['abandoned_carts']:,} abandoned "
        f"carts; {db['database_bytes'] / 2**30:.1f} GiB in all"
        + (f", generated in {report['generated_seconds'] / 60:.0f} min." if report.get("generated_seconds") else "."),
        "",
    ]
    backfill = report.get("backfill") or {}
    if backfill:
        lines.append("Turning analytics on over this history (the backfill):")
        lines.append("")
        if "attribution" in backfill:
            a = backfill["attribution"]
            lines.append(f"- attributing {a['orders']:,} orders with `analytics.attribution.sweep`: "
                         f"{a['seconds'] / 60:.1f} min ({a['ms_per_order']:.1f} ms an order);")
        if "rollups" in backfill:
            r = backfill["rollups"]
            lines.append(f"- `analytics.rollups.rebuild` (`manage.py rebuild_rollups`) over {r['events']:,} events: "
                         f"{r['seconds'] / 60:.1f} min ({r['us_per_event']:.0f} µs an event) into "
                         f"{r['rows']:,} daily rows.")
        for note in backfill.get("notes", []):
            lines.append(f"- {note}")
        lines.append("")
    lines += [
        f"Each report timed {report['reports']['dashboard']['function']['warm']['runs']} times warm after one call "
        f"(p50 / p95) and {report['reports']['dashboard']['function']['cold']['runs']} times cold (each call on a "
        f"new database connection); HTTP is the page through the Django test client, logged in (view, template, "
        f"the charts' JSON). The raw twin computes the same figures from the message events "
        f"(`analytics.reports.raw_*`), under a statement timeout.",
        "",
        "| report | function p50 / p95 | cold p50 | queries (slowest) | page p50 / p95 | page cold p50 | raw twin | < 300 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in report["reports"].values():
        f, q, http = row["function"], row["queries"], row.get("http")
        page = (f"{_ms(http['warm']['p50_ms'])} / {_ms(http['warm']['p95_ms'])}", _ms(http["cold"]["p50_ms"])) \
            if http else ("—", "—")
        lines.append(f"| {row['label']} | {_ms(f['warm']['p50_ms'])} / {_ms(f['warm']['p95_ms'])} "
                     f"| {_ms(f['cold']['p50_ms'])} | {q['count']} ({_ms(q['slowest_ms'])}) | {page[0]} | {page[1]} "
                     f"| {_raw(row)} | {_verdict(row)} |")
    lines.append("")
    lines.append("The slowest query of each, with its plan: "
                 + ", ".join(f"`{row['explain']}`" for row in report["reports"].values()) + ".")
    for paragraph in report.get("findings", []):
        lines += ["", paragraph]
    return "\n".join(lines)


def write(path, report, start, end):
    text = path.read_text()
    block = f"{start}\n{render(report).rstrip()}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
