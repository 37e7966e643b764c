"""Celery wrappers for analytics: they take ids and call analytics.attribution / analytics.rollups."""
from celery import shared_task

from subscribers.models import Event

from . import attribution, rollups

SWEEP_BATCH = 1000
ROLLUP_LIMIT = 200_000


@shared_task(name="analytics.tasks.attribute_order_event", time_limit=120, soft_time_limit=100)
def attribute_order_event(event_id):
    """An `order_placed` event was stored: attribute its order (once; a repeat finds the row)."""
    order_id = (Event.objects.filter(pk=event_id).values_list("properties__order_id", flat=True).first())
    if order_id in (None, ""):
        return None
    row = attribution.attribute_order_by_external_id(order_id)
    return row.kind if row else None


@shared_task(name="analytics.tasks.sweep_attributions", time_limit=600, soft_time_limit=540)
def sweep_attributions():
    """celery-beat, every ANALYTICS_SWEEP_SECONDS: attribute orders without a row (a lost task, an import)."""
    return attribution.sweep_all(batch=SWEEP_BATCH)


@shared_task(name="analytics.tasks.roll_up", time_limit=600, soft_time_limit=540)
def roll_up():
    """celery-beat, every ANALYTICS_ROLLUP_SECONDS: add new message events to the daily rollups."""
    return rollups.roll_up_all(limit=ROLLUP_LIMIT)


@shared_task(name="analytics.tasks.refresh_subscriber_daily", time_limit=600, soft_time_limit=540)
def refresh_subscriber_daily():
    """celery-beat, hourly: subscribers reachable per channel, today and the days not computed yet."""
    return rollups.refresh_subscriber_daily()


@shared_task(name="analytics.tasks.train_predictions", time_limit=3 * 3600, soft_time_limit=3 * 3600 - 120)
def train_predictions(triggered_by="schedule"):
    """celery-beat, nightly at PREDICTIONS_TRAIN_HOUR, and the predictions page's "train now": retrain the
    purchase and churn models (each run recorded) and rescore every shopper, best send hour included."""
    from . import predictions  # scikit-learn is loaded by the worker that trains, not at every import

    runs, counts = predictions.train_and_score(triggered_by=triggered_by)
    return {"runs": [run.pk for run in runs], "scored": counts["subscribers"]}


@shared_task(name="analytics.tasks.refresh_lifts", time_limit=600, soft_time_limit=540)
def refresh_lifts():
    """celery-beat, every ANALYTICS_LIFT_SECONDS: hold-out figures of campaign runs whose window is still open."""
    return rollups.refresh_lifts()
