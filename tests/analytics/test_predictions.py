"""Purchase likelihood and churn risk: point-in-time snapshots, runs with too little data, and the predictions
page (the demo store's training: test_predictions_demo.py)."""
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, User

from analytics import predictions
from analytics.models import PredictionKind, PredictionRun, PredictionStatus
from campaigns.roles import MARKETERS, VIEWERS
from subscribers.models import Event, Order, Subscriber
from subscribers.segments import compile_rules
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db

UTC = ZoneInfo("UTC")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def order(subscriber, at, value="100.00"):
    return Order.objects.create(subscriber=subscriber, external_id=f"o-{subscriber.pk}-{at:%Y%m%d%H%M%S%f}",
                                value=Decimal(value), placed_at=at)


def test_a_snapshot_sees_only_what_happened_before_its_cutoff():
    shopper = make_subscriber("snap-1")
    Subscriber.objects.filter(pk=shopper.pk).update(created_at=NOW - timedelta(days=60))
    order(shopper, NOW - timedelta(days=20))
    order(shopper, NOW - timedelta(days=3))  # after the cutoff: the label, never a feature
    Event.objects.create(subscriber=shopper, name="product_viewed", occurred_at=NOW - timedelta(days=2))
    cutoff = NOW - timedelta(days=7)

    ids, matrix = predictions.features_as_of(cutoff, shopper.pk, shopper.pk)
    row = dict(zip(predictions.FEATURES, matrix[0]))

    assert ids == [shopper.pk]
    assert row["orders"] == 1 and row["spent"] == 100 and row["days_since_last_order"] == 13
    assert row["events_30d"] == 0 and row["days_since_last_event"] != row["days_since_last_event"]  # NaN: never
    assert predictions.ordered_between(shopper.pk, shopper.pk, cutoff, cutoff + timedelta(days=7)) == {shopper.pk}


def test_too_little_data_is_recorded_with_its_counts_and_scores_nobody():
    shoppers = [make_subscriber(f"few-{n}") for n in range(6)]
    Subscriber.objects.update(created_at=NOW - timedelta(days=40))
    for shopper in shoppers[:2]:
        order(shopper, NOW - timedelta(days=30))
        order(shopper, NOW - timedelta(days=2))

    run = predictions.train(PredictionKind.PURCHASE, now=NOW)
    predictions.score_subscribers(NOW)

    run.refresh_from_db()
    assert run.status == PredictionStatus.NOT_ENOUGH_DATA
    assert run.rows > 0 and run.positives == 2 and "at least 20" in run.error
    assert run.model is None and run.auc is None
    assert not Subscriber.objects.filter(purchase_likelihood__isnull=False).exists()
    assert Subscriber.objects.filter(scores_updated_at=NOW).count() == 6  # the best hour pass still ran


def test_a_store_without_history_has_no_snapshot():
    make_subscriber("empty-1")

    run = predictions.train(PredictionKind.CHURN, now=NOW)

    assert run.status == PredictionStatus.NOT_ENOUGH_DATA and run.snapshots == [] and "no snapshot" in run.error


def test_a_large_store_learns_from_every_nth_shopper(settings):
    shoppers = [make_subscriber(f"many-{n}") for n in range(10)]
    Subscriber.objects.update(created_at=NOW - timedelta(days=40))
    settings.PREDICTIONS_MAX_TRAINING_SHOPPERS = 4

    population, step = predictions.training_population()
    _features, _labels, groups = predictions.training_rows(
        predictions.TARGETS[PredictionKind.PURCHASE], [NOW - timedelta(days=7)], population)

    assert step == 3
    assert sorted(groups) == sorted(s.pk for s in shoppers if s.pk % 3 == 0)


# --- The page ---------------------------------------------------------------------------------

