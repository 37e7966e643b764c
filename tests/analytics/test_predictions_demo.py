"""The models train on the demo store's data, record their evaluation and score every shopper; the scores
work in segments. The store is loaded and trained once for the module (it takes a while)."""
from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from analytics import predictions
from analytics.models import PredictionKind, PredictionRun, PredictionStatus
from subscribers.demo import flush_store, load_demo_store
from subscribers.models import ApiKey, Segment, Subscriber
from subscribers.segments import compile_rules

pytestmark = pytest.mark.django_db

UTC = ZoneInfo("UTC")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_store(django_db_setup, django_db_blocker):
    """The demo store (1,500 shoppers, 90 days of behaviour) trained and scored once for the module."""
    with django_db_blocker.unblock():
        load_demo_store(subscribers=1500, now=NOW)
        runs, counts = predictions.train_and_score(now=NOW, triggered_by="test")
        yield {run.kind: run for run in runs}, counts
        flush_store()
        ApiKey.objects.all().delete()
        Segment.objects.all().delete()  # the starter segments
        PredictionRun.objects.all().delete()


def test_the_models_train_on_the_demo_store_and_record_their_evaluation(demo_store):
    runs, _counts = demo_store
    for kind in (PredictionKind.PURCHASE, PredictionKind.CHURN):
        run = PredictionRun.objects.get(pk=runs[kind].pk)
        assert run.status == PredictionStatus.SUCCEEDED, run.error
        assert run.rows > run.positives > 0 and run.test_rows > run.test_positives > 0
        assert len(run.snapshots) >= 2
        assert run.features == list(predictions.FEATURES)
        assert run.params["horizon_days"] == {"purchase": 7, "churn": 60}[kind]
        assert 0.5 < run.auc <= 1 and 0 <= run.baseline_auc <= 1
        assert run.model and run.finished_at >= run.started_at


def test_every_demo_shopper_is_scored_and_churn_risk_only_for_customers(demo_store):
    _runs, counts = demo_store
    everyone = Subscriber.objects.count()

    assert counts["subscribers"] == everyone
    assert Subscriber.objects.filter(purchase_likelihood__isnull=False, scores_updated_at=NOW).count() == everyone
    customers = Subscriber.objects.filter(orders__placed_at__lt=NOW).distinct()
    assert Subscriber.objects.filter(churn_risk__isnull=False).count() == customers.count() == counts["churn"]
    assert not Subscriber.objects.filter(churn_risk__isnull=False, orders=None).exists()
    assert Subscriber.objects.filter(purchase_likelihood__gt=Decimal("0.5")).exists()


def test_recent_buyers_are_likelier_to_buy_than_shoppers_who_never_came_back(demo_store):
    scores = dict(Subscriber.objects.values_list("pk", "purchase_likelihood"))
    recent = Subscriber.objects.filter(last_order_at__gte=NOW - timedelta(days=7)).values_list("pk", flat=True)
    idle = Subscriber.objects.filter(orders=None, last_seen_at__lt=NOW - timedelta(days=45)).values_list(
        "pk", flat=True)

    average = lambda ids: sum(scores[pk] for pk in ids) / len(ids)  # noqa: E731
    assert recent and idle
    assert average(recent) > average(idle)


def test_scores_pick_a_high_value_churn_risk_segment(demo_store):
    rules = {"type": "group", "match": "all", "conditions": [
        {"type": "prediction", "field": "churn_risk", "operator": "gt", "value": 0.5},
        {"type": "commerce", "field": "total_spent", "operator": "gte", "value": 200}]}

    picked = Subscriber.objects.filter(compile_rules(rules, NOW))

    assert picked.exists()
    assert all(s.churn_risk > Decimal("0.5") and s.total_spent >= 200 for s in picked)


def test_the_command_trains_scores_and_can_run_only_once(demo_store):
    out = StringIO()
    call_command("train_predictions", "--if-never", stdout=out)
    assert out.getvalue().startswith("Predictions: already trained.")
