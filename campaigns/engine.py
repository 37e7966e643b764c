"""Campaigns as plain Python: audience, groups, when each shopper gets it, and the scheduler's moves.

A run writes the campaign's messages into the delivery outbox, one per shopper
(per browser for push), and the outbox sends them — now, or at each message's
own `send_at` (a local time, a throttled slot). Everything about *who* is SQL:

- the audience is the segments' rules compiled into one query
  (subscribers.segments), with the shoppers already messaged in this occurrence
  left out, so a run that is repeated (a crash, a double click) writes nothing new;
- the hold-out and the A/B groups are stable random buckets of the shopper's id
  (salted per campaign), so a shopper stays in the same group for the whole
  campaign and every occurrence of a recurring one;
- the channel is the first one of the campaign's list the shopper can be reached
  on (push subscription, consent and a contact), decided in the same query.
"""
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from celery.schedules import crontab
from django.conf import settings
from django.db.models import Count, DateTimeField, Exists, ExpressionWrapper, Min, OuterRef, Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from delivery import outbox
from delivery.models import PENDING_STATUSES, DeliveryChannel, Message, MessageStatus
from delivery.policy import HOLD, SUPPRESS, Decision, reachable_q
from subscribers.models import Event, Subscriber
from subscribers.segments import compile_rules

from .models import SOURCE_TYPE, Campaign, CampaignStatus, MissedLocalTime, RunPhase, ScheduleKind, WinnerMetric

# The first timezone to reach a given local time (UTC+14): a local-time campaign is
# launched a little before that, and the outbox holds each message until its moment.
EARLIEST_UTC_OFFSET = timedelta(hours=14)
LAUNCH_LEAD = timedelta(minutes=10)
# How often a paused campaign's due messages are checked again, and a sending one for completion.
PAUSE_RECHECK = timedelta(seconds=60)
COMPLETION_CHECK = timedelta(seconds=60)
# A claimed campaign is the claimer's for this long; after that the tick may run it again (idempotently).
RUN_LEASE = timedelta(minutes=15)
DEFAULT_BEST_HOUR = time(10, 0)
RECURRING_LOOKAHEAD_DAYS = 800


class CampaignError(Exception):
    """A campaign that can't be scheduled as it is: `problems` is a list of (field, message)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.problems))


# --- Audience ----------------------------------------------------------------------

def _group(conditions, match="all"):
    return {"type": "group", "match": match, "conditions": conditions}


def segments_rules(include_ids, exclude_ids):
    """Rules for "in any of `include_ids` and in none of `exclude_ids`"."""
    conditions = [_group([{"type": "segment", "segment": pk, "operator": "in"} for pk in include_ids],
                         match="any")]
    conditions += [{"type": "segment", "segment": pk, "operator": "not_in"} for pk in exclude_ids]
    return _group(conditions)


def audience_rules(campaign):
    """The campaign's audience as segment rules: in any included segment and in no excluded one."""
    return segments_rules(list(campaign.include_segments.values_list("pk", flat=True)),
                          list(campaign.exclude_segments.values_list("pk", flat=True)))


def audience_count(include_ids, exclude_ids, now=None):
    """How many shoppers are in any of `include_ids` and none of `exclude_ids`: one COUNT query."""
    return Subscriber.objects.filter(compile_rules(segments_rules(include_ids, exclude_ids), now)).count()


def audience(campaign, now=None):
    """Every shopper the campaign targets (hold-out included): one lazy queryset."""
    return Subscriber.objects.filter(compile_rules(audience_rules(campaign), now))


def bucket_q(salt, low, high):
    """Shoppers whose stable random bucket (0–99) for `salt` is in [low, high)."""
    if low >= high:
        return Q(pk__in=[])
    if low <= 0 and high >= 100:
        return Q()
    return compile_rules(_group([{"type": "random_bucket", "salt": salt, "from": low, "to": high}]))


def _salt(campaign, purpose):
    return f"campaign-{campaign.pk}-{purpose}"


