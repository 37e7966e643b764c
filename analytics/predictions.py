"""Predictions: each shopper's best send hour, purchase likelihood and churn risk (docs/predictions.md).

The scores are written onto subscribers.Subscriber (best_send_hour, purchase_likelihood, churn_risk,
scores_updated_at) in bulk, so the lower apps read them as plain columns — campaigns' "best hour"
schedule, a journey send step's "at best time" option and the segment conditions — without importing
analytics.

- Best send hour: analytics/best_hour.py (the local hours of their clicks and displays, smoothed toward
  the store-wide pattern).
- Purchase likelihood (an order in the next 7 days) and churn risk (no order in the next 60 days, for
  shoppers who ordered before) come from scikit-learn models trained on point-in-time snapshots:
  features as of a past cutoff, the label from what happened after it, so nothing from the label window
  leaks into the features. Every training run is a PredictionRun with its held-out AUC and a
  recency-only baseline's AUC on the same rows; the fitted model is kept in that row (joblib bytes).
"""
import io
import math
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import joblib
import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.utils import timezone

from delivery.models import Message
from subscribers.models import Cart, Event, Order, Subscriber

from .best_hour import best_hours, peak_hour, store_pattern
from .models import PredictionKind, PredictionRun, PredictionStatus

CHUNK = 5000  # shoppers per keyset chunk when building features and writing scores
SNAPSHOT_STEP = timedelta(days=7)
MIN_HISTORY = timedelta(days=14)  # a snapshot needs this much data before its cutoff
MAX_SNAPSHOTS = 12
HOLDOUT_SHARE = 0.25
SEED = 20261123
NO_VALUE = float("nan")  # "never": HistGradientBoosting learns what a missing value means

FEATURES = (
    "tenure_days",  # since the profile was created
    "orders", "orders_30d", "spent", "average_order_value", "days_since_last_order",  # frequency, monetary, recency
    "events_7d", "events_30d", "product_views_30d", "days_since_last_event",  # site engagement, last seen
    "carts_abandoned_30d",
    "messages_30d", "messages_displayed_30d", "messages_clicked_30d",  # message engagement
)
COLUMN = {name: index for index, name in enumerate(FEATURES)}
MODEL_PARAMS = {"max_iter": 150, "learning_rate": 0.06, "max_leaf_nodes": 15, "min_samples_leaf": 20,
                "l2_regularization": 1.0, "random_state": SEED}


@dataclass(frozen=True)
class Target:
    """What one model predicts: who it scores, how far ahead it looks, the label and the baseline rule."""

    kind: str
    horizon: timedelta
    field: str  # the Subscriber column the score goes to
    customers_only: bool
    ordered_is_positive: bool

    def label(self, ordered):
        return ordered if self.ordered_is_positive else ~ordered

    def baseline(self, features):
        """The recency-only rule the model must beat: fewer days since the last order or visit = more likely
        to buy (purchase); more days since the last order = more likely to lapse (churn)."""
        never = features[:, COLUMN["tenure_days"]] + 1
        last_order = np.where(np.isnan(features[:, COLUMN["days_since_last_order"]]), never,
                              features[:, COLUMN["days_since_last_order"]])
        if self.ordered_is_positive:
            last_event = np.where(np.isnan(features[:, COLUMN["days_since_last_event"]]), never,
                                  features[:, COLUMN["days_since_last_event"]])
            return -np.minimum(last_order, last_event)
        return last_order


TARGETS = {
    PredictionKind.PURCHASE: Target(PredictionKind.PURCHASE, timedelta(days=7), "purchase_likelihood",
                                    customers_only=False, ordered_is_positive=True),
    PredictionKind.CHURN: Target(PredictionKind.CHURN, timedelta(days=60), "churn_risk",
                                 customers_only=True, ordered_is_positive=False),
}


# --- Features as of a moment ---------------------------------------------------------------

