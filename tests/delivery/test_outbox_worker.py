"""Exactly once under a killed worker: real `celery -A config worker` processes, SIGKILLed mid-chunk.

The workers, the set-up and the final check run as separate processes against
a database of their own and the configured broker (tests/workers.py). The channel
backend below stands for a provider and appends every send it performs to a file,
which is what the test counts.
"""
import json
import os
import signal
import time
from pathlib import Path

import pytest

from delivery.channels.base import ChannelBackend, SendResult
from tests import workers

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


@pytest.fixture
def isolated_world(tmp_path):
    """A database, a data folder and clean send queues for the subprocesses; -> their environment."""
    sends = tmp_path / "sends"
    sends.mkdir()
    with workers.isolated_world(tmp_path, INAPP_BACKEND=f"{__name__}.SlowProviderBackend",
                                DELIVERY_CHUNK_SIZE=str(CHUNK), OUTBOX_TEST_DIR=str(sends)) as env:
        yield env


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
    first = workers.worker(env, "doomed", tmp_path / "worker1.log", OUTBOX_TEST_STALL_AT="4")
    second = None
    try:
        assert workers.shell(env, SET_UP).split()[-1] == str(AUDIENCE)
        # The fourth send hangs: the worker is killed inside its first chunk.
        workers.wait_for(lambda: len(workers.lines(folder / "starts.log")) >= 4, "the worker to reach the 4th send")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        sent_before_kill = workers.lines(folder / "sends.log")
        assert len(sent_before_kill) == 3

        # The periodic tick, once the lease is over: the rest of the killed chunk goes back to the queue.
        assert "'requeued': 7" in workers.shell({**env, "DELIVERY_SENDING_LEASE_SECONDS": "0"}, TICK)
        second = workers.worker(env, "heir", tmp_path / "worker2.log")
        workers.wait_for(lambda: len(workers.lines(folder / "sends.log")) >= AUDIENCE, "every message to be sent")

        # The killed worker's task delivered again (as the broker would after its visibility timeout),
        # then a new one-message broadcast behind it on the same queue, to know the duplicate was consumed.
        workers.shell(env, "from delivery import tasks; from delivery.models import Message; "
                    "tasks.send_bulk_chunk.delay(list(Message.objects.order_by('pk').values_list('pk', flat=True)))")
        workers.shell(env, "from delivery import outbox; from delivery.models import Message; "
                    "from subscribers.models import Subscriber; "
                    "outbox.fan_out(audience=Subscriber.objects.filter(external_id='kill-0'), channel='inapp', "
                    "template=None, source_type='test', source_id='sentinel', content={'title': 'x'})")
        workers.wait_for(lambda: len(workers.lines(folder / "sends.log")) >= AUDIENCE + 1, "the sentinel message")
    finally:
        workers.stop(first, second)

    sends = workers.lines(folder / "sends.log")
    states = json.loads(workers.shell(env, CHECK).strip().splitlines()[-1])
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
    bulk = workers.worker(env, "bulk", tmp_path / "bulk.log", queues="bulk", OUTBOX_TEST_STALL_AT="1")
    send = workers.worker(env, "send", tmp_path / "send.log", queues="send")
    try:
        assert workers.shell(env, SET_UP).split()[-1] == str(AUDIENCE)
        workers.wait_for(lambda: len(workers.lines(folder / "starts.log")) >= 1, "the broadcast to start")

        code = workers.shell(env, SEND_ORDER_UPDATE).split()[-1]
        workers.wait_for(lambda: code in workers.lines(folder / "sends.log"), "the order update to be sent")
    finally:
        for process in (bulk, send):
            process.kill()
            process.wait(timeout=30)

    states = json.loads(workers.shell(env, CHECK).strip().splitlines()[-1])
    assert states.pop(code) == ["sent", 1]
    assert workers.lines(folder / "sends.log") == [code]
    # The broadcast's first chunk is claimed by the hung worker, the other two still wait: nothing of it went out.
    assert sorted(status for status, _attempts in states.values()) == ["queued"] * (AUDIENCE - CHUNK) + ["sending"] * CHUNK
