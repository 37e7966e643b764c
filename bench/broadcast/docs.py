"""The Broadcast section of docs/benchmarks.md, rendered from one run's figures (bench/results/broadcast.json)."""


def _n(value, digits=0):
    return f"{value:,.{digits}f}"


def render(report, extra=""):
    m = report["machine"]
    t, floor = report["tanbih"], report["floor"]
    naive, dpn = report.get("naive"), report.get("dpn")
    ceiling = report["server_ceiling"]
    ratio_floor = t["cpu_us_per_message"] / floor["cpu_us_per_message"]
    lines = [
        "## Broadcast",
        "",
        f"Measured {m['date']} on this project's machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"PostgreSQL on the same machine, 1-minute load average after the run "
        f"{report['load_average'][0]:.1f} (other work shared the two cores). Re-run with "
        f"`.venv/bin/python bench/broadcast/run.py --write-docs` "
        f"(needs `pip install -r bench/requirements.txt` for django-push-notifications).",
        "",
        f"A web-push broadcast to **{_n(report['subscriptions'])} subscriptions**, each with its own real P-256 key "
        f"pair and auth secret, stored as PushSubscription rows on PostgreSQL, against a light push service on "
        f"127.0.0.1 (`bench/broadcast/push_server.py`: raw asyncio, HTTP/1.1 keep-alive, accepts with 201 and counts, "
        f"never decrypts). Measured alone, that service accepts {_n(ceiling['requests_per_s'])} pushes/s at "
        f"{ceiling['server_cpu_us_per_request']:.1f} µs of its CPU each, so it is not what limits the senders. "
        f"The payload is the rendered Arabic cart reminder the service worker reads (title, body, icon, image, badge, "
        f"two actions, click URL, message code): {t['body_bytes_per_push']:.0f} bytes encrypted.",
        "",
        f"All senders ran as **{report['workers']} processes**. CPU is user + sys of the sending processes "
        f"(all their threads) during sending, divided by accepted pushes; memory is each process's peak RSS (VmHWM).",
        "",
        "| sender | pushes | pushes/s | sender CPU µs / push | × floor | peak RSS / worker |",
        "|---|---:|---:|---:|---:|---:|",
        f"| **Tanbih** `WebPushBackend.send_many`, chunks of {report['chunk']} Message rows read in key order "
        f"| {_n(t['messages'])} | {_n(t['messages_per_s'])} | {t['cpu_us_per_message']:.0f} | {ratio_floor:.1f} "
        f"| {t['peak_rss_mb_per_worker']:.0f} MB |",
    ]
    for label, row in (("(a) naive loop: `pywebpush.webpush()` per subscription", naive),
                       ("(b) django-push-notifications 3.3.0: `WebPushDevice` queryset `.send_message()`", dpn)):
        if row:
            lines.append(f"| {label} | {_n(row['messages'])} | {_n(row['messages_per_s'])} "
                         f"| {row['cpu_us_per_message']:.0f} | {row['cpu_us_per_message'] / floor['cpu_us_per_message']:.1f} "
                         f"| {row['peak_rss_mb_per_worker']:.0f} MB |")
    lines.append(f"| (c) crypto floor: ECDH P-256 + HKDF + AES-128-GCM of one message, `cryptography`, no network "
                 f"| {_n(floor['messages'])} | — | {floor['cpu_us_per_message']:.0f} | 1.0 | — |")
    lines.append("")
    lines.append(
        f"From the start of the fan-out (writing {_n(t['fan_out_rows'])} Message rows with bulk_create, "
        f"{t['fan_out_s']:.1f} s) to the last accepted push: {t['end_to_end_s']:.1f} s, "
        f"{_n(t['end_to_end_messages_per_s'])} messages/s end to end. Every push was accepted "
        f"({_n(t['sent'])} sent, {_n(t['failed'])} failed); each worker signed one VAPID token for the run.")
    if naive:
        speedup = t["messages_per_s"] / naive["messages_per_s"]
        lines += ["", "Targets (2 cores):", "",
                  f"- sender CPU per push ≤ 2× the floor of the same run: {ratio_floor:.1f}× — "
                  f"**{'met' if ratio_floor <= 2 else 'not met'}**;",
                  f"- ≥ 8× the naive loop's pushes/s with the same number of processes: {speedup:.1f}× — "
                  f"**{'met' if speedup >= 8 else 'not met'}** "
                  f"(CPU per push: {naive['cpu_us_per_message'] / t['cpu_us_per_message']:.1f}× less);",
                  f"- < 300 MB per worker however large the audience: {t['peak_rss_mb_per_worker']:.0f} MB — "
                  f"**{'met' if t['peak_rss_mb_per_worker'] < 300 else 'not met'}**."]
    if extra:
        lines += ["", extra.strip()]
    return "\n".join(lines) + "\n"
