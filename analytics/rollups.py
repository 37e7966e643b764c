"""Daily aggregates kept current as messages change and orders arrive, so reports never scan all messages.

Message events are the queue: `roll_up_pending` claims events not rolled up yet
(`MessageEvent.rolled_up_at IS NULL`, a partial index) with SELECT … FOR UPDATE
SKIP LOCKED, adds them to DailyRollup / ReasonRollup and marks them, all in one
transaction — so concurrent workers take disjoint events, a crash rolls the
batch back whole, and every event is added exactly once.

A message counts once per kind (sent, clicked …) however many events of that
kind it has (every click is an event): an event counts unless an event of the
same kind of the same message was rolled up before, or comes earlier in the
same batch. The batch locks its messages' rows (FOR NO KEY UPDATE, which does
not block the outbox from appending events), so two batches holding events of
the same message take turns and the second sees the first's marks.

Conversions and revenue are added by `add_conversion`, in the transaction that
writes the order's Attribution row (analytics.attribution).

`rebuild` (manage.py rebuild_rollups) starts over from the raw rows under an
exclusive advisory lock that the incremental paths take shared; on PostgreSQL
it counts every event in one set-based statement (minutes for 10 million events
instead of thousands of batches).
"""
import zoneinfo
from collections import defaultdict
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DateTimeField, Exists, ExpressionWrapper, Max, OuterRef, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from campaigns.models import SOURCE_TYPE as CAMPAIGN_SOURCE_TYPE
from campaigns.models import Campaign, HoldoutMember
from delivery.models import PENDING_STATUSES, Message, MessageEvent, MessageEventKind, MessageStatus
from subscribers.models import Channel, ConsentChange, ConsentStatus, Event

from .attribution import counts_as_revenue
from .models import Attribution, AttributionKind, DailyRollup, LiftRollup, ReasonRollup, SubscriberDaily

# Which message event kind feeds which rollup column.
KIND_METRICS = {
    MessageEventKind.QUEUED: "targeted",
    MessageEventKind.SENT: "sent",
    MessageEventKind.DELIVERED: "delivered",
    MessageEventKind.DISPLAYED: "displayed",
    MessageEventKind.CLICKED: "clicked",
    MessageEventKind.FAILED: "failed",
    MessageEventKind.SUPPRESSED: "suppressed",
    MessageEventKind.UNSUBSCRIBED: "unsubscribed",
}
MESSAGE_METRICS = tuple(KIND_METRICS.values())
CONVERSION_METRICS = ("converted_click", "converted_view", "revenue_click", "revenue_view")
ROLLUP_METRICS = MESSAGE_METRICS + CONVERSION_METRICS
REASON_OUTCOMES = (MessageEventKind.FAILED, MessageEventKind.SUPPRESSED)
DAILY_KEY = ("day", "source_type", "source_id", "channel")
REASON_KEY = ("day", "source_type", "source_id", "channel", "outcome", "reason")
SUBSCRIBER_CHANNELS = tuple(Channel.values)

# pg_advisory locks: the incremental paths hold it shared, rebuild exclusive.
ROLLUP_LOCK_KEY = 7_340_601
# A run with messages in these states may still send: its hold-out figures are not final.
OPEN_STATUSES = (*PENDING_STATUSES, MessageStatus.SENDING)
DEFAULT_BATCH = 5000


# --- Days ---------------------------------------------------------------------------

def store_timezone():
    return zoneinfo.ZoneInfo(settings.STORE_TIMEZONE)


def local_day(moment):
    """The store-timezone date of an aware datetime: the day a figure is counted on."""
    return timezone.localtime(moment, store_timezone()).date()


def day_start(day):
    """The aware moment a store-timezone day begins."""
    return datetime.combine(day, time.min, tzinfo=store_timezone())


def window_days(start, end):
    """A report window as whole store-timezone days: (first day, last day), both included."""
    first, last = local_day(start), local_day(end)
    return first, max(first, last)


def window_bounds(start, end):
    """[from, to) in time covering the window's whole days: what raw computations filter on."""
    first, last = window_days(start, end)
    return day_start(first), day_start(last + timedelta(days=1))


def days_between(first, last):
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# --- Locks and upserts --------------------------------------------------------------

def _advisory_lock(shared):
    if connection.vendor != "postgresql":
        return  # SQLite runs one writer at a time.
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [ROLLUP_LOCK_KEY])