def person(client, group):
    user = User.objects.create_user(group.lower(), password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return user


def recorded_run(**fields):
    values = {"kind": PredictionKind.PURCHASE, "status": PredictionStatus.SUCCEEDED, "cutoff": NOW,
              "finished_at": NOW, "rows": 900, "positives": 120, "auc": 0.812, "baseline_auc": 0.701,
              "snapshots": ["a", "b"], "triggered_by": "schedule", **fields}
    return PredictionRun.objects.create(**values)


def test_a_viewer_reads_the_runs_and_distributions_but_cannot_train(client):
    recorded_run(error="<script>alert(1)</script>", status=PredictionStatus.FAILED, auc=None)
    recorded_run(status=PredictionStatus.NOT_ENOUGH_DATA, rows=30, positives=4, auc=None, baseline_auc=None)
    recorded_run()
    shopper = make_subscriber("page-1")
    Subscriber.objects.filter(pk=shopper.pk).update(purchase_likelihood=Decimal("0.85"), best_send_hour=20,
                                                    scores_updated_at=NOW)
    person(client, VIEWERS)

    page = client.get("/app/predictions/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "0.812" in html and "0.701" in html and "Not enough data" in html
    assert "4 shoppers did it and 26 did not; at least 20 of each are needed" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    tables = page.context["tables"]
    assert tables["purchase"].rows[8] == {"score": "80–90%", "shoppers": 1}
    assert tables["hours"].rows[20] == {"hour": "20:00", "shoppers": 1}
    assert sum(row["shoppers"] for row in tables["churn"].rows) == 0
    chart = page.context["charts"]["hours"]
    assert chart["labels"][20] == "20:00" and chart["series"][0]["data"][20] == 1.0
    assert 'data-chart="chart-hours"' in html and 'id="chart-hours" type="application/json"' in html
    download = client.get("/app/predictions/", {"format": "csv", "table": "purchase"})
    assert download["Content-Type"].startswith("text/csv")
    assert "80–90%,1" in download.content.decode("utf-8-sig")
    assert "Train now" not in html
    assert client.post("/app/predictions/train/").status_code == 403
    assert PredictionRun.objects.count() == 3


def test_a_marketer_trains_now_and_sees_the_run(client):
    person(client, MARKETERS)

    response = client.post("/app/predictions/train/")

    assert response.status_code == 302 and response["Location"] == "/app/predictions/"
    runs = PredictionRun.objects.order_by("kind")
    assert [run.kind for run in runs] == ["churn", "purchase"]
    assert all(run.triggered_by == "marketers" for run in runs)
    assert "Train now" in client.get("/app/predictions/").content.decode()


def test_train_now_waits_for_a_run_under_way(client):
    recorded_run(status=PredictionStatus.RUNNING, finished_at=None)
    person(client, MARKETERS)

    client.post("/app/predictions/train/")

    assert PredictionRun.objects.count() == 1


def test_the_page_needs_a_login(client):
    response = client.get("/app/predictions/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_ops_read_and_delete_runs_in_the_admin_without_loading_models(admin_client):
    run = recorded_run(model=b"x" * 1000)

    assert "0.812" in admin_client.get("/admin/analytics/predictionrun/").content.decode()
    assert admin_client.get(f"/admin/analytics/predictionrun/{run.pk}/change/").status_code == 200
    response = admin_client.post(f"/admin/analytics/predictionrun/{run.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not PredictionRun.objects.exists()


def test_score_ranges_stay_left_to_right_on_the_arabic_page(client):
    shopper = make_subscriber("page-ar")
    Subscriber.objects.filter(pk=shopper.pk).update(purchase_likelihood=Decimal("0.85"), scores_updated_at=NOW)
    person(client, VIEWERS)
    client.cookies["django_language"] = "ar"
    tables = client.get("/app/predictions/").context["tables"]
    # Isolated, so the right-to-left page shows 80–90% and not 90–80%.
    assert tables["purchase"].rows[8] == {"score": "\u206680–90%\u2069", "shoppers": 1}