@dataclass
class Groups:
    """The bucket ranges of one campaign: hold-out, the A/B test group and the rest."""

    holdout: tuple
    test: tuple
    rest: tuple

    @classmethod
    def of(cls, campaign, variant_count):
        holdout_end = int(campaign.holdout_percent or 0)
        if variant_count <= 1 or campaign.test_percent >= 100:
            return cls(holdout=(0, holdout_end), test=(holdout_end, 100), rest=(100, 100))
        test_end = holdout_end + max(1, round((100 - holdout_end) * campaign.test_percent / 100))
        return cls(holdout=(0, holdout_end), test=(holdout_end, min(test_end, 100)), rest=(min(test_end, 100), 100))


def variant_ranges(count):
    """Even [low, high) ranges of the variant bucket for `count` variants."""
    return [(round(i * 100 / count), round((i + 1) * 100 / count)) for i in range(count)]


def holdout_q(campaign):
    groups = Groups.of(campaign, campaign.variants.count())
    return bucket_q(_salt(campaign, "group"), *groups.holdout)


def already_messaged(campaign, occurrence):
    """Shoppers who already have a message of this campaign occurrence (any variant, any channel)."""
    return Exists(Message.objects.filter(subscriber=OuterRef("pk"), source_type=SOURCE_TYPE,
                                         source_id__in=campaign.source_ids(), occurrence=occurrence))


def channel_targets(channels, now=None):
    """[(channel, Q)]: each shopper on the first channel of `channels` they can be reached on."""
    targets, earlier = [], None
    for channel in channels:
        reach = reachable_q(channel)
        targets.append((channel, reach if earlier is None else reach & ~earlier))
        earlier = reach if earlier is None else (earlier | reach)
    return targets


# --- When ----------------------------------------------------------------------------

def zone(name):
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_moment(day, at, zone_name):
    """`day` at `at` wall-clock time in `zone_name`, as an aware UTC datetime (DST-safe: zoneinfo folds)."""
    return datetime.combine(day, at, tzinfo=zone(zone_name)).astimezone(zoneinfo.ZoneInfo("UTC"))


def local_send_at(day, at, zone_name, now, missed):
    """When a shopper in `zone_name` gets a "local time" message, or None when it is skipped."""
    moment = local_moment(day, at, zone_name)
    if moment >= now:
        return moment
    if missed == MissedLocalTime.IMMEDIATELY:
        return now
    if missed == MissedLocalTime.NEXT_DAY:
        local_today = now.astimezone(zone(zone_name)).date()
        candidate = local_moment(max(day + timedelta(days=1), local_today), at, zone_name)
        return candidate if candidate >= now else local_moment(local_today + timedelta(days=1), at, zone_name)
    return None


def earliest_local_moment(day, at):
    """The first instant anywhere on Earth that it is `day` at `at`."""
    return datetime.combine(day, at, tzinfo=zoneinfo.ZoneInfo("UTC")) - EARLIEST_UTC_OFFSET


def best_hour_expression():
    """The analytics hook for "at each subscriber's best hour": an annotation giving the best local hour
    (0–23) per shopper, from CAMPAIGN_BEST_HOUR_PROVIDER; None until one is configured."""
    path = getattr(settings, "CAMPAIGN_BEST_HOUR_PROVIDER", "")
    return import_string(path)() if path else None


def parse_recurrence(text):
    """A 5-field crontab ("0 18 * * 5") -> celery crontab; ValueError naming the problem."""
    parts = (text or "").split()
    if len(parts) != 5:
        raise ValueError(_("expected five fields: minute hour day-of-month month day-of-week."))
    minute, hour, day_of_month, month, day_of_week = parts
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month,
                       day_of_week=day_of_week)
    except (ValueError, TypeError) as error:
        raise ValueError(str(error)) from None