def _id_chunks(queryset):
    """(first id, last id) ranges of CHUNK shoppers, walked in key order (no OFFSET)."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:CHUNK])
        if not ids:
            return
        yield ids[0], ids[-1]
        last = ids[-1]


def _by_subscriber(queryset, low, high, **aggregates):
    rows = (queryset.filter(subscriber_id__gte=low, subscriber_id__lte=high).order_by()
            .values("subscriber_id").annotate(**aggregates))
    return {row["subscriber_id"]: row for row in rows}


def _days(cutoff, moment):
    return (cutoff - moment).total_seconds() / 86400 if moment is not None else NO_VALUE


def features_as_of(cutoff, low, high, population=None):
    """(subscriber ids, feature matrix) for the shoppers (of `population`, default all) with ids in [low, high]
    who existed at `cutoff`, from their rows before `cutoff` only: six queries whatever their number."""
    month, week = cutoff - timedelta(days=30), cutoff - timedelta(days=7)
    population = Subscriber.objects.all() if population is None else population
    shoppers = list(population.filter(pk__gte=low, pk__lte=high, created_at__lt=cutoff)
                    .order_by("pk").values_list("pk", "created_at"))
    orders = _by_subscriber(Order.objects.filter(placed_at__lt=cutoff), low, high, n=Count("pk"),
                            recent=Count("pk", filter=Q(placed_at__gte=month)), spent=Sum("value"),
                            last=Max("placed_at"))
    events = _by_subscriber(Event.objects.filter(occurred_at__lt=cutoff), low, high,
                            week=Count("pk", filter=Q(occurred_at__gte=week)),
                            month=Count("pk", filter=Q(occurred_at__gte=month)),
                            views=Count("pk", filter=Q(occurred_at__gte=month, name="product_viewed")),
                            last=Max("occurred_at"))
    carts = _by_subscriber(Cart.objects.filter(abandoned_at__gte=month, abandoned_at__lt=cutoff), low, high,
                           n=Count("pk"))
    messages = _by_subscriber(
        Message.objects.filter(sent_at__gte=month, sent_at__lt=cutoff), low, high, n=Count("pk"),
        displayed=Count("pk", filter=Q(displayed_at__lt=cutoff)), clicked=Count("pk", filter=Q(clicked_at__lt=cutoff)))
    matrix = np.zeros((len(shoppers), len(FEATURES)), dtype=np.float32)
    for row, (pk, created_at) in enumerate(shoppers):
        bought, seen = orders.get(pk), events.get(pk)
        count = bought["n"] if bought else 0
        spent = float(bought["spent"] or 0) if bought else 0.0
        messaged = messages.get(pk) or {"n": 0, "displayed": 0, "clicked": 0}
        matrix[row] = (
            _days(cutoff, created_at),
            count, bought["recent"] if bought else 0, spent, spent / count if count else 0.0,
            _days(cutoff, bought["last"]) if bought else NO_VALUE,
            seen["week"] if seen else 0, seen["month"] if seen else 0, seen["views"] if seen else 0,
            _days(cutoff, seen["last"]) if seen else NO_VALUE,
            carts[pk]["n"] if pk in carts else 0,
            messaged["n"], messaged["displayed"], messaged["clicked"],
        )
    return [pk for pk, _created in shoppers], matrix


def ordered_between(low, high, start, end):
    """Ids (in [low, high]) of the shoppers with an order placed in (start, end]."""
    return set(Order.objects.filter(subscriber_id__gte=low, subscriber_id__lte=high, placed_at__gt=start,
                                    placed_at__lte=end).values_list("subscriber_id", flat=True).distinct())


# --- Training ------------------------------------------------------------------------------

def snapshot_cutoffs(target, now):
    """Past cutoffs whose whole label window has happened, newest first, each with MIN_HISTORY of data before."""
    bounds = [Order.objects.aggregate(first=Min("placed_at"))["first"],
              Event.objects.aggregate(first=Min("occurred_at"))["first"]]
    known = [moment for moment in bounds if moment is not None]
    if not known:
        return []
    earliest = min(known) + MIN_HISTORY
    cutoffs, cutoff = [], now - target.horizon
    while cutoff >= earliest and len(cutoffs) < MAX_SNAPSHOTS:
        cutoffs.append(cutoff)
        cutoff -= SNAPSHOT_STEP
    return cutoffs


def training_population():
    """(shoppers to learn from, every how many ids): all of them, or every n-th id when the store has more
    than PREDICTIONS_MAX_TRAINING_SHOPPERS, so training memory stays bounded (rows = shoppers × snapshots)."""
    step = max(1, math.ceil(Subscriber.objects.count() / settings.PREDICTIONS_MAX_TRAINING_SHOPPERS))
    if step == 1:
        return Subscriber.objects.all(), step
    return Subscriber.objects.alias(sample=F("pk") % step).filter(sample=0), step


def training_rows(target, cutoffs, population=None):
    """(features, labels, subscriber ids) of every shopper at every cutoff: one row per (shopper, cutoff)."""
    population = Subscriber.objects.all() if population is None else population
    blocks, labels, groups = [], [], []
    for cutoff in cutoffs:
        for low, high in _id_chunks(population.filter(created_at__lt=cutoff)):
            ids, matrix = features_as_of(cutoff, low, high, population)
            if not ids:
                continue
            ordered = ordered_between(low, high, cutoff, cutoff + target.horizon)
            keep = matrix[:, COLUMN["orders"]] > 0 if target.customers_only else np.ones(len(ids), dtype=bool)
            blocks.append(matrix[keep])
            labels.append(target.label(np.array([pk in ordered for pk in ids], dtype=bool))[keep])
            groups.append(np.array(ids)[keep])
    if not blocks:
        return np.zeros((0, len(FEATURES))), np.zeros(0, dtype=bool), np.zeros(0, dtype=int)
    return np.vstack(blocks), np.concatenate(labels), np.concatenate(groups)


def _not_enough(run, rows, positives, reason):
    run.status, run.rows, run.positives = PredictionStatus.NOT_ENOUGH_DATA, rows, positives
    run.error = reason
    return run


def train(kind, *, now=None, triggered_by="schedule"):
    """Train one model on point-in-time snapshots, evaluate it on held-out shoppers and record the run.

    The held-out set is a quarter of the *shoppers* (all their snapshots), so no shopper is both learnt
    from and judged on. Too little data is recorded as such, with its counts, and leaves no model.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupShuffleSplit

    now = now or timezone.now()
    target = TARGETS[kind]
    run = PredictionRun.objects.create(kind=kind, started_at=timezone.now(), cutoff=now, features=list(FEATURES),
                                       params={**MODEL_PARAMS, "horizon_days": target.horizon.days,
                                               "holdout_share": HOLDOUT_SHARE}, triggered_by=triggered_by)
    try:
        cutoffs = snapshot_cutoffs(target, now)
        run.snapshots = [cutoff.isoformat() for cutoff in cutoffs]
        population, step = training_population()
        run.params["sample_every"] = step
        features, labels, groups = training_rows(target, cutoffs, population)
        rows, positives = len(labels), int(labels.sum())
        minimum = settings.PREDICTIONS_MIN_CLASS_ROWS
        if not cutoffs:
            _not_enough(run, rows, positives, "no snapshot: less than %d days of data before the first label window"
                        % (MIN_HISTORY.days + target.horizon.days))
        elif min(positives, rows - positives) < minimum:
            _not_enough(run, rows, positives, f"{positives} positive and {rows - positives} negative rows; "
                                              f"at least {minimum} of each are needed")
        else:
            split = GroupShuffleSplit(n_splits=1, test_size=HOLDOUT_SHARE, random_state=SEED)
            train_index, test_index = next(split.split(features, labels, groups))
            test_labels = labels[test_index]
            if len(set(labels[train_index])) < 2 or len(set(test_labels)) < 2:
                _not_enough(run, rows, positives, "the held-out shoppers or the others hold only one outcome")
            else:
                model = HistGradientBoostingClassifier(**MODEL_PARAMS)
                model.fit(features[train_index], labels[train_index])
                predicted = model.predict_proba(features[test_index])[:, 1]
                run.auc = float(roc_auc_score(test_labels, predicted))
                run.baseline_auc = float(roc_auc_score(test_labels, target.baseline(features[test_index])))
                run.rows, run.positives, run.test_rows = rows, positives, len(test_index)
                run.test_positives = int(test_labels.sum())
                buffer = io.BytesIO()
                joblib.dump(model, buffer)
                run.model = buffer.getvalue()
                run.status = PredictionStatus.SUCCEEDED
    except Exception as error:  # recorded on the run, then raised for the worker's log and retry policy
        run.status, run.error = PredictionStatus.FAILED, f"{type(error).__name__}: {error}"
        run.finished_at = timezone.now()
        run.save()
        raise
    run.finished_at = timezone.now()
    run.save()
    return run


