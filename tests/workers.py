"""Helpers for tests that run real `celery -A config worker` processes (marked `worker`) and kill them.

The workers, the set-up and the checks run as separate processes against a
database of their own (a fresh PostgreSQL database, or an SQLite file in SQLite
runs) and the configured broker, whose queues are emptied before and after.
"""
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
# The queues a test's workers read, and the Redis transport's bookkeeping of unacknowledged tasks.
QUEUES = ("bulk", "send", "schedule", "events", "unacked", "unacked_index", "unacked_mutex")


def wait_for(condition, what, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def lines(path):
    return path.read_text().split() if path.exists() else []


def _empty_queues(redis_url):
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).delete(*QUEUES)


@contextmanager
def isolated_world(tmp_path, **environment):
    """A migrated database, a data folder and empty queues for the subprocesses; -> their environment
    (this process's, pointed at them, plus `environment`)."""
    db = settings.DATABASES["default"]
    cleanup = None
    if "postgresql" in db["ENGINE"]:
        import psycopg

        name = f"{db['NAME'].removeprefix('test_')}_killtest"
        admin = dict(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                     password=db["PASSWORD"] or None, dbname="postgres", autocommit=True)
        with psycopg.connect(**admin) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
        url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{admin['host']}:{admin['port']}/{name}"

        def cleanup():
            with psycopg.connect(**admin) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        url = f"sqlite:///{tmp_path / 'kill.sqlite3'}"

    redis_url = settings.REDIS_URL or os.environ.get("REDIS_URL", "")
    _empty_queues(redis_url)
    env = {
        **os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "TANBIH_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(BASE_DIR), "CELERY_TASK_ALWAYS_EAGER": "false", **environment,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    manage(env, "migrate", "--noinput", "-v", "0")
    try:
        yield env
    finally:
        _empty_queues(redis_url)
        if cleanup:
            cleanup()


def manage(env, *args):
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def shell(env, code):
    return manage(env, "shell", "-c", code)


def worker(env, name, log_path, queues="bulk,send", *options, **extra):
    """A solo-pool worker on `queues` (its output in log_path); `options` are more worker arguments."""
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", queues,
         "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip", "-l", "info", *options],
        cwd=BASE_DIR, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT)


def stop(*processes):
    """Terminate the workers still running (kill one that does not stop in 30 s)."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
