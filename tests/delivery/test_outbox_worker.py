"""Exactly once under a killed worker: real `celery -A config worker` processes, SIGKILLed mid-chunk.

The workers, the set-up and the final check run as separate processes against
a database of their own (a fresh PostgreSQL database, or an SQLite file in SQLite
runs) and the configured broker. The channel backend below stands for a provider
and appends every send it performs to a file, which is what the test counts.
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from delivery.channels.base import ChannelBackend, SendResult

BASE_DIR = Path(settings.BASE_DIR)
AUDIENCE = 30
CHUNK = 10


class SlowProviderBackend(ChannelBackend):
    """Appends each send to sends.log; the Nth send (OUTBOX_TEST_STALL_AT) hangs so the test can kill the worker."""

    provider = "slowtest"
    resend_safe = True

    def send(self, message):
        folder = Path(os.environ["OUTBOX_TEST_DIR"])
        with open(folder / "starts.log", "a") as starts:
            starts.write(message.code + "\n")
        started = len((folder / "starts.log").read_text().split())
        if started == int(os.environ.get("OUTBOX_TEST_STALL_AT", "0")):
            time.sleep(600)
        time.sleep(0.02)
        with open(folder / "sends.log", "a") as sends:
            sends.write(message.code + "\n")
            sends.flush()
            os.fsync(sends.fileno())
        return SendResult(provider_id=f"slow-{message.code}")


def _wait_for(condition, what, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def _lines(path):
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def isolated_world(tmp_path):
    """A database, a data folder and clean send queues for the subprocesses; -> their environment."""
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
    queues = ("bulk", "send", "unacked", "unacked_index", "unacked_mutex")
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).delete(*queues)
    sends = tmp_path / "sends"
    sends.mkdir()
    env = {
        **os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "TANBIH_DATA_DIR": str(tmp_path / "data"),
        "INAPP_BACKEND": f"{__name__}.SlowProviderBackend", "DELIVERY_CHUNK_SIZE": str(CHUNK),
        "OUTBOX_TEST_DIR": str(sends), "PYTHONPATH": str(BASE_DIR), "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    _manage(env, "migrate", "--noinput", "-v", "0")
    yield env
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).delete(*queues)
    if cleanup:
        cleanup()


def _manage(env, *args):
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _shell(env, code):
    return _manage(env, "shell", "-c", code)


def _worker(env, name, log_path, queues="bulk,send", **extra):
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", queues,
         "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip", "-l", "info"],
        cwd=BASE_DIR, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT)


SET_UP = f"""
from subscribers.models import Subscriber
from subscribers import services
from delivery import outbox
for n in range({AUDIENCE}):
    services.upsert_subscriber(external_id=f"kill-{{n}}")
counts = outbox.fan_out(audience=Subscriber.objects.all(), channel="inapp", template=None, source_type="test",
                        source_id="kill", content={{"title": "Sale", "body": "Today"}})
print(counts["created"])
"""

CHECK = """
import json
from delivery.models import Message
print(json.dumps({m.code: [m.status, m.attempts] for m in Message.objects.all()}))
"""

TICK = """
from delivery import outbox
print(outbox.reclaim_stuck(), outbox.dispatch_due())
"""


@pytest.mark.worker
def test_a_worker_killed_mid_chunk_leaves_every_message_sent_exactly_once(isolated_world, tmp_path):
    env = isolated_world
    folder = Path(env["OUTBOX_TEST_DIR"])
    first = _worker(env, "doomed", tmp_path / "worker1.log", OUTBOX_TEST_STALL_AT="4")
    second = None
    try:
        assert _shell(env, SET_UP).split()[-1] == str(AUDIENCE)
        # The fourth send hangs: the worker is killed inside its first chunk.
        _wait_for(lambda: len(_lines(folder / "starts.log")) >= 4, "the worker to reach the 4th send")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        sent_before_kill = _lines(folder / "sends.log")
        assert len(sent_before_kill) == 3

        # The periodic tick, once the lease is over: the rest of the killed chunk goes back to the queue.
        assert "'requeued': 7" in _shell({**env, "DELIVERY_SENDING_LEASE_SECONDS": "0"}, TICK)
        second = _worker(env, "heir", tmp_path / "worker2.log")
        _wait_for(lambda: len(_lines(folder / "sends.log")) >= AUDIENCE, "every message to be sent")

        # The killed worker's task delivered again (as the broker would after its visibility timeout),
        # then a new one-message broadcast behind it on the same queue, to know the duplicate was consumed.
        _shell(env, "from delivery import tasks; from delivery.models import Message; "
                    "tasks.send_bulk_chunk.delay(list(Message.objects.order_by('pk').values_list('pk', flat=True)))")
        _shell(env, "from delivery import outbox; from delivery.models import Message; "
                    "from subscribers.models import Subscriber; "
                    "outbox.fan_out(audience=Subscriber.objects.filter(external_id='kill-0'), channel='inapp', "
                    "template=None, source_type='test', source_id='sentinel', content={'title': 'x'})")
        _wait_for(lambda: len(_lines(folder / "sends.log")) >= AUDIENCE + 1, "the sentinel message")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()

    sends = _lines(folder / "sends.log")
    states = json.loads(_shell(env, CHECK).strip().splitlines()[-1])
    assert len(states) == AUDIENCE + 1
    assert sorted(sends) == sorted(states), "every message was sent exactly once"
    assert {status for status, _attempts in states.values()} == {"sent"}
    # Only the message in flight at the kill and the rest of its chunk were tried twice.
    assert sum(1 for _status, attempts in states.values() if attempts == 2) == CHUNK - 3


SEND_ORDER_UPDATE = """
from subscribers.models import Subscriber
from delivery import outbox
shopper = Subscriber.objects.get(external_id="kill-7")
message = outbox.send_message(subscriber=shopper, channel="inapp", source_type="api", source_id="order-77",
                              content={"title": "Your order has shipped"}, transactional=True)
print(message.code)
"""


@pytest.mark.worker
def test_an_order_update_is_not_stuck_behind_a_broadcast_backlog(isolated_world, tmp_path):
    env = isolated_world
    folder = Path(env["OUTBOX_TEST_DIR"])
    # The broadcast worker hangs on its first send, with two more chunks waiting behind it.
    bulk = _worker(env, "bulk", tmp_path / "bulk.log", queues="bulk", OUTBOX_TEST_STALL_AT="1")
    send = _worker(env, "send", tmp_path / "send.log", queues="send")
    try:
        assert _shell(env, SET_UP).split()[-1] == str(AUDIENCE)
        _wait_for(lambda: len(_lines(folder / "starts.log")) >= 1, "the broadcast to start")

        code = _shell(env, SEND_ORDER_UPDATE).split()[-1]
        _wait_for(lambda: code in _lines(folder / "sends.log"), "the order update to be sent")
    finally:
        for process in (bulk, send):
            process.kill()
            process.wait(timeout=30)

    states = json.loads(_shell(env, CHECK).strip().splitlines()[-1])
    assert states.pop(code) == ["sent", 1]
    assert _lines(folder / "sends.log") == [code]
    # The broadcast's first chunk is claimed by the hung worker, the other two still wait: nothing of it went out.
    assert sorted(status for status, _attempts in states.values()) == ["queued"] * (AUDIENCE - CHUNK) + ["sending"] * CHUNK