def latest_model(kind):
    """The fitted model of the latest successful run of `kind`, or None."""
    run = (PredictionRun.objects.filter(kind=kind, status=PredictionStatus.SUCCEEDED).exclude(model=None)
           .order_by("-finished_at", "-pk").only("model").first())
    return joblib.load(io.BytesIO(bytes(run.model))) if run else None


# --- Scoring everyone --------------------------------------------------------------------------

def _score(probability):
    return Decimal(f"{min(max(float(probability), 0.0), 1.0):.4f}")


def write_scores(rows, fields):
    """[(subscriber id, {field: value})] -> one parameterised UPDATE per shopper, sent as one executemany
    (pipelined by psycopg): several times cheaper than bulk_update, whose CASE over every id of a batch is
    evaluated for every row of it."""
    quote = connection.ops.quote_name
    columns = [Subscriber._meta.get_field(name) for name in fields]
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(Subscriber._meta.db_table), ", ".join(f"{quote(column.column)} = %s" for column in columns),
        quote(Subscriber._meta.pk.column))
    params = [[column.get_db_prep_save(values[column.name], connection) for column in columns] + [pk]
              for pk, values in rows]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)


def score_subscribers(now=None):
    """Write every shopper's scores from the latest models and their message history; -> counts.

    A kind without a successful run leaves its column as it is (no made-up scores); churn risk is only
    given to shoppers who have ordered (it is the risk that a customer lapses).
    """
    now = now or timezone.now()
    models_by_kind = {kind: latest_model(kind) for kind in TARGETS}
    pattern = store_pattern(now)
    peak = peak_hour(pattern)
    fields = ["scores_updated_at", "best_send_hour"] + [
        TARGETS[kind].field for kind, model in models_by_kind.items() if model is not None]
    counts = {"subscribers": 0, "with_history": 0, "peak_hour": peak,
              **{kind: 0 for kind, model in models_by_kind.items() if model is not None}}
    for low, high in _id_chunks(Subscriber.objects.all()):
        ids, matrix = features_as_of(now + timedelta(microseconds=1), low, high)
        if not ids:
            continue
        hours = best_hours(now, low, high, pattern)
        scores = {kind: model.predict_proba(matrix)[:, 1] for kind, model in models_by_kind.items() if model}
        customers = matrix[:, COLUMN["orders"]] > 0
        rows = []
        for row, pk in enumerate(ids):
            values = {"scores_updated_at": now, "best_send_hour": hours.get(pk, peak)}
            for kind, probabilities in scores.items():
                target = TARGETS[kind]
                eligible = customers[row] or not target.customers_only
                values[target.field] = _score(probabilities[row]) if eligible else None
                counts[kind] += int(eligible)
            rows.append((pk, values))
        write_scores(rows, fields)
        counts["subscribers"] += len(ids)
        counts["with_history"] += len(hours)
    return counts