def single_local_time(schedule):
    """The one wall-clock time of a crontab used as "each subscriber's local time"."""
    if len(schedule.hour) != 1 or len(schedule.minute) != 1:
        raise ValueError(_("a local-time recurrence needs one hour and one minute, e.g. \"0 18 * * 5\"."))
    return time(next(iter(schedule.hour)), next(iter(schedule.minute)))


def next_local_occurrence(campaign, after):
    """(local date, local time) of the next occurrence of a local-time recurring campaign whose earliest
    moment (UTC+14) is after `after`, or None within the lookahead."""
    schedule = parse_recurrence(campaign.recurrence)
    at = single_local_time(schedule)
    day = (after + EARLIEST_UTC_OFFSET).date()
    for _offset in range(RECURRING_LOOKAHEAD_DAYS):
        # celery's day_of_week counts Sunday as 0; Python's isoweekday() % 7 does too.
        if (day.isoweekday() % 7 in schedule.day_of_week and day.day in schedule.day_of_month
                and day.month in schedule.month_of_year and earliest_local_moment(day, at) - LAUNCH_LEAD > after):
            return day, at
        day += timedelta(days=1)
    return None


def first_run_at(campaign, now):
    """When the scheduler should first act on a campaign being scheduled (None: celery-beat drives it)."""
    kind = campaign.schedule_kind
    if kind == ScheduleKind.BEST_TIME and campaign.local_date:
        # The chosen day's first hour anywhere on Earth: every shopper's best hour that day is still ahead.
        return max(earliest_local_moment(campaign.local_date, time(0, 0)) - LAUNCH_LEAD, now)
    if kind in (ScheduleKind.NOW, ScheduleKind.BEST_TIME):
        return now
    if kind == ScheduleKind.AT:
        return max(campaign.send_at, now)
    if kind == ScheduleKind.LOCAL_TIME:
        return max(earliest_local_moment(campaign.local_date, campaign.local_time) - LAUNCH_LEAD, now)
    if kind == ScheduleKind.RECURRING and not campaign.recurrence_timezone:
        found = next_local_occurrence(campaign, now)
        return found and earliest_local_moment(*found) - LAUNCH_LEAD
    return None


# --- Checks before scheduling -------------------------------------------------------

