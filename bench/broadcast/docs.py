"""The Broadcast section of docs/benchmarks.md, rendered from one run's figures (bench/results/broadcast.json)."""


def _n(value, digits=0):
    return f"{value:,.{digits}f}"


def render(report, celery=None, million=None, extra="", million_text=""):
    m = report["machine"]
    t, floor = report["tanbih"], report["floor"]
    send = t.get("send_only") or t
    naive, dpn = report.get("naive"), report.get("dpn")
    ceiling = report["server_ceiling"]
    ratio_floor = send["cpu_us_per_message"] / floor["cpu_us_per_message"]
    load = report["load_average"][0]
    # The benchmark's own processes (senders, push service, PostgreSQL) account for a load of about 3.
    shared = " (other work shared the two cores)" if load > 4 else ""
    lines = [
        "## Broadcast",
        "",
        f"Measured {m['date']} on this project's machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"PostgreSQL on the same machine, 1-minute load average after the run "
        f"{load:.1f}{shared}. Re-run with "
        f"`make bench-broadcast BENCH_ARGS=--write-docs` (it installs bench/requirements.txt, i.e. "
        f"django-push-notifications, for the comparison only; `--pipeline celery` measures the outbox path below).",
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
        f"| **Tanbih** `WebPushBackend.send_many`, chunks of {report['chunk']} outbox rows read in key order "
        f"(one `values_list` query each) "
        f"| {_n(send['messages'])} | {_n(send['messages_per_s'])} | {send['cpu_us_per_message']:.0f} "
        f"| {ratio_floor:.2f} | {send['peak_rss_mb_per_worker']:.0f} MB |",
    ]
    for label, row in (("(a) naive loop: `pywebpush.webpush()` per subscription", naive),
                       ("(b) django-push-notifications 3.3.0: `WebPushDevice` queryset `.send_message()`", dpn)):
        if row:
            lines.append(f"| {label} | {_n(row['messages'])} | {_n(row['messages_per_s'])} "
                         f"| {row['cpu_us_per_message']:.0f} | {row['cpu_us_per_message'] / floor['cpu_us_per_message']:.1f} "
                         f"| {row['peak_rss_mb_per_worker']:.0f} MB |")
    runs = floor.get("runs_us")
    measured = (f" (the lower of {len(runs)} measurements in the run: {', '.join(f'{r:.0f}' for r in runs)} µs)"
                if runs and len(runs) > 1 else "")
    lines.append(f"| (c) crypto floor: ECDH P-256 + HKDF + AES-128-GCM of one message, `cryptography`, no network"
                 f"{measured} "
                 f"| {_n(floor['messages'])} | — | {floor['cpu_us_per_message']:.0f} | 1.0 | — |")
    lines.append("")
    lines.append(
        f"Tanbih's row is the send phase with the rows written (pushes/s between the first and the last push the "
        f"service accepted). From the start of the fan-out to the last accepted push, with the rows written in "
        f"chunks of {report['chunk']} (bulk_create, subscriptions walked in key order) and each chunk handed to the "
        f"senders as soon as it was committed: {_n(t['fan_out_rows'])} messages in {t['end_to_end_s']:.1f} s, "
        f"**{_n(t['end_to_end_messages_per_s'])} messages/s end to end**, sender CPU {t['cpu_us_per_message']:.0f} µs "
        f"per push, peak RSS {t['peak_rss_mb_per_worker']:.0f} MB per worker. That figure is bound by writing the "
        f"outbox rows, not by sending: the writer spent {t['fan_out_cpu_us_per_message']:.0f} µs of CPU per row and "
        f"PostgreSQL shares the same two cores. Every push was accepted ({_n(t['sent'])} sent, {_n(t['failed'])} "
        f"failed); each worker signed one VAPID token for the whole run; the push service used "
        f"{t['server_cpu_us_per_push']:.0f} µs of CPU per push.")
    if naive:
        speedup = send["messages_per_s"] / naive["messages_per_s"]
        lines += ["", "Targets (2 cores):", "",
                  f"- sender CPU per push ≤ 2× the floor of the same run: {ratio_floor:.2f}× — "
                  f"**{'met' if ratio_floor <= 2 else 'not met'}** at a 1-minute load average of {load:.1f} "
                  f"on 2 cores;",
                  f"- ≥ 8× the naive loop's pushes/s with the same number of processes: {speedup:.1f}× — "
                  f"**{'met' if speedup >= 8 else 'not met'}** "
                  f"(CPU per push: {naive['cpu_us_per_message'] / send['cpu_us_per_message']:.1f}× less);",
                  f"- < 300 MB per worker however large the audience: {send['peak_rss_mb_per_worker']:.0f} MB — "
                  f"**{'met' if send['peak_rss_mb_per_worker'] < 300 else 'not met'}**."]
    before = max(w.get("rss_before_sending_mb", 0) for w in send["workers"])
    lines += [
        "",
        f"Memory does not grow with the audience: a sender holds one chunk of {report['chunk']} rows at a time "
        f"(the backend keeps no per-message state), so its peak RSS went from {before:.0f} MB with Django loaded "
        f"to {send['peak_rss_mb_per_worker']:.0f} MB while sending {_n(send['messages'])} pushes, whatever comes "
        f"after; the fan-out walks subscriptions in key order and holds one chunk too.",
        "",
        "How the floor is kept honest: it is measured twice in the run — first, and again after everything else — "
        "and the lower figure is the yardstick; the tables a phase fills are vacuumed and analysed before the next "
        "phase, with autovacuum off for them in the benchmark's database, so it can't start in the middle of a "
        "measurement. This machine is a shared VM whose speed drifts between runs (the floor alone measured "
        "127–204 µs on the same day), so only the ratio within one run means anything. The senders run with "
        "`gc.freeze()` after start-up, as Celery worker processes do (`config/celery.py`).",
        "",
        "What keeps the sender near the floor (found by profiling this benchmark):",
        "",
        "- the encryption is written with `cryptography` directly (one ECDH, HKDF as single HMAC blocks, one "
        "AES-GCM record), which costs what the floor costs; pywebpush goes through http_ece and more copies;",
        "- the VAPID JWT is signed once per push-service origin and reused until an hour before it expires "
        "(`delivery/vapid.py`), instead of an ECDSA signature per push;",
        "- each push is one HTTP/1.1 exchange written in one `send` and read with a minimal parser, on a "
        "connection taken from `GuardedPushSession`'s own pool (connect-time address check, TLS verification, "
        "never a redirect). Measured alone on this machine, one keep-alive POST of a 300-byte body cost ~510 µs of "
        "CPU through `session.post` (~680 µs through a plain `requests.Session`) and ~210 µs through urllib3's "
        "`urlopen`;",
        f"- a batch's exchanges run from one thread: up to {report.get('sends_in_flight', 32)} in flight per "
        "process on non-blocking keep-alive connections, waited on with a selector (epoll); only opening a "
        "connection (address check, TLS handshake) happens in a helper thread. With a thread per exchange in "
        "flight, `send_many` cost ~580 µs of CPU per push here at 5,000 pushes, about 300 of them in GIL hand-offs "
        "and ~11 context switches per push; the sending loop now costs ~45–60 µs per push beside the encryption "
        "(send, answer, selector; measured alone with a prepared request);",
        "- the messages of a chunk with the same content and locale share the payload's JSON and the request's "
        "header lines: only the message code (put between them) and the encryption differ from push to push;",
        "- the senders read each chunk with one `values_list` query of the six columns a push needs, without a "
        "model instance per row: ~17 µs per row here, against ~40–60 µs for `Message` instances loaded with "
        "`only()` (and ~120–210 µs for the whole rows `outbox.deliver` reads, below).",
    ]
    if million:
        big = million["tanbih"]
        lines += ["", (
            f"**{_n(million['subscriptions'])} subscriptions** (run {million['machine']['date']}, same command with "
            f"`--subscriptions 1000000 --skip-baselines --skip-send-only`): {_n(big['messages'])} pushes accepted "
            f"({_n(big['failed'])} failed) in {big['end_to_end_s']:.0f} s from the start of the fan-out, "
            f"{_n(big['end_to_end_messages_per_s'])} messages/s end to end, sender CPU "
            f"{big['cpu_us_per_message']:.0f} µs per push, **peak RSS {big['peak_rss_mb_per_worker']:.0f} MB per "
            f"worker** — the same as for 100,000.")]
    elif million_text:
        lines += ["", million_text]
    else:
        lines += ["", "A 1,000,000-subscription run is `--subscriptions 1000000 --skip-baselines --skip-send-only`; "
                      "by the chunking above, its workers peak at the same size."]
    if celery:
        lines += ["", *render_celery(celery, floor, t)]
    if extra:
        lines += ["", extra.strip()]
    return "\n".join(lines) + "\n"


