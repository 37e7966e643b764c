"""What the marketer UI shows: the dashboard, a campaign's report, a journey's report.

Every report exists twice: `dashboard`, `campaign_report`, `journey_report` read
the rollup tables (analytics.rollups), and their `raw_*` twins compute the same
figures from the raw rows (messages' events, attributions, the consent history).
The twins share all the report logic and differ only in where the per-day figures
come from (a `Figures` reader), so a property test can hold them equal and the
benchmark can compare them. Definitions of every figure: docs/analytics.md.

All functions return plain dicts and lists: ints, floats (rates, None when the
denominator is 0), Decimal money, dates.
"""
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, Sum, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, NullIf, TruncDate

from campaigns.models import SOURCE_TYPE as CAMPAIGN_SOURCE_TYPE
from campaigns.models import Campaign, HoldoutMember, WinnerMetric
from delivery.models import MessageEvent
from journeys.models import SOURCE_TYPE as JOURNEY_SOURCE_TYPE
from journeys.models import Enrolment, EnrolmentStatus, Journey
from subscribers.models import Event

from . import stats
from .attribution import click_window_hours, counts_as_revenue, view_window_hours
from .models import Attribution, AttributionKind, DailyRollup, LiftRollup, ReasonRollup, SubscriberDaily
from .rollups import (
    KIND_METRICS, MESSAGE_METRICS, ROLLUP_METRICS, SUBSCRIBER_CHANNELS,
    conversion_amounts, day_start, days_between, lift_units, reachable_on, refresh_lift, store_timezone,
    window_bounds, window_days,
)

TOP_COUNT = 10
PROMPT_SHOWN, PROMPT_ACCEPTED, PROMPT_DECLINED = "push_prompt_shown", "push_prompt_accepted", "push_prompt_declined"


def settings_summary():
    """The attribution windows, shown on every report."""
    return {"click_window_hours": click_window_hours(), "view_window_hours": view_window_hours()}


def currency():
    return str(settings.DEFAULT_CURRENCY)


# --- Where the per-day figures come from ----------------------------------------------

def _empty(dims, key):
    row = dict(zip(dims, key))
    row.update({metric: 0 for metric in MESSAGE_METRICS})
    row.update(converted_click=0, converted_view=0, revenue_click=Decimal("0"), revenue_view=Decimal("0"))
    return row


def _sources_and_days(rows, *, days, source_type, source_ids, day="day", prefix=""):
    """Rows narrowed to a window of days (first, last) and to a source type and ids, when given."""
    if days:
        if day == "day":
            rows = rows.filter(day__gte=days[0], day__lte=days[1])
        else:  # a moment: the window's whole store-timezone days
            rows = rows.filter(**{f"{day}__gte": day_start(days[0]),
                                  f"{day}__lt": day_start(days[1] + timedelta(days=1))})
    if source_type:
        rows = rows.filter(**{f"{prefix}source_type": source_type})
    if source_ids is not None:
        rows = rows.filter(**{f"{prefix}source_id__in": list(source_ids)})
    return rows


class RollupFigures:
    """Figures read from DailyRollup / ReasonRollup / SubscriberDaily."""

    def daily(self, dims, *, days=None, source_type=None, source_ids=None):
        rows = _sources_and_days(DailyRollup.objects.all(), days=days, source_type=source_type,
                                 source_ids=source_ids)
        sums = {metric: Sum(metric) for metric in ROLLUP_METRICS}
        result = {}
        for row in (rows.values(*dims).annotate(**sums).order_by() if dims else [rows.aggregate(**sums)]):
            key = tuple(row[dim] for dim in dims)
            figures = _empty(dims, key)
            figures.update({metric: row[metric] or figures[metric] for metric in ROLLUP_METRICS})
            result[key] = figures
        return result

    def reasons(self, dims, *, outcome, days=None, source_type=None, source_ids=None):
        rows = _sources_and_days(ReasonRollup.objects.filter(outcome=outcome), days=days, source_type=source_type,
                                 source_ids=source_ids)
        return {tuple(row[dim] for dim in dims): row["n"]
                for row in rows.values(*dims).annotate(n=Sum("count")).order_by()}

    @staticmethod
    def lift(campaign):
        return campaign_lift(campaign)

    def reachable(self, days):
        counts = {}
        for day, channel, reachable in SubscriberDaily.objects.filter(
                day__gte=days[0], day__lte=days[-1]).values_list("day", "channel", "reachable"):
            counts.setdefault(day, {})[channel] = reachable
        return counts