def _upsert(model, key, metrics, rows):
    """Add `rows` ({key tuple: {metric: amount}}) to the table: one INSERT … ON CONFLICT DO UPDATE, in key order
    so that concurrent transactions lock the same rows in the same order (no deadlock)."""
    if not rows:
        return
    table = model._meta.db_table
    columns = [*key, *metrics]
    values, params = [], []
    for row_key in sorted(rows):
        amounts = rows[row_key]
        values.append(f"({', '.join(['%s'] * len(columns))})")
        params.extend([*row_key, *(amounts.get(metric, 0) for metric in metrics)])
    updates = ", ".join(f"{metric} = {table}.{metric} + EXCLUDED.{metric}" for metric in metrics)
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(values)} "
           f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def add_daily(rows):
    _upsert(DailyRollup, DAILY_KEY, ROLLUP_METRICS, rows)


def add_reasons(rows):
    _upsert(ReasonRollup, REASON_KEY, ("count",), rows)


# --- Message events -----------------------------------------------------------------

def event_reason(detail):
    """Why a message failed or was suppressed, from its event: the policy's reason, else the provider's code."""
    detail = detail or {}
    return str(detail.get("reason") or detail.get("code") or detail.get("status") or "")[:300]


def _claim(batch_size):
    return list(MessageEvent.objects.filter(rolled_up_at__isnull=True).order_by("pk")
                .select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size])


def _counted_events(ids):
    """The claimed events that count: rows (kind, occurred_at, detail, message_id) of a kind not counted before."""
    events = list(MessageEvent.objects.filter(pk__in=ids, kind__in=list(KIND_METRICS)).order_by("pk")
                  .values_list("pk", "kind", "occurred_at", "detail", "message_id"))
    message_ids = sorted({row[4] for row in events})
    if not message_ids:
        return []
    list(Message.objects.filter(pk__in=message_ids).order_by("pk").select_for_update(no_key=True)
         .values_list("pk", flat=True))
    seen = set(MessageEvent.objects.filter(message_id__in=message_ids, kind__in=list(KIND_METRICS),
                                           rolled_up_at__isnull=False)
               .values_list("message_id", "kind").distinct().order_by())
    counted = []
    for _pk, kind, occurred_at, detail, message_id in events:
        if (message_id, kind) not in seen:
            seen.add((message_id, kind))
            counted.append((kind, occurred_at, detail, message_id))
    return counted


def _sources(message_ids):
    return {pk: (source_type, source_id, channel) for pk, source_type, source_id, channel in
            Message.objects.filter(pk__in=message_ids).values_list("pk", "source_type", "source_id", "channel")}


def roll_up_events(counted):
    """Add counted events to the daily and reason rollups."""
    sources = _sources({row[3] for row in counted})
    daily = defaultdict(lambda: defaultdict(int))
    reasons = defaultdict(lambda: {"count": 0})
    for kind, occurred_at, detail, message_id in counted:
        source_type, source_id, channel = sources[message_id]
        key = (local_day(occurred_at), source_type, source_id, channel)
        daily[key][KIND_METRICS[kind]] += 1
        if kind in REASON_OUTCOMES:
            reasons[(*key, str(kind), event_reason(detail))]["count"] += 1
    add_daily(daily)
    add_reasons(reasons)


def roll_up_pending(*, batch_size=DEFAULT_BATCH, now=None):
    """Roll up one batch of events not rolled up yet: -> how many were claimed (0: nothing left)."""
    now = now or timezone.now()
    with transaction.atomic():
        _advisory_lock(shared=True)
        ids = _claim(batch_size)
        if not ids:
            return 0
        roll_up_events(_counted_events(ids))
        MessageEvent.objects.filter(pk__in=ids).update(rolled_up_at=now)
    return len(ids)


def roll_up_all(*, batch_size=DEFAULT_BATCH, limit=None):
    """Batches until nothing is left (or `limit` events): -> events rolled up."""
    total = 0
    while limit is None or total < limit:
        done = roll_up_pending(batch_size=batch_size)
        if not done:
            break
        total += done
    return total


# --- Conversions --------------------------------------------------------------------

def conversion_amounts(kind, value, currency, count=1):
    """The rollup columns an attributed order (or `count` of them worth `value`) adds."""
    if kind not in (AttributionKind.CLICK, AttributionKind.VIEW):
        return {}
    revenue = Decimal(value or 0) if counts_as_revenue(currency) else Decimal("0")
    return {f"converted_{kind}": count, f"revenue_{kind}": revenue}


def add_conversions(attributions):
    """Add attributed orders to the daily rollups of their messages' sources (called in the transaction that
    writes the Attribution rows, so an order counts exactly when its row exists)."""
    rows = defaultdict(lambda: defaultdict(Decimal))
    for attribution in attributions:
        key = (local_day(attribution.placed_at), attribution.source_type, attribution.source_id,
               attribution.channel)
        for metric, amount in conversion_amounts(attribution.kind, attribution.value, attribution.currency).items():
            rows[key][metric] += amount
    if rows:
        _advisory_lock(shared=True)
        add_daily(rows)


