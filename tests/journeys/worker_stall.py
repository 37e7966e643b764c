"""Loaded into a test's doomed worker with `--include`: the journey tick stops at a chosen point and waits
to be killed there.

JOURNEY_TEST_STALL=after_claim: the due enrolments are claimed (the lease is committed), nothing ran yet.
JOURNEY_TEST_STALL=after_writing: the send step has written its outbox messages inside the round's
transaction, which is not committed yet.
Either way the worker writes what it holds to $JOURNEY_TEST_DIR/stalled.log, then sleeps.
"""
import os
import time
from pathlib import Path

from journeys import engine

POINT = os.environ.get("JOURNEY_TEST_STALL", "")


def _stall(what):
    with open(Path(os.environ["JOURNEY_TEST_DIR"]) / "stalled.log", "a") as log:
        log.write(what + "\n")
        log.flush()
        os.fsync(log.fileno())
    time.sleep(600)


if POINT == "after_claim":
    _run_due = engine.run_due

    def _run_due_after_a_stall(ids, now):
        _stall(f"claimed:{len(ids)}")
        return _run_due(ids, now)

    engine.run_due = _run_due_after_a_stall
elif POINT == "after_writing":
    _send_many = engine._send_many

    def _send_many_then_stall(enrolments, key, step, now):
        results = _send_many(enrolments, key, step, now)
        _stall(f"written:{len(enrolments)}")
        return results

    engine._send_many = _send_many_then_stall