class RawFigures:
    """The same figures computed from the raw rows (the naive baseline)."""

    DIMENSIONS = {"source_type": "message__source_type", "source_id": "message__source_id",
                  "channel": "message__channel"}

    @staticmethod
    def first_events():
        """Each message's first event of every counted kind (what the rollup counts)."""
        earlier = MessageEvent.objects.filter(message_id=OuterRef("message_id"), kind=OuterRef("kind"),
                                              pk__lt=OuterRef("pk"))
        return MessageEvent.objects.filter(kind__in=list(KIND_METRICS)).filter(~Exists(earlier))

    def _events(self, dims, *, days, source_type, source_ids):
        events = _sources_and_days(self.first_events(), days=days, source_type=source_type, source_ids=source_ids,
                                   day="occurred_at", prefix="message__")
        names = {dim: (TruncDate("occurred_at", tzinfo=store_timezone()) if dim == "day" else
                       F(self.DIMENSIONS[dim])) for dim in dims}
        return events.annotate(**{f"d_{dim}": expression for dim, expression in names.items()})

    def daily(self, dims, *, days=None, source_type=None, source_ids=None):
        result = {}
        events = self._events(dims, days=days, source_type=source_type, source_ids=source_ids)
        fields = [f"d_{dim}" for dim in dims]
        for row in events.values(*fields, "kind").annotate(n=Count("pk")).order_by():
            key = tuple(row[field] for field in fields)
            figures = result.setdefault(key, _empty(dims, key))
            figures[KIND_METRICS[row["kind"]]] += row["n"]
        attributions = _sources_and_days(
            Attribution.objects.filter(kind__in=[AttributionKind.CLICK, AttributionKind.VIEW]), days=days,
            source_type=source_type, source_ids=source_ids, day="placed_at")
        if "day" in dims:
            attributions = attributions.annotate(d_day=TruncDate("placed_at", tzinfo=store_timezone()))
        plain = [dim for dim in dims if dim != "day"]
        attributions = attributions.annotate(**{f"d_{dim}": F(dim) for dim in plain})
        for row in (attributions.values(*fields, "kind", "currency")
                    .annotate(n=Count("pk"), value=Sum("value")).order_by()):
            key = tuple(row[field] for field in fields)
            figures = result.setdefault(key, _empty(dims, key))
            for metric, amount in conversion_amounts(row["kind"], row["value"], row["currency"], row["n"]).items():
                figures[metric] += amount
        if not dims and () not in result:
            result[()] = _empty(dims, ())
        return result

    def reasons(self, dims, *, outcome, days=None, source_type=None, source_ids=None):
        events = self._events([dim for dim in dims if dim != "reason"], days=days, source_type=source_type,
                              source_ids=source_ids).filter(kind=outcome)
        events = events.annotate(d_reason=Coalesce(NullIf(KT("detail__reason"), Value("")),
                                                   NullIf(KT("detail__code"), Value("")), KT("detail__status"),
                                                   Value(""), output_field=TextField()))
        fields = [f"d_{dim}" for dim in dims]
        counts = {}
        for row in events.values(*fields).annotate(n=Count("pk")).order_by():
            key = tuple(str(row[field])[:300] if field == "d_reason" else row[field] for field in fields)
            counts[key] = counts.get(key, 0) + row["n"]
        return counts

    def reachable(self, days):
        return {day: reachable_on(day) for day in days}

    @staticmethod
    def lift(campaign):
        return raw_campaign_lift(campaign)


ROLLUPS, RAW = RollupFigures(), RawFigures()


# --- Metrics ------------------------------------------------------------------------

