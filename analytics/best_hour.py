"""Each shopper's best send hour: when, in their own local time, they open and click messages.

Every message a shopper engaged with in the last PREDICTIONS_BEST_HOUR_DAYS is one observation at the
local hour (their timezone) of its click, else its display. The store-wide counts N_h give a pattern
p_h = (N_h + 1) / (N + 24) (Laplace-smoothed); a shopper's counts n_h are pulled toward it by a Dirichlet
prior of weight k = PREDICTIONS_BEST_HOUR_PRIOR_WEIGHT: θ_h ∝ n_h + k·p_h, and the best hour is argmax θ_h.
No history gives the store's peak hour; one click at an odd hour barely moves a shopper; a habit does.

The hour is written on Subscriber.best_send_hour by analytics.predictions.score_subscribers and read as a
plain column by campaigns (CAMPAIGN_BEST_HOUR_PROVIDER = best_hour_annotation) and journeys ("at best time"),
so neither imports analytics. This module holds no model and imports no scikit-learn.
"""
import math
import zoneinfo
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import Count, F
from django.db.models.functions import Coalesce

from delivery.models import Message


def best_hour_annotation():
    """CAMPAIGN_BEST_HOUR_PROVIDER: the best local hour the last scoring wrote on each shopper (or NULL)."""
    return F("best_send_hour")


class LocalHour(models.Func):
    """The hour (0-23) of a UTC time in a per-row IANA timezone; tanbih_local_hour() on SQLite."""

    output_field = models.IntegerField()

    def as_postgresql(self, compiler, connection, **extra_context):
        (moment, moment_params), (zone, zone_params) = (compiler.compile(e) for e in self.source_expressions)
        return f"CAST(EXTRACT(HOUR FROM ({moment} AT TIME ZONE {zone})) AS integer)", [*moment_params, *zone_params]

    def as_sql(self, compiler, connection, **extra_context):
        # SQLite has no timezone database: lend it Python's (registering again is a no-op).
        connection.ensure_connection()
        connection.connection.create_function("tanbih_local_hour", 2, local_hour, deterministic=True)
        (moment, moment_params), (zone, zone_params) = (compiler.compile(e) for e in self.source_expressions)
        return f"tanbih_local_hour({moment}, {zone})", [*moment_params, *zone_params]


def local_hour(moment, zone_name):
    """Python twin of LocalHour for SQLite (Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC)."""
    if moment is None:
        return None
    parsed = datetime.fromisoformat(str(moment)).replace(tzinfo=UTC)
    try:
        zone = zoneinfo.ZoneInfo(zone_name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return parsed.astimezone(zone).hour


def engagements(now):
    """Messages the shoppers engaged with in the look-back window, with the local hour they did it (the
    click's, else the display's: one observation per message, so a clicked push is not counted twice)."""
    since = now - timedelta(days=settings.PREDICTIONS_BEST_HOUR_DAYS)
    return (Message.objects.annotate(engaged_at=Coalesce("clicked_at", "displayed_at"))
            .filter(engaged_at__gte=since, engaged_at__lte=now)
            .annotate(hour=LocalHour("engaged_at", "subscriber__timezone")))


def store_pattern(now):
    """The store-wide share of engagements by local hour, Laplace-smoothed: 24 floats summing to 1, or None
    when no shopper engaged with any message in the window (then nobody gets a best hour)."""
    counts = np.zeros(24)
    for hour, count in engagements(now).order_by().values_list("hour").annotate(n=Count("pk")):
        counts[hour] += count
    if counts.sum() == 0:
        return None
    return (counts + 1) / (counts.sum() + 24)


def best_hour(counts, pattern, prior_weight):
    """argmax of the Dirichlet posterior mean n_h + k·p_h; ties go to the store's likelier hour."""
    posterior = np.asarray(counts, dtype=float) + prior_weight * pattern
    best = posterior.max()
    candidates = [hour for hour in range(24) if math.isclose(posterior[hour], best, rel_tol=1e-12)]
    return max(candidates, key=lambda hour: (pattern[hour], -hour))


def hour_counts(now, low, high):
    """{subscriber id: 24 engagement counts by local hour} for the shoppers with ids in [low, high]."""
    found = {}
    rows = (engagements(now).filter(subscriber_id__gte=low, subscriber_id__lte=high).order_by()
            .values_list("subscriber_id", "hour").annotate(n=Count("pk")))
    for subscriber_id, hour, count in rows:
        found.setdefault(subscriber_id, np.zeros(24))[hour] += count
    return found




def peak_hour(pattern):
    """The store's likeliest hour: the best hour of a shopper with no history (None without a pattern)."""
    return best_hour(np.zeros(24), pattern, 1) if pattern is not None else None


def best_hours(now, low, high, pattern, prior_weight=None):
    """{subscriber id: best local hour} for the shoppers with ids in [low, high] who engaged with a message
    in the window; the others get peak_hour(pattern)."""
    if pattern is None:
        return {}
    weight = settings.PREDICTIONS_BEST_HOUR_PRIOR_WEIGHT if prior_weight is None else prior_weight
    return {pk: best_hour(counts, pattern, weight) for pk, counts in hour_counts(now, low, high).items()}