def _conversions_from_attributions():
    """Every attributed order's figures as rollup rows (rebuild)."""
    rows = defaultdict(lambda: defaultdict(Decimal))
    grouped = (Attribution.objects.filter(kind__in=[AttributionKind.CLICK, AttributionKind.VIEW])
               .annotate(day=TruncDate("placed_at", tzinfo=store_timezone()))
               .values("day", "source_type", "source_id", "channel", "kind", "currency")
               .annotate(n=Count("pk"), value=Sum("value")).order_by())
    for row in grouped:
        key = (row["day"], row["source_type"], row["source_id"], row["channel"])
        for metric, amount in conversion_amounts(row["kind"], row["value"], row["currency"], row["n"]).items():
            rows[key][metric] += amount
    return rows


# --- Subscribers per channel --------------------------------------------------------

def reachable_on(day):
    """{channel: subscribers whose consent on it was granted at the end of `day`} from the consent history."""
    end = day_start(day + timedelta(days=1))
    later = ConsentChange.objects.filter(subscriber_id=OuterRef("subscriber_id"), channel=OuterRef("channel"),
                                         occurred_at__lt=end).filter(
        Q(occurred_at__gt=OuterRef("occurred_at")) | Q(occurred_at=OuterRef("occurred_at"), pk__gt=OuterRef("pk")))
    counts = dict.fromkeys(SUBSCRIBER_CHANNELS, 0)
    for channel, n in (ConsentChange.objects.filter(occurred_at__lt=end, status=ConsentStatus.GRANTED)
                       .filter(~Exists(later)).values_list("channel").annotate(n=Count("subscriber_id", distinct=True))
                       .order_by()):
        counts[channel] = n
    return counts


CONSENT_DELTAS_SQL = """
SELECT channel, occurred_at, delta FROM (
    SELECT channel, occurred_at,
           (CASE WHEN status = %s THEN 1 ELSE 0 END)
           - COALESCE(LAG(CASE WHEN status = %s THEN 1 ELSE 0 END)
                      OVER (PARTITION BY subscriber_id, channel ORDER BY occurred_at, id), 0) AS delta
    FROM {table}) AS changes
WHERE delta <> 0 AND occurred_at >= %s AND occurred_at < %s
"""


def consent_deltas(low, high):
    """[(channel, occurred_at, +1 | -1)]: each consent change in [low, high) that changed whether the shopper is
    reachable on the channel (a grant after a revocation, or the first grant: +1; a revocation: -1)."""
    sql = CONSENT_DELTAS_SQL.format(table=ConsentChange._meta.db_table)
    granted = str(ConsentStatus.GRANTED)
    # A raw cursor gets no field conversion: SQLite stores naive UTC text, so bounds go in and times come out
    # through the backend's own datetime adaptation.
    bounds = [connection.ops.adapt_datetimefield_value(moment) for moment in (low, high)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [granted, granted, *bounds])
        rows = cursor.fetchall()
    return [(channel, _aware(at), delta) for channel, at, delta in rows]


def _aware(at):
    moment = at if isinstance(at, datetime) else parse_datetime(at)
    return timezone.make_aware(moment, dt_timezone.utc) if timezone.is_naive(moment) else moment


def reachable_by_day(first, last):
    """{day: {channel: reachable}} for first..last from one pass over the consent history: the count at the end
    of the day before `first`, then each day's changes added in order."""
    counts = dict.fromkeys(SUBSCRIBER_CHANNELS, 0)
    epoch = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
    for channel, _at, delta in consent_deltas(epoch, day_start(first)):
        counts[channel] = counts.get(channel, 0) + delta
    per_day = defaultdict(lambda: defaultdict(int))
    for channel, at, delta in consent_deltas(day_start(first), day_start(last + timedelta(days=1))):
        per_day[local_day(at)][channel] += delta
    result = {}
    for day in days_between(first, last):
        for channel, delta in per_day[day].items():
            counts[channel] = counts.get(channel, 0) + delta
        result[day] = {channel: counts.get(channel, 0) for channel in SUBSCRIBER_CHANNELS}
    return result