def problems(campaign, now=None):
    """What stops the campaign from being scheduled: [(field, message)]."""
    now = now or timezone.now()
    found = []
    if not campaign.include_segments.exists():
        found.append(("include_segments", _("Choose at least one segment to send to.")))
    variants = list(campaign.variants.select_related("template"))
    if not variants:
        found.append(("variants", _("Add a message (a variant with a template).")))
    if len(variants) > 4:
        found.append(("variants", _("At most four variants.")))
    for variant in variants:
        channels = variant.effective_channels()
        if not channels:
            found.append(("channels", _("Choose at least one channel.")))
            break
        bad = [c for c in channels if c not in DeliveryChannel.values]
        if bad:
            found.append(("channels", _("Unknown channel: %(channel)s.") % {"channel": ", ".join(bad)}))
        available = {c.channel for c in variant.template.contents.all()}
        missing = [c for c in channels if c in DeliveryChannel.values and c not in available]
        if missing:
            found.append(("variants", _("Variant %(label)s: the template “%(template)s” has no %(channels)s "
                                        "content.") % {"label": variant.label, "template": variant.template,
                                                       "channels": ", ".join(missing)}))
    kind = campaign.schedule_kind
    if kind == ScheduleKind.AT and not campaign.send_at:
        found.append(("send_at", _("Choose the date and time to send.")))
    elif kind == ScheduleKind.AT and campaign.send_at < now - timedelta(minutes=5):
        found.append(("send_at", _("That time has passed.")))
    if kind == ScheduleKind.LOCAL_TIME:
        if not campaign.local_date or not campaign.local_time:
            found.append(("local_time", _("Choose the local date and time.")))
        elif (campaign.missed_local_time == MissedLocalTime.SKIP
              and local_moment(campaign.local_date, campaign.local_time, "Etc/GMT+12") < now):
            found.append(("local_time", _("That local time has passed everywhere.")))
    if kind == ScheduleKind.BEST_TIME and campaign.local_date and local_moment(
            campaign.local_date + timedelta(days=1), time(0, 0), "Etc/GMT+12") <= now:
        found.append(("local_date", _("That day has passed everywhere.")))
    if kind == ScheduleKind.RECURRING:
        try:
            schedule = parse_recurrence(campaign.recurrence)
            if not campaign.recurrence_timezone:
                single_local_time(schedule)
        except ValueError as error:
            found.append(("recurrence", str(error)))
        if campaign.recurrence_timezone:
            try:
                zoneinfo.ZoneInfo(campaign.recurrence_timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                found.append(("recurrence_timezone", _("Unknown timezone.")))
    if campaign.holdout_percent > 50:
        found.append(("holdout_percent", _("At most %(percent)d%% can be held out.") % {"percent": 50}))
    return found


# --- Writing a run's messages ---------------------------------------------------------

@dataclass
class RunResult:
    audience: int = 0
    holdout: int = 0
    skipped: int = 0
    written: dict = field(default_factory=dict)  # "A:push" -> messages written
    failed: int = 0
    last_send_at: datetime | None = None

    def as_counts(self):
        return {"audience": self.audience, "holdout": self.holdout, "skipped": self.skipped,
                "written": self.written, "failed": self.failed}


def _waves(campaign, target, now, local_day=None, local_at=None):
    """[(queryset, send_at)]: the target split by the moment its shoppers get it (None: skipped)."""
    kind = campaign.schedule_kind
    if kind == ScheduleKind.AT:
        return [(target, max(campaign.send_at, now))]
    if kind not in (ScheduleKind.LOCAL_TIME, ScheduleKind.BEST_TIME) and local_day is None:
        return [(target, now)]
    if kind == ScheduleKind.LOCAL_TIME:
        local_day, local_at = campaign.local_date, campaign.local_time
    waves = []
    hour = best_hour_expression() if kind == ScheduleKind.BEST_TIME else None
    if hour is not None:
        annotated = target.annotate(best_hour=hour)
        for zone_name, best in annotated.values_list("timezone", "best_hour").distinct().order_by():
            day = campaign.local_date or now.astimezone(zone(zone_name)).date()
            at = time(int(best), 0) if best is not None else (campaign.local_time or DEFAULT_BEST_HOUR)
            when = local_send_at(day, at, zone_name, now, MissedLocalTime.NEXT_DAY)
            waves.append((annotated.filter(timezone=zone_name, best_hour=best), when))
        return waves
    for zone_name in target.values_list("timezone", flat=True).distinct().order_by():
        if kind == ScheduleKind.BEST_TIME:
            day = campaign.local_date or now.astimezone(zone(zone_name)).date()
            at = campaign.local_time or DEFAULT_BEST_HOUR
            missed = MissedLocalTime.NEXT_DAY
        else:
            day, at, missed = local_day, local_at, campaign.missed_local_time
        waves.append((target.filter(timezone=zone_name), local_send_at(day, at, zone_name, now, missed)))
    return waves


def run(campaign, *, occurrence, phase, now=None, local_day=None, local_at=None, variants=None):
    """Write the messages of one run (idempotent) and hand the due ones to the senders; -> RunResult."""
    from .models import CampaignRun, HoldoutMember

    now = now or timezone.now()
    all_variants = list(campaign.variants.select_related("template").order_by("label"))
    groups = Groups.of(campaign, len(all_variants))
    if phase == RunPhase.REST:
        variants, bucket = [campaign.winner], groups.rest
    else:
        variants, bucket = variants or all_variants, groups.test
    base = audience(campaign, now)
    result = RunResult(audience=base.count())

    # The hold-out: recorded, never messaged.
    if groups.holdout[1] > 0 and phase != RunPhase.REST:
        held = base.filter(bucket_q(_salt(campaign, "group"), *groups.holdout))
        last = 0
        while True:
            ids = list(held.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:5000])
            if not ids:
                break
            HoldoutMember.objects.bulk_create(
                [HoldoutMember(campaign=campaign, occurrence=occurrence, subscriber_id=pk) for pk in ids],
                ignore_conflicts=True)
            result.holdout += len(ids)
            last = ids[-1]

    eligible = base.filter(bucket_q(_salt(campaign, "group"), *bucket)).exclude(already_messaged(campaign, occurrence))
    ranges = variant_ranges(len(variants)) if phase != RunPhase.REST else [(0, 100)]
    for variant, (low, high) in zip(variants, ranges):
        in_variant = eligible.filter(bucket_q(_salt(campaign, "variant"), low, high))
        for channel, reach in channel_targets(variant.effective_channels(), now):
            target = in_variant.filter(reach)
            for wave, send_at in _waves(campaign, target, now, local_day, local_at):
                if send_at is None:
                    result.skipped += wave.count()
                    continue
                counts = outbox.fan_out(
                    audience=wave, channel=channel, template=variant.template, source_type=SOURCE_TYPE,
                    source_id=variant.source_id, occurrence=occurrence, context=variant.context or None,
                    send_at=send_at if send_at > now else None, transactional=campaign.is_critical,
                    spread_per_minute=campaign.throttle_per_minute)
                key = f"{variant.label}:{channel}"
                result.written[key] = result.written.get(key, 0) + counts["created"]
                result.failed += counts["failed"]
                if counts["created"]:
                    last_at = counts.get("last_send_at") or send_at or now
                    result.last_send_at = max(filter(None, [result.last_send_at, last_at]))
    CampaignRun.objects.update_or_create(
        campaign=campaign, occurrence=occurrence, phase=phase,
        defaults={"finished_writing_at": timezone.now(), "counts": result.as_counts()})
    return result