def render_celery(run, floor, backend):
    c = run["tanbih"]
    cpu = c["cpu_us_per_message"]
    return [
        "### The whole product path: outbox, Celery, policy",
        "",
        f"`--pipeline celery`, run {run['machine']['date']} with {_n(run['subscriptions'])} subscriptions: "
        f"`delivery.outbox.fan_out` walks the audience in key order, writes Message rows with bulk_create and "
        f"enqueues chunks of ids on the `bulk` queue (Redis) after each commit; {run['workers']} Celery prefork "
        f"worker processes run `outbox.deliver` per chunk (claim by conditional UPDATE, `policy.check_many`, "
        f"`WebPushBackend.send_many`, then record each outcome).",
        "",
        "| path | pushes | messages/s end to end | worker CPU µs / push | × floor | fan-out CPU µs / message "
        "| peak RSS / worker |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| fan_out → bulk queue → deliver | {_n(c['messages'])} | {_n(c['end_to_end_messages_per_s'])} | {cpu:.0f} "
        f"| {cpu / floor['cpu_us_per_message']:.1f} | {c['fan_out_cpu_us_per_message']:.0f} "
        f"| {c['peak_rss_mb_per_worker']:.0f} MB |",
        "",
        f"Outcomes: {', '.join(f'{status} {_n(n)}' for status, n in sorted(c['statuses'].items()))}. "
        f"Of the worker's {cpu:.0f} µs per push, the send itself (with its light row read) is the "
        f"{(backend.get('send_only') or backend)['cpu_us_per_message']:.0f} µs measured above; the rest "
        f"(~{max(0, cpu - (backend.get('send_only') or backend)['cpu_us_per_message']):.0f} µs) is the outbox's work "
        f"around it: the claim, reading whole Message rows with their subscriber, the policy check, recording the "
        f"outcomes and Celery's own task handling. "
        f"End to end, this path is bound by the fan-out writing rows on the same two cores as PostgreSQL "
        f"and the workers.",
    ]