def refresh_subscriber_daily(*, now=None, recompute_days=2, backfill_days=400):
    """Write SubscriberDaily for the days not computed yet and recompute the last `recompute_days` (late
    consent changes land there): -> the number of days written."""
    today = local_day(now or timezone.now())
    last = SubscriberDaily.objects.order_by("-day").values_list("day", flat=True).first()
    if last is None:
        first_change = ConsentChange.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first()
        if first_change is None:
            return 0
        first = max(local_day(first_change), today - timedelta(days=backfill_days))
    else:
        first = min(last + timedelta(days=1), today - timedelta(days=recompute_days - 1))
    computed_at = timezone.now()
    rows = [SubscriberDaily(day=day, channel=channel, reachable=reachable, computed_at=computed_at)
            for day, channels in reachable_by_day(first, today).items() for channel, reachable in channels.items()]
    SubscriberDaily.objects.bulk_create(rows, update_conflicts=True, unique_fields=["day", "channel"],
                                        update_fields=["reachable", "computed_at"], batch_size=1000)
    return len({row.day for row in rows})


# --- Hold-out lift -----------------------------------------------------------------

def _converted_within(campaign, moment):
    """The shopper had the campaign's conversion event within its window after `moment` (an outer column)."""
    window = timedelta(hours=campaign.conversion_window_hours)
    return Exists(Event.objects.filter(
        subscriber_id=OuterRef("subscriber_id"), name=campaign.conversion_event, occurred_at__gte=OuterRef(moment),
        occurred_at__lt=ExpressionWrapper(OuterRef(moment) + window, output_field=DateTimeField())))


def lift_units(campaign, occurrences=None):
    """{occurrence: [messaged, messaged converted, control, control converted]} computed from the raw rows.

    A unit is a shopper in one run: messaged when a message of the campaign was sent to them, converted when
    the conversion event followed one of those sends within the window; control units are the run's hold-out
    members, converted when the event followed their holding out within the window.
    """
    messages = Message.objects.filter(source_type=CAMPAIGN_SOURCE_TYPE, source_id__in=campaign.source_ids(),
                                      sent_at__isnull=False)
    holdout = HoldoutMember.objects.filter(campaign=campaign)
    if occurrences is not None:
        messages, holdout = messages.filter(occurrence__in=occurrences), holdout.filter(occurrence__in=occurrences)
    units = defaultdict(lambda: [0, 0, 0, 0])
    for occurrence, messaged, converted in (
            messages.values_list("occurrence")
            .annotate(units=Count("subscriber_id", distinct=True),
                      hits=Count("subscriber_id", distinct=True, filter=Q(_converted_within(campaign, "sent_at"))))
            .order_by()):
        units[occurrence][0:2] = [messaged, converted]
    for occurrence, control, converted in (
            holdout.values_list("occurrence")
            .annotate(units=Count("pk"), hits=Count("pk", filter=Q(_converted_within(campaign, "added_at"))))
            .order_by()):
        units[occurrence][2:4] = [control, converted]
    return dict(units)


def _closed_occurrences(campaign, now):
    """The runs whose conversion window has closed: nothing left to send and the last send + window is past."""
    window = timedelta(hours=campaign.conversion_window_hours)
    closed = set()
    for occurrence, last_sent, pending in (
            Message.objects.filter(source_type=CAMPAIGN_SOURCE_TYPE, source_id__in=campaign.source_ids())
            .values_list("occurrence")
            .annotate(last=Max("sent_at"), pending=Count("pk", filter=Q(status__in=OPEN_STATUSES))).order_by()):
        if not pending and last_sent is not None and last_sent + window <= now:
            closed.add(occurrence)
    return closed


def refresh_lift(campaign, *, now=None):
    """Recompute the LiftRollup rows of a campaign's runs not final yet: -> the rows written."""
    now = now or timezone.now()
    final = set(LiftRollup.objects.filter(campaign=campaign, is_final=True).values_list("occurrence", flat=True))
    open_runs = set(HoldoutMember.objects.filter(campaign=campaign).exclude(occurrence__in=final)
                    .values_list("occurrence", flat=True).distinct().order_by())
    if not open_runs:
        return 0
    closed = _closed_occurrences(campaign, now)
    figures = lift_units(campaign, occurrences=sorted(open_runs))
    rows = [LiftRollup(campaign=campaign, occurrence=occurrence, messaged=units[0], messaged_converted=units[1],
                       control=units[2], control_converted=units[3], computed_at=now,
                       is_final=occurrence in closed)
            for occurrence, units in figures.items() if occurrence in open_runs]
    LiftRollup.objects.bulk_create(rows, update_conflicts=True, unique_fields=["campaign", "occurrence"],
                                   update_fields=["messaged", "messaged_converted", "control", "control_converted",
                                                  "computed_at", "is_final"])
    return len(rows)