# --- Measuring the variants ----------------------------------------------------------

def variant_results(campaign):
    """{label: {"sent", "clicked", "converted", "click_rate", "conversion_rate"}} over the campaign's messages."""
    window = timedelta(hours=campaign.conversion_window_hours)
    converted = Exists(Event.objects.filter(
        subscriber=OuterRef("subscriber"), name=campaign.conversion_event, occurred_at__gte=OuterRef("sent_at"),
        occurred_at__lt=ExpressionWrapper(OuterRef("sent_at") + window, output_field=DateTimeField())))
    rows = (Message.objects.filter(source_type=SOURCE_TYPE, source_id__in=campaign.source_ids(),
                                   sent_at__isnull=False)
            .values("source_id")
            .annotate(sent=Count("pk"), clicked=Count("pk", filter=Q(clicked_at__isnull=False)),
                      converted=Count("pk", filter=Q(converted))))
    results = {variant.label: {"sent": 0, "clicked": 0, "converted": 0} for variant in campaign.variants.all()}
    for row in rows:
        label = row["source_id"].split(":", 1)[1]
        results.setdefault(label, {}).update(sent=row["sent"], clicked=row["clicked"], converted=row["converted"])
    for figures in results.values():
        sent = figures.get("sent") or 0
        figures["click_rate"] = figures.get("clicked", 0) / sent if sent else 0.0
        figures["conversion_rate"] = figures.get("converted", 0) / sent if sent else 0.0
    return results


def best_variant(campaign):
    """The variant with the best rate on the campaign's metric (ties: the earlier label)."""
    results = variant_results(campaign)
    metric = "click_rate" if campaign.winner_metric == WinnerMetric.CLICK_RATE else "conversion_rate"
    variants = list(campaign.variants.order_by("label"))
    return max(variants, key=lambda v: (results.get(v.label, {}).get(metric, 0.0), -ord(v.label)))


# --- Progress ----------------------------------------------------------------------------

PROGRESS_STATUSES = ("queued", "held", "sending", "sent", "delivered", "failed", "suppressed", "cancelled",
                     "unknown")


