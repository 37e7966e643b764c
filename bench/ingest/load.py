"""The load generator of the ingest benchmark (run by run.py in its own process).

Two modes, both bounded in count and in time, and only ever aimed at 127.0.0.1:

  batch   send `batches` bodies of `batch_size` events with `concurrency` requests
          in flight (closed loop); report events/s and per-request latency.
  open    send `requests` single events at a steady `rate` per second whatever
          the answers (open loop); latency runs from the moment a request was
          *due*, so a server that falls behind is not hidden (no coordinated
          omission).

Prints one JSON object with the figures.
"""
import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from urllib.parse import urlsplit

import aiohttp

MAX_SECONDS = 120  # hard stop for any one run


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def summary(latencies):
    ms = [v * 1000 for v in latencies]
    return {"p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else None}


class EventMaker:
    """Realistic storefront events (a product view with its product) for known customers."""

    def __init__(self, customers, body_style, seed):
        self.customers = customers
        self.body_style = body_style  # "product": external_id; "baseline": subscriber pk
        self.random = random.Random(seed)

    def event(self):
        external_id, pk = self.random.choice(self.customers)
        product = self.random.randint(1, 5000)
        event = {
            "name": self.random.choice(("product_viewed", "product_viewed", "search", "category_viewed")),
            "event_id": uuid.uuid4().hex,
            "properties": {"product_id": f"p-{product}", "title": f"منتج رقم {product}",
                           "price": f"{self.random.randint(10, 900)}.00", "currency": "SAR",
                           "url": f"https://shop.example/p/{product}", "category": "electronics"},
        }
        if self.body_style == "baseline":
            event["subscriber"] = pk
        else:
            event["external_id"] = external_id
        return event

    def batch_body(self, size):
        events = [self.event() for _ in range(size)]
        return json.dumps(events if self.body_style == "baseline" else {"events": events}).encode()

    def single_body(self):
        return json.dumps(self.event()).encode()


def check_loopback(url):
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing to load {host}: the benchmark only targets this machine")


async def run_batches(session, url, headers, bodies, concurrency, batch_size):
    queue = list(reversed(bodies))
    latencies, statuses, deadline = [], {}, time.monotonic() + MAX_SECONDS

    async def worker():
        while queue and time.monotonic() < deadline:
            body = queue.pop()
            started = time.monotonic()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.monotonic() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    ok = sum(n for status, n in statuses.items() if status in (200, 201))
    return {"mode": "batch", "batch_size": batch_size, "concurrency": concurrency, "requests": len(latencies),
            "statuses": statuses, "seconds": round(elapsed, 3), "events": ok * batch_size,
            "events_per_second": round(ok * batch_size / elapsed, 1), **summary(latencies)}


async def run_open_loop(session, url, headers, bodies, rate):
    latencies, statuses, late_starts = [], {}, []
    start = time.monotonic() + 0.2

    async def send(body, due):
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
        except aiohttp.ClientError as exc:
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
        latencies.append(time.monotonic() - due)

    tasks = []
    for index, body in enumerate(bodies):
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        late_starts.append(max(0.0, time.monotonic() - due))
        if time.monotonic() - start > MAX_SECONDS:
            break
        tasks.append(asyncio.create_task(send(body, due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=MAX_SECONDS)
    elapsed = time.monotonic() - start
    return {"mode": "open", "rate": rate, "requests": len(latencies), "statuses": statuses,
            "seconds": round(elapsed, 3), "achieved_rate": round(len(latencies) / elapsed, 1),
            "generator_max_late_ms": round(max(late_starts) * 1000, 2), **summary(latencies)}


async def main(args):
    check_loopback(args.url)
    customers = json.load(open(args.customers))
    maker = EventMaker(customers, args.body_style, args.seed)
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.mode == "batch":
            bodies = [maker.batch_body(args.batch_size) for _ in range(args.batches)]
            result = await run_batches(session, args.url, headers, bodies, args.concurrency, args.batch_size)
        else:
            bodies = [maker.single_body() for _ in range(int(args.rate * args.seconds))]
            result = await run_open_loop(session, args.url, headers, bodies, args.rate)
    print(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["batch", "open"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--customers", required=True, help="JSON file: [[external_id, pk], ...]")
    parser.add_argument("--body-style", choices=["product", "baseline"], default="product")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(main(parser.parse_args()))