def refresh_lifts(*, now=None):
    """Every campaign with a hold-out run still open (celery-beat): -> the rows written."""
    final = LiftRollup.objects.filter(is_final=True, campaign_id=OuterRef("campaign_id"),
                                      occurrence=OuterRef("occurrence"))
    campaign_ids = (HoldoutMember.objects.filter(~Exists(final)).values_list("campaign_id", flat=True)
                    .distinct().order_by())
    return sum(refresh_lift(campaign, now=now) for campaign in Campaign.objects.filter(pk__in=campaign_ids))


# --- Start over ---------------------------------------------------------------------

REBUILD_SQL = """
WITH marked AS (
    UPDATE {events} SET rolled_up_at = %(now)s WHERE rolled_up_at IS NULL RETURNING id
), counted AS (
    SELECT DISTINCT ON (e.message_id, e.kind) e.message_id, e.kind, e.detail,
           (e.occurred_at AT TIME ZONE %(tz)s)::date AS day
    FROM {events} e
    WHERE e.kind = ANY(%(kinds)s) AND (e.rolled_up_at IS NOT NULL OR e.id IN (SELECT id FROM marked))
    ORDER BY e.message_id, e.kind, e.id
), daily AS (
    INSERT INTO {daily} (day, source_type, source_id, channel, {metrics}, {conversions})
    SELECT c.day, m.source_type, m.source_id, m.channel, {counts}, {zeros}
    FROM counted c JOIN {messages} m ON m.id = c.message_id
    GROUP BY c.day, m.source_type, m.source_id, m.channel
    ON CONFLICT (day, source_type, source_id, channel) DO UPDATE SET {daily_updates}
    RETURNING 1
), reasons AS (
    INSERT INTO {reasons} (day, source_type, source_id, channel, outcome, reason, count)
    SELECT c.day, m.source_type, m.source_id, m.channel, c.kind,
           LEFT(COALESCE(NULLIF(c.detail->>'reason', ''), NULLIF(c.detail->>'code', ''),
                         NULLIF(c.detail->>'status', ''), ''), 300), COUNT(*)
    FROM counted c JOIN {messages} m ON m.id = c.message_id
    WHERE c.kind = ANY(%(outcomes)s)
    GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (day, source_type, source_id, channel, outcome, reason)
    DO UPDATE SET count = {reasons}.count + EXCLUDED.count
    RETURNING 1
)
SELECT COUNT(*) FROM marked
"""


def _rebuild_events_in_sql(now):
    """PostgreSQL: every event into the emptied rollups in one statement, so one snapshot decides which events
    it counts (those already rolled up and those it marks) — an event committed meanwhile is left unmarked
    for the next incremental batch. -> the number of events it marked."""
    daily_table = DailyRollup._meta.db_table
    sql = REBUILD_SQL.format(
        events=MessageEvent._meta.db_table, messages=Message._meta.db_table, daily=daily_table,
        reasons=ReasonRollup._meta.db_table, metrics=", ".join(MESSAGE_METRICS),
        conversions=", ".join(CONVERSION_METRICS),
        counts=", ".join(f"COUNT(*) FILTER (WHERE c.kind = '{kind.value}')" for kind in KIND_METRICS),
        zeros=", ".join("0" for _metric in CONVERSION_METRICS),
        daily_updates=", ".join(f"{metric} = {daily_table}.{metric} + EXCLUDED.{metric}"
                                for metric in MESSAGE_METRICS))
    with connection.cursor() as cursor:
        cursor.execute(sql, {"now": now, "tz": settings.STORE_TIMEZONE, "kinds": [str(k) for k in KIND_METRICS],
                             "outcomes": [str(k) for k in REASON_OUTCOMES]})
        return cursor.fetchone()[0]


def rebuild(*, batch_size=DEFAULT_BATCH):
    """Drop the rollups and compute them again from the raw rows: -> message events newly rolled up.

    Under the exclusive lock, in one transaction: the rollups are emptied, conversions re-added from the
    Attribution rows and, on PostgreSQL, every event added by one set-based statement. Elsewhere every
    event is unmarked and then rolled up in ordinary batches.
    """
    with transaction.atomic():
        _advisory_lock(shared=False)
        DailyRollup.objects.all().delete()
        ReasonRollup.objects.all().delete()
        add_daily(_conversions_from_attributions())
        if connection.vendor == "postgresql":
            events = _rebuild_events_in_sql(timezone.now())
        else:
            MessageEvent.objects.filter(rolled_up_at__isnull=False).update(rolled_up_at=None)
            events = None
    SubscriberDaily.objects.all().delete()
    refresh_subscriber_daily()
    if events is None:
        events = roll_up_all(batch_size=batch_size)
    return events
