"""A journey step runs exactly once under a killed worker: real `celery -A config worker` processes,
one SIGKILLed in the journey tick between claiming due enrolments and committing their send step.

The doomed worker loads tests/journeys/worker_stall.py, which stops the tick at the chosen point;
the heir is a plain worker. Set-up, ticks (what celery-beat sends) and checks run as separate
processes against the test's own database and broker (tests/workers.py).
"""
import json
import signal
from datetime import datetime
from pathlib import Path

import pytest

from tests.workers import isolated_world, lines, shell, stop, wait_for, worker

AUDIENCE = 30
LEASE_SECONDS = 3

SET_UP = f"""
from datetime import timedelta
from django.utils import timezone
from delivery.models import MessageTemplate, TemplateContent
from journeys import engine
from journeys.models import Enrolment, Journey
from subscribers.models import Subscriber
template = MessageTemplate.objects.create(name="Cart", slug="cart")
TemplateContent.objects.create(template=template, channel="inapp", locale="en", title="Your cart is saved",
                               body="{{{{ first_name | default: 'Hello' }}}}, finish your order")
journey = Journey.objects.create(name="Cart", trigger_event="cart_abandoned", status="active")
engine.publish(journey, {{"start": "wait", "steps": {{
    "wait": {{"type": "wait", "minutes": 15, "next": "remind"}},
    "remind": {{"type": "send", "template": "cart", "channels": ["inapp"], "next": "end"}},
    "end": {{"type": "exit"}}}}}})
now = timezone.now()
people = Subscriber.objects.bulk_create([Subscriber(external_id=f"kill-{{n}}", locale="en")
                                         for n in range({AUDIENCE})])
Enrolment.objects.bulk_create([
    Enrolment(journey=journey, version=journey.current_version, subscriber=person, step="wait", is_waiting=True,
              next_run_at=now - timedelta(seconds=1), entered_at=now - timedelta(minutes=15))
    for person in people])
print(now.isoformat())
"""

TICK = "from journeys import tasks; tasks.tick.delay()"

# What celery-beat does: a tick every second until every enrolment has finished (or 120 s).
TICK_UNTIL_DONE = f"""
import time
from journeys import tasks
from journeys.models import Enrolment
for _ in range(120):
    tasks.tick.delay()
    time.sleep(1)
    if Enrolment.objects.filter(status="completed").count() == {AUDIENCE}:
        break
print(Enrolment.objects.filter(status="completed").count())
"""

STATE = """
import json
from django.db.models import Count
from delivery.models import Message
from journeys.models import Enrolment, StepRun
print(json.dumps({
    "enrolments": {str(pk): [status, step, next_run_at.isoformat() if next_run_at else None]
                   for pk, status, step, next_run_at in Enrolment.objects.values_list(
                       "pk", "status", "step", "next_run_at")},
    "runs": [[enrolment, step, n] for enrolment, step, n in StepRun.objects.values_list("enrolment", "step")
             .annotate(n=Count("pk")).values_list("enrolment", "step", "n")],
    "messages": [[m.occurrence, m.source_id, m.channel, m.status] for m in Message.objects.all()],
}))
"""


def _state(env):
    return json.loads(shell(env, STATE).strip().splitlines()[-1])


@pytest.fixture
def journey_world(tmp_path):
    folder = tmp_path / "stall"
    folder.mkdir()
    with isolated_world(tmp_path, JOURNEY_TEST_DIR=str(folder),
                        JOURNEY_CLAIM_LEASE_SECONDS=str(LEASE_SECONDS)) as env:
        yield env


@pytest.mark.worker
@pytest.mark.parametrize("stall", ["after_claim", "after_writing"])
def test_a_worker_killed_between_claiming_and_sending_leaves_every_step_run_exactly_once(journey_world, tmp_path,
                                                                                         stall):
    env = journey_world
    folder = Path(env["JOURNEY_TEST_DIR"])
    doomed = worker(env, "doomed", tmp_path / "doomed.log", "schedule", "--include", "tests.journeys.worker_stall",
                    JOURNEY_TEST_STALL=stall)
    heir = None
    try:
        set_up_at = datetime.fromisoformat(shell(env, SET_UP).split()[-1])
        shell(env, TICK)
        wait_for(lambda: lines(folder / "stalled.log"), "the doomed worker to stop in the tick")
        assert lines(folder / "stalled.log") == [f"{'claimed' if stall == 'after_claim' else 'written'}:{AUDIENCE}"]
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)

        killed = _state(env)
        # Nothing the doomed worker did after its claim is stored: no message, no step run, still at the wait.
        assert killed["messages"] == []
        assert killed["runs"] == []
        assert {(status, step) for status, step, _at in killed["enrolments"].values()} == {("active", "wait")}
        if stall == "after_claim":
            # The claim's lease holds every enrolment: no other tick takes them until it ends.
            assert all(datetime.fromisoformat(at) > set_up_at for _status, _step, at in killed["enrolments"].values())

        heir = worker(env, "heir", tmp_path / "heir.log", "schedule")
        assert shell(env, TICK_UNTIL_DONE).split()[-1] == str(AUDIENCE)
        # More ticks after the end: nothing is due, nothing is written twice.
        shell(env, TICK_UNTIL_DONE)
    finally:
        stop(doomed, heir)

    final = _state(env)
    assert {status for status, _step, _at in final["enrolments"].values()} == {"completed"}
    # Every step ran once per enrolment: the wait, the send, the exit.
    assert sorted(n for _enrolment, _step, n in final["runs"]) == [1] * (3 * AUDIENCE)
    assert {step for _enrolment, step, _n in final["runs"]} == {"wait", "remind", "end"}
    # One message per enrolment and step: its occurrence is "<enrolment>.<visit>".
    occurrences = [occurrence for occurrence, _source, _channel, _status in final["messages"]]
    assert len(occurrences) == AUDIENCE
    assert sorted(occurrence.split(".")[0] for occurrence in occurrences) == sorted(final["enrolments"])
    assert {(channel, status) for _occurrence, _source, channel, status in final["messages"]} == {("inapp", "queued")}