def metrics(figures):
    """The report's METRICS from one row of per-day figures (docs/analytics.md, Metrics)."""
    converted = figures["converted_click"] + figures["converted_view"]
    revenue = figures["revenue_click"] + figures["revenue_view"]
    return {
        "targeted": figures["targeted"], "suppressed": figures["suppressed"], "sent": figures["sent"],
        "delivered": figures["delivered"], "displayed": figures["displayed"], "clicked": figures["clicked"],
        "ctr": stats.rate(figures["clicked"], figures["sent"]),
        "converted": converted, "conversion_rate": stats.rate(converted, figures["sent"]),
        "revenue": revenue, "unsubscribed": figures["unsubscribed"], "failed": figures["failed"],
    }


def _total(rows):
    return rows.get((), _empty((), ()))


def _daily_series(source, days, **filters):
    rows = source.daily(("day",), days=days, **filters)
    series = []
    for day in days_between(*days) if days else sorted(key[0] for key in rows):
        figures = rows.get((day,), _empty(("day",), (day,)))
        series.append({"day": day, "sent": figures["sent"], "delivered": figures["delivered"],
                       "clicked": figures["clicked"],
                       "revenue": figures["revenue_click"] + figures["revenue_view"]})
    return series


def _source_days(source, source_type, source_ids):
    rows = source.daily(("day",), source_type=source_type, source_ids=source_ids)
    return (min(key[0] for key in rows), max(key[0] for key in rows)) if rows else None


# --- Messages -----------------------------------------------------------------------

def message_revenue(message_ids):
    """{message id: {"orders", "click", "view"}} for the given messages: the orders attributed to each and their
    revenue by kind (one query; messages that earned nothing are left out)."""
    earned = {}
    for message_id, kind, order_currency, orders, value in (
            Attribution.objects.filter(message_id__in=list(message_ids))
            .values_list("message_id", "kind", "currency").annotate(n=Count("pk"), value=Sum("value")).order_by()):
        figures = earned.setdefault(message_id, {"orders": 0, "click": Decimal("0"), "view": Decimal("0")})
        figures["orders"] += orders
        if counts_as_revenue(order_currency):
            figures[kind] += value or Decimal("0")
    return earned


# --- Dashboard ----------------------------------------------------------------------

def recovery(start, end, *, recovery_source_ids=None, abandoned=None):
    """Carts abandoned in the window, those recovered (docs/analytics.md, Cart recovery), their revenue."""
    low, high = window_bounds(start, end)
    if abandoned is None:
        abandoned = Event.objects.filter(name="cart_abandoned", occurred_at__gte=low, occurred_at__lt=high).count()
    recovered = Attribution.objects.filter(recovered_cart__isnull=False, cart_abandoned_at__gte=low,
                                           cart_abandoned_at__lt=high)
    if recovery_source_ids is not None:
        recovered = recovered.filter(recovery_source_id__in=list(recovery_source_ids))
    return _recovery_figures(abandoned, recovered)


def _recovery_figures(abandoned, recovered):
    count, revenue = 0, Decimal("0")
    for value_currency, n, value in (recovered.values_list("currency").annotate(n=Count("pk"), value=Sum("value"))
                                     .order_by()):
        count += n
        if counts_as_revenue(value_currency):
            revenue += value or Decimal("0")
    return {"abandoned": abandoned, "recovered": count, "rate": stats.rate(count, abandoned), "revenue": revenue}


def push_optin(start, end):
    """Soft prompts shown and accepted (SDK events) in the window."""
    low, high = window_bounds(start, end)
    counts = dict(Event.objects.filter(name__in=[PROMPT_SHOWN, PROMPT_ACCEPTED], occurred_at__gte=low,
                                       occurred_at__lt=high).values_list("name").annotate(n=Count("pk")).order_by())
    shown, accepted = counts.get(PROMPT_SHOWN, 0), counts.get(PROMPT_ACCEPTED, 0)
    return {"prompts_shown": shown, "accepted": accepted, "rate": stats.rate(accepted, shown)}