def progress(campaign):
    """Messages by status (one grouped query) plus the hold-out, for the live progress bar."""
    counts = dict.fromkeys(PROGRESS_STATUSES, 0)
    for status, count in (Message.objects.filter(source_type=SOURCE_TYPE, source_id__in=campaign.source_ids())
                          .values_list("status").annotate(n=Count("pk")).order_by()):
        counts[status] = count
    total = sum(counts.values())
    done = total - counts["queued"] - counts["held"] - counts["sending"]
    return {"counts": counts, "total": total, "done": done,
            "percent": round(100 * done / total) if total else 0,
            "holdout": campaign.holdout.count()}


def pending_messages(campaign):
    return Message.objects.filter(source_type=SOURCE_TYPE, source_id__in=campaign.source_ids(),
                                  status__in=[*PENDING_STATUSES, MessageStatus.SENDING])


def next_pending_at(campaign):
    return pending_messages(campaign).aggregate(at=Min("send_at"))["at"]


# --- The delivery gate: paused and cancelled campaigns send nothing -------------------

def gate(source_ids, now):
    """delivery.policy source gate for "campaign" messages (registered in CampaignsConfig.ready)."""
    ids = {int(source_id.split(":", 1)[0]) for source_id in source_ids if source_id.split(":", 1)[0].isdigit()}
    stopped = dict(Campaign.objects.filter(pk__in=ids, status__in=[CampaignStatus.PAUSED, CampaignStatus.CANCELLED])
                   .values_list("pk", "status"))
    decisions = {}
    for source_id in source_ids:
        head = source_id.split(":", 1)[0]
        status = stopped.get(int(head)) if head.isdigit() else None
        if status == CampaignStatus.PAUSED:
            decisions[source_id] = Decision(HOLD, until=now + PAUSE_RECHECK, code="campaign_paused",
                                            reason="campaign paused")
        elif status == CampaignStatus.CANCELLED:
            decisions[source_id] = Decision(SUPPRESS, code="campaign_cancelled", reason="campaign cancelled")
    return decisions


def claim(campaign_id, now):
    """Take a due campaign for RUN_LEASE (a conditional UPDATE: one claimer wins); -> Campaign or None."""
    taken = Campaign.objects.filter(pk=campaign_id, next_run_at__lte=now).exclude(
        status__in=[CampaignStatus.PAUSED, CampaignStatus.CANCELLED, CampaignStatus.COMPLETED,
                    CampaignStatus.DRAFT]).update(next_run_at=now + RUN_LEASE)
    return Campaign.objects.get(pk=campaign_id) if taken else None


def due_campaign_ids(now, limit=50):
    return list(Campaign.objects.filter(
        next_run_at__lte=now,
        status__in=[CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.TESTING],
    ).order_by("next_run_at").values_list("pk", flat=True)[:limit])



# --- The review step ---------------------------------------------------------------------

@dataclass
class Preview:
    variant: str
    channel: str
    locale: str
    content: dict | None = None
    error: str = ""
    sms: object = None


@dataclass
class Review:
    audience: int = 0
    holdout: int = 0
    by_channel: dict = field(default_factory=dict)  # channel -> shoppers who get it there
    unreachable: int = 0
    by_locale: dict = field(default_factory=dict)
    previews: list = field(default_factory=list)
    sms_segments: int = 0
    sms_cost: object = None
    sms_currency: str = ""
    warnings: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def channel_rows(self):
        """[(channel label, shoppers)] in priority order, for the page."""
        labels = dict(DeliveryChannel.choices)
        return [(labels.get(channel, channel), count) for channel, count in self.by_channel.items()]


