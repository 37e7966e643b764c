"""The naive scheduler the benchmark compares with: one Celery task per enrolment, sent with a countdown.

When a shopper reaches a wait, the naive design publishes `advance_one` with
`eta` = the end of the wait, and the broker (then the worker, which holds ETA
tasks in memory until they are due) keeps every waiting enrolment as a message.
The task runs the product's own step code for that one enrolment
(journeys.engine.advance), so the comparison is the scheduling, not the steps.
It lives here only: the product never schedules a step this way.
"""
from celery import shared_task

from journeys import engine


@shared_task(name="bench.journeys.naive.advance_one", ignore_result=True)
def advance_one(enrolment_id):
    return engine.advance(enrolment_id)


def schedule_all(enrolment_ids, eta):
    """Publish one countdown task per enrolment (what the naive design does as each shopper starts a wait),
    through one producer connection."""
    with advance_one.app.producer_or_acquire() as producer:
        for pk in enrolment_ids:
            advance_one.apply_async((pk,), eta=eta, producer=producer)