def _top(source, days, source_type, model):
    per_owner = {}
    for (source_id,), figures in source.daily(("source_id",), days=days, source_type=source_type).items():
        owner = source_id.split(":", 1)[0]
        if not owner.isdigit():
            continue
        total = per_owner.setdefault(int(owner), {"sent": 0, "clicked": 0, "revenue": Decimal("0")})
        total["sent"] += figures["sent"]
        total["clicked"] += figures["clicked"]
        total["revenue"] += figures["revenue_click"] + figures["revenue_view"]
    names = dict(model.objects.filter(pk__in=list(per_owner)).values_list("pk", "name"))
    ranked = sorted(per_owner.items(), key=lambda item: (-item[1]["revenue"], -item[1]["sent"], item[0]))
    return [{"id": pk, "name": names.get(pk, f"#{pk}"), **figures} for pk, figures in ranked[:TOP_COUNT]]


def _dashboard(source, start, end):
    days = window_days(start, end)
    total = _total(source.daily((), days=days))
    reachable = source.reachable(days_between(*days))
    failures = source.reasons(("channel", "reason"), outcome="failed", days=days)
    return {
        "windows": settings_summary(),
        "revenue": {"click": total["revenue_click"], "view": total["revenue_view"], "currency": currency()},
        "recovery": recovery(start, end),
        "push_optin": push_optin(start, end),
        "subscribers_by_channel": [{"day": day, **{channel: reachable.get(day, {}).get(channel, 0)
                                                   for channel in SUBSCRIBER_CHANNELS}}
                                   for day in days_between(*days)],
        "daily": _daily_series(source, days),
        "top_campaigns": _top(source, days, CAMPAIGN_SOURCE_TYPE, Campaign),
        "top_journeys": _top(source, days, JOURNEY_SOURCE_TYPE, Journey),
        "failures_by_reason": [{"channel": channel, "reason": reason, "count": count} for (channel, reason), count
                               in sorted(failures.items(), key=lambda item: (-item[1], item[0]))],
    }


def dashboard(start, end):
    """The home dashboard for the window [start, end] (whole store-timezone days), from the rollups."""
    return _dashboard(ROLLUPS, start, end)


def raw_dashboard(start, end):
    return _dashboard(RAW, start, end)


# --- Campaigns ----------------------------------------------------------------------

def _variant_figures(variants, winner_metric):
    """Each variant's confidence against the first (the control), and the winner label when significant."""
    def successes(row):
        return row["clicked"] if winner_metric == WinnerMetric.CLICK_RATE else row["converted"]

    control = variants[0] if variants else None
    for row in variants:
        test = None
        if row is not control:
            test = stats.two_proportion_z_test(successes(row), row["sent"], successes(control), control["sent"])
        row["confidence"] = test.confidence if test else None
        row["p_value"] = test.p_value if test else None
        row["significant"] = bool(test and test.significant)
        row["probability_to_beat"] = (None if row is control or not row["sent"] or not control["sent"] else
                                      stats.probability_to_beat(successes(row), row["sent"], successes(control),
                                                                control["sent"]))
        row["is_winner_label"] = False
    if len(variants) > 1:
        best = max(variants, key=lambda row: (stats.rate(successes(row), row["sent"]) or 0.0, -ord(row["label"][0])))
        beaten = [stats.two_proportion_z_test(successes(best), best["sent"], successes(row), row["sent"])
                  for row in variants if row is not best]
        best["is_winner_label"] = all(test is not None and test.significant and test.z > 0 for test in beaten)
    return variants


def _has_holdout(campaign):
    return bool(campaign.holdout_percent) or HoldoutMember.objects.filter(campaign=campaign).exists()


def _lift(units):
    """stats.lift over the summed per-run units (all zeros before anyone was held out)."""
    return stats.lift(*[sum(run[n] for run in units) for n in range(4)])


def _lift_rows(campaign):
    return list(LiftRollup.objects.filter(campaign=campaign).values_list(
        "messaged", "messaged_converted", "control", "control_converted"))


def campaign_lift(campaign):
    """Messaged vs hold-out conversion (docs/analytics.md, Lift) from the LiftRollup rows (computed here the first
    time, then kept by the periodic task); None for a campaign that never held anyone out."""
    if not _has_holdout(campaign):
        return None
    rows = _lift_rows(campaign)
    if not rows and refresh_lift(campaign):
        rows = _lift_rows(campaign)
    return _lift(rows)


