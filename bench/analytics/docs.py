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


def render(report, small=None):
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
            rest = backfill.get("attribution_fill")
            lines.append(f"- `analytics.attribution.sweep` (one order at a time): {a['orders']:,} of {a['of']:,} "
                         f"orders in {a['seconds']:.0f} s, **{a['ms_per_order']:.1f} ms an order** (≈ "
                         f"{a['ms_per_order'] * a['of'] / 3.6e6:.1f} h for all)"
                         + (f"; the other {rest['orders']:,} were attributed by the same rules in one INSERT … "
                            f"SELECT (`bench/analytics/fill.py`, equal to the sweep's rows on a small store) in "
                            f"{rest['seconds']:.0f} s;" if rest else ";"))
        if "roll_up" in backfill:
            r = backfill["roll_up"]
            lines.append(f"- the periodic roll-up (`analytics.rollups.roll_up_all`, batches of 5,000 claimed with "
                         f"SKIP LOCKED): {r['events']:,} events in {r['seconds']:.0f} s, {r['us_per_event']:.0f} µs "
                         f"an event (≈ {1e6 / r['us_per_event']:,.0f} events/s);")
        if "rebuild" in backfill:
            r = backfill["rebuild"]
            if r.get("by") == "fill":
                lines.append(f"- the rollups of all {r['events']:,} events written set-based without marking the "
                             f"events (`bench/analytics/fill.py`, the same rows as `analytics.rollups.rebuild` on a "
                             f"small store): {r['seconds'] / 60:.1f} min, {r['rows']:,} daily rows, subscribers per "
                             f"channel for {r['days']} days by the product's `refresh_subscriber_daily`.")
            else:
                lines.append(f"- `analytics.rollups.rebuild` (`manage.py rebuild_rollups`) over {r['events']:,} "
                             f"events: {r['seconds'] / 60:.1f} min, {r['rows']:,} daily rows, subscribers per channel "
                             f"for {r['days']} days.")
        if small and small.get("backfill", {}).get("rebuild", {}).get("by") != "fill":
            b, d = small["backfill"], small["database"]
            big_events = report["database"]["message_events"]
            lines.append(f"- the whole product backfill on a small store ({d['messages']:,} messages, "
                         f"{d['orders']:,} orders, same generator; run of {small['machine']['date']}): the sweep "
                         f"{b['attribution']['ms_per_order']:.1f} ms an order, `analytics.rollups.rebuild` "
                         f"{b['rebuild']['seconds']:.0f} s for {b['rebuild']['events']:,} events "
                         f"({b['rebuild']['seconds'] * 1e6 / b['rebuild']['events']:.0f} µs an event, ≈ "
                         f"{b['rebuild']['seconds'] / b['rebuild']['events'] * big_events / 3600:.1f} h at "
                         f"{big_events:,} events on this machine).")
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


def write(path, report, start, end, small=None):
    text = path.read_text()
    block = f"{start}\n{render(report, small).rstrip()}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