def train_and_score(*, now=None, triggered_by="schedule"):
    """The nightly job: train both models (each run recorded), then score every shopper."""
    runs = [train(kind, now=now, triggered_by=triggered_by) for kind in TARGETS]
    counts = score_subscribers(now)
    for run in runs:
        PredictionRun.objects.filter(pk=run.pk).update(scored=counts.get(run.kind, 0))
        run.scored = counts.get(run.kind, 0)
    return runs, counts


def score_distribution(field, bins=10):
    """[(lower bound, upper bound, shoppers)] of a 0-1 score in `bins` equal bins: one query."""
    edges = [Decimal(i) / bins for i in range(bins + 1)]
    aggregates = {f"b{i}": Count("pk", filter=Q(**{f"{field}__gte": edges[i]}) & (
        Q(**{f"{field}__lt": edges[i + 1]}) if i < bins - 1 else Q(**{f"{field}__lte": edges[i + 1]})))
        for i in range(bins)}
    totals = Subscriber.objects.aggregate(**aggregates)
    return [(float(edges[i]), float(edges[i + 1]), totals[f"b{i}"]) for i in range(bins)]


def hour_distribution():
    """[(hour, shoppers whose best send hour it is)] for the 24 hours: one query."""
    found = dict(Subscriber.objects.exclude(best_send_hour=None).order_by().values_list("best_send_hour")
                 .annotate(n=Count("pk")))
    return [(hour, found.get(hour, 0)) for hour in range(24)]