def raw_campaign_lift(campaign):
    if not _has_holdout(campaign):
        return None
    runs = HoldoutMember.objects.filter(campaign=campaign).values_list("occurrence", flat=True).distinct()
    return _lift(list(lift_units(campaign, occurrences=list(runs.order_by())).values()))


def _campaign_report(source, campaign):
    labels = sorted(campaign.variants.values_list("label", flat=True))
    filters = {"source_type": CAMPAIGN_SOURCE_TYPE, "source_ids": [f"{campaign.pk}:{label}" for label in labels]}
    per_variant = source.daily(("source_id",), **filters)
    variants = [{"label": label, **metrics(per_variant.get((f"{campaign.pk}:{label}",),
                                                           _empty(("source_id",), ("",))))} for label in labels]
    suppressed = source.reasons(("reason",), outcome="suppressed", **filters)
    return {
        "windows": settings_summary(),
        "totals": metrics(_total(source.daily((), **filters))),
        "variants": _variant_figures(variants, campaign.winner_metric),
        "channels": [{"channel": channel, **metrics(figures)} for (channel,), figures
                     in sorted(source.daily(("channel",), **filters).items())],
        "suppressed_by_reason": [{"reason": reason, "count": count} for (reason,), count
                                 in sorted(suppressed.items(), key=lambda item: (-item[1], item[0]))],
        "lift": source.lift(campaign),
        "daily": _daily_series(source, _source_days(source, **filters), **filters),
    }


def campaign_report(campaign):
    """A campaign's figures over its whole life, from the rollups."""
    return _campaign_report(ROLLUPS, campaign)


def raw_campaign_report(campaign):
    return _campaign_report(RAW, campaign)


# --- Journeys -----------------------------------------------------------------------

def journey_steps(journey):
    """{step key: label} of every version's send steps in flow order: the newest version's first (its labels
    win), then steps only older versions had."""
    from journeys.builder import flow_order, summary

    steps = {}
    for version in journey.versions.order_by("-number"):
        graph = version.steps or {}
        for key in flow_order(graph):
            step = graph["steps"][key]
            if isinstance(step, dict) and step.get("type") == "send" and key not in steps:
                steps[key] = str(step.get("label") or summary(step))
    return steps


def enrolment_figures(journey):
    return Enrolment.objects.filter(journey=journey, is_test=False).aggregate(
        entered=Count("pk"), active=Count("pk", filter=Q(status=EnrolmentStatus.ACTIVE)),
        converted=Count("pk", filter=Q(status=EnrolmentStatus.CONVERTED)),
        completed=Count("pk", filter=Q(status=EnrolmentStatus.COMPLETED)),
        exited=Count("pk", filter=Q(status=EnrolmentStatus.EXITED)))


def journey_recovery(journey, source_ids):
    """Enrolments for a cart (started by an abandonment) and the carts this journey's messages recovered."""
    abandoned = Enrolment.objects.filter(journey=journey, is_test=False, context__has_key="cart_id").count()
    recovered = Attribution.objects.filter(recovered_cart__isnull=False, recovery_source_id__in=source_ids)
    return _recovery_figures(abandoned, recovered)


def _journey_report(source, journey):
    steps = journey_steps(journey)
    source_ids = [f"{journey.pk}:{key}" for key in steps]
    filters = {"source_type": JOURNEY_SOURCE_TYPE, "source_ids": source_ids}
    per_step = source.daily(("source_id",), **filters)
    return {
        "windows": settings_summary(),
        "totals": metrics(_total(source.daily((), **filters))),
        "steps": [{"key": key, "label": label,
                   **metrics(per_step.get((f"{journey.pk}:{key}",), _empty(("source_id",), ("",))))}
                  for key, label in steps.items()],
        "enrolments": enrolment_figures(journey),
        "recovery": journey_recovery(journey, source_ids),
        "daily": _daily_series(source, _source_days(source, **filters), **filters),
    }


def journey_report(journey):
    """A journey's figures per send step over its whole life, from the rollups."""
    return _journey_report(ROLLUPS, journey)


def raw_journey_report(journey):
    return _journey_report(RAW, journey)