def review(campaign, now=None):
    """What the marketer checks before sending: counts in one query, previews per channel and locale,
    the SMS estimate and the warnings."""
    from decimal import Decimal

    from delivery.rendering import RenderError, render_sample, sms_info
    from delivery.policy import quiet_hours

    now = now or timezone.now()
    result = Review(problems=problems(campaign, now))
    if not campaign.include_segments.exists():
        return result
    variants = list(campaign.variants.select_related("template").order_by("label"))
    channels = []
    for variant in variants:
        channels += [c for c in variant.effective_channels() if c not in channels and c in DeliveryChannel.values]
    base = audience(campaign, now)
    groups = Groups.of(campaign, len(variants))
    holdout = bucket_q(_salt(campaign, "group"), *groups.holdout)
    figures = {"audience": Count("pk"), "holdout": Count("pk", filter=holdout)}
    for channel, reach in channel_targets(channels, now):
        figures[f"channel_{channel}"] = Count("pk", filter=reach & ~holdout)
    figures.update({f"locale_{code}": Count("pk", filter=Q(locale__istartswith=code)) for code in ("ar", "en")})
    totals = base.aggregate(**figures)
    result.audience, result.holdout = totals["audience"], totals["holdout"]
    result.by_channel = {channel: totals[f"channel_{channel}"] for channel in channels}
    result.unreachable = result.audience - result.holdout - sum(result.by_channel.values())
    result.by_locale = {"ar": totals["locale_ar"], "en": totals["locale_en"]}
    result.by_locale["other"] = result.audience - result.by_locale["ar"] - result.by_locale["en"]

    for variant in variants:
        for channel in variant.effective_channels():
            for locale in ("ar", "en"):
                preview = Preview(variant=variant.label, channel=channel, locale=locale)
                try:
                    preview.content = render_sample(template=variant.template, channel=channel, locale=locale,
                                                    sample_context=variant.context or None)
                    if channel in (DeliveryChannel.SMS, DeliveryChannel.WHATSAPP) and preview.content.get("body"):
                        preview.sms = sms_info(preview.content["body"])
                except RenderError as error:
                    preview.error = str(error)
                result.previews.append(preview)

    sms_shoppers = result.by_channel.get(DeliveryChannel.SMS, 0)
    if sms_shoppers:
        per_locale = {p.locale: p.sms.segments for p in result.previews
                      if p.channel == DeliveryChannel.SMS and p.sms is not None}
        share_ar = result.by_locale["ar"] / result.audience if result.audience else 0
        segments_ar, segments_en = per_locale.get("ar", 1), per_locale.get("en", 1)
        result.sms_segments = round(sms_shoppers * (share_ar * segments_ar + (1 - share_ar) * segments_en))
        result.sms_cost = (Decimal(str(settings.SMS_COST_PER_SEGMENT)) * result.sms_segments).quantize(Decimal("0.01"))
        result.sms_currency = settings.SMS_COST_CURRENCY

    if result.audience == 0:
        result.warnings.append(_("Nobody is in the audience right now."))
    elif result.unreachable:
        result.warnings.append(_("%(count)d shoppers in the audience can't be reached on any of the chosen "
                                 "channels and will get nothing.") % {"count": result.unreachable})
    if any(p.error for p in result.previews):
        result.warnings.append(_("Some previews failed: a shopper without the data a template needs gets no "
                                 "message (the reason is kept on the message)."))
    if not campaign.is_critical and campaign.schedule_kind in (ScheduleKind.NOW, ScheduleKind.AT):
        quiet = [c for c in channels if quiet_hours(c)]
        if quiet:
            result.warnings.append(_("Shoppers in quiet hours when it is sent get it when their quiet hours end "
                                     "(%(channels)s).") % {"channels": ", ".join(quiet)})
    if campaign.throttle_per_minute and result.audience:
        minutes = (result.audience - result.holdout) / campaign.throttle_per_minute
        if minutes > 60:
            result.warnings.append(_("At %(rate)d a minute, sending takes about %(hours).1f hours.")
                                   % {"rate": campaign.throttle_per_minute, "hours": minutes / 60})
    if len(variants) > 1 and campaign.test_percent < 100 and result.audience:
        per_variant = (result.audience - result.holdout) * campaign.test_percent / 100 / len(variants)
        if per_variant < 100:
            result.warnings.append(_("Each variant reaches only about %(count)d shoppers in the test: the winner "
                                     "may be chance.") % {"count": per_variant})
    return result
