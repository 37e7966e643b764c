"""The analytics benchmark: `.venv/bin/python bench/analytics/run.py` (or `make bench-analytics`).

Builds (once) a store with 10,000,000 messages in PostgreSQL (bench/analytics/data.py).

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tanbih_bench_analytics; created if
missing). `--rebuild` makes the data again; `--json PATH` writes the figures.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.ingest.run import ensure_database  # noqa: E402

PYTHON = sys.executable
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tanbih_bench_analytics"


def setup(url):
    ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--rebuild", action="store_true", help="make the data again even when it is there")
    args = parser.parse_args()
    setup(os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL)
    from bench.analytics import data

    data.ensure(args.messages, args.subscribers, args.orders, rebuild=args.rebuild)


if __name__ == "__main__":
    main()
