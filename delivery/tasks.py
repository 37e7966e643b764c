"""Celery wrappers around the outbox: they take ids and call one function.

Queues: transactional sends on "send", broadcast chunks on "bulk", the periodic
tick on "schedule" (CELERY_TASK_ROUTES), so a broadcast never delays an order
update. Claims happen in the outbox, so a task run twice sends nothing twice.
"""
from celery import shared_task

from . import outbox


@shared_task(name="delivery.tasks.send_transactional", acks_late=True, time_limit=300, soft_time_limit=270)
def send_transactional(message_ids):
    return outbox.deliver(message_ids)


@shared_task(name="delivery.tasks.send_bulk_chunk", acks_late=True, time_limit=600, soft_time_limit=570)
def send_bulk_chunk(message_ids):
    return outbox.deliver(message_ids)


@shared_task(name="delivery.tasks.dispatch_due", time_limit=120, soft_time_limit=100)
def dispatch_due():
    """The periodic tick: rows stuck in "sending" past the lease, then due queued/held rows."""
    reclaimed = outbox.reclaim_stuck()
    return {"reclaimed": reclaimed, "dispatched": outbox.dispatch_due()}
