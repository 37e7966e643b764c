"""Sending policies: may this message go now, later, or never?

Checked at send time by the outbox for every claimed message (`check` for one,
`check_many` for a chunk). Nothing here writes: the outbox records the decision
(status held with `send_at` moved to `until`, or suppressed with the reason).

The order of the checks is deliberate. Reachability, consent and the suppression
list come first, so a message that can never go is suppressed at once rather than
held for the night and dropped in the morning. Quiet hours come before frequency
caps: a held message is checked again when it is released, and only then does it
take a place under the caps of that moment. See docs/policies.md.
"""
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone
from functools import lru_cache

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Max
from django.db.models.functions import Lower
from django.utils import timezone

from subscribers.models import Consent, ConsentStatus, PushSubscription, PushSubscriptionStatus, Subscriber

from .models import DeliveryChannel, Message, MessageStatus, Suppression

SEND = "send"
HOLD = "hold"
SUPPRESS = "suppress"

DAY = timedelta(days=1)
WEEK = timedelta(days=7)

CHANNEL_NAMES = {
    DeliveryChannel.PUSH: "push", DeliveryChannel.SMS: "SMS", DeliveryChannel.WHATSAPP: "WhatsApp",
    DeliveryChannel.EMAIL: "email", DeliveryChannel.INAPP: "in-app",
}
# Channels that need an explicit opt-in (a granted subscribers.Consent row).
CONSENT_CHANNELS = (DeliveryChannel.PUSH, DeliveryChannel.SMS, DeliveryChannel.WHATSAPP, DeliveryChannel.EMAIL)
# Channels counted together by the "all" frequency cap: the ones that interrupt.
# In-app messages appear only while the shopper is on the site.
INTERRUPTING_CHANNELS = CONSENT_CHANNELS
# Messages that reached (or may have reached) the shopper count against the caps,
# by their sent_at (an unknown outcome counts when the outbox dated the attempt).
COUNTED_STATUSES = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN)


@dataclass(frozen=True)
class Decision:
    """What to do with a message now.

    action: "send", "hold" (try again at `until`, a UTC datetime) or "suppress".
    reason: plain words for the marketer, stored as the message's status reason.
    code: a stable key for the reason (no_consent, quiet_hours, frequency_cap …).
    """

    action: str
    until: datetime | None = None
    reason: str = ""
    code: str = ""

    @property
    def is_send(self):
        return self.action == SEND


SEND_NOW = Decision(SEND)


def _suppress(code, reason):
    return Decision(SUPPRESS, reason=reason, code=code)


# --- Settings ---------------------------------------------------------------------

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@lru_cache(maxsize=64)
def parse_quiet_hours(value):
    """ "22:00-08:00" -> (time(22), time(8)); "off" or "" -> None. A window may cross midnight."""
    if value is None or value.strip().lower() in ("", "off", "none", "no", "false", "0"):
        return None
    match = _WINDOW.match(value)
    if not match:
        raise ImproperlyConfigured(f"Quiet hours must look like 22:00-08:00 or be 'off', not {value!r}.")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ImproperlyConfigured(f"Quiet hours {value!r}: hours are 00-23 and minutes 00-59.")
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ImproperlyConfigured(f"Quiet hours {value!r} start and end at the same time; use 'off' instead.")
    return start, end


def quiet_hours(channel):
    """The (start, end) quiet window of a channel, or None when it has none."""
    configured = getattr(settings, "QUIET_HOURS", {})
    return parse_quiet_hours(configured.get(channel, "off"))


def frequency_caps(channel):
    """{"day": n, "week": n} for a channel or "all"; 0 means no cap."""
    caps = getattr(settings, "FREQUENCY_CAPS", {}).get(channel) or {}
    return {"day": int(caps.get("day") or 0), "week": int(caps.get("week") or 0)}


@register()
def check_settings(app_configs=None, **kwargs):
    """A malformed QUIET_HOURS_* or FREQUENCY_CAP_* stops start-up, not every send."""
    problems = []
    for channel, value in getattr(settings, "QUIET_HOURS", {}).items():
        try:
            parse_quiet_hours(value)
        except ImproperlyConfigured as error:
            problems.append(Error(f"QUIET_HOURS_{channel.upper()}: {error}", id="tanbih.E101"))
    for scope, caps in getattr(settings, "FREQUENCY_CAPS", {}).items():
        for period in ("day", "week"):
            value = caps.get(period, 0)
            if not isinstance(value, int) or value < 0:
                problems.append(Error(f"FREQUENCY_CAP_{scope.upper()}_PER_{period.upper()} must be a whole number "
                                      f"0 or more (0 = no cap), not {value!r}.", id="tanbih.E102"))
    return problems


# --- Quiet hours ------------------------------------------------------------------

def _subscriber_zone(subscriber):
    try:
        return zoneinfo.ZoneInfo(subscriber.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt_timezone.utc


def quiet_until(window, zone, now):
    """When the quiet window holding `now` ends (UTC), or None when `now` is outside it.

    Wall-clock arithmetic in the subscriber's zone: "08:00" is 08:00 where they are
    on that day, whatever the DST offset, and the result is converted back to UTC.
    """
    start, end = window
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    elif clock >= start:
        inside, end_day = True, local.date() + timedelta(days=1)
    else:
        inside, end_day = clock < end, local.date()
    if not inside:
        return None
    # A wall time in a DST gap (fold=0) resolves to the instant just after the gap.
    until = datetime.combine(end_day, end, tzinfo=zone).astimezone(dt_timezone.utc)
    return until if until > now else None


def _quiet_hours_decision(message, subscriber, now):
    if message.is_transactional and not getattr(settings, "QUIET_HOURS_TRANSACTIONAL", False):
        return None
    window = quiet_hours(message.channel)
    if window is None:
        return None
    zone = _subscriber_zone(subscriber)
    until = quiet_until(window, zone, now)
    if until is None:
        return None
    start, end = window
    zone_name = getattr(zone, "key", "UTC")
    return Decision(HOLD, until=until, code="quiet_hours",
                    reason=f"quiet hours {start:%H:%M}–{end:%H:%M} ({zone_name}): held until "
                           f"{until.astimezone(zone):%H:%M} local time")


# --- Reachability, consent, suppression ------------------------------------------

def normalize_suppressed_address(value):
    """An address for the suppression list: a lower-case email, or a phone in E.164 form."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from subscribers.validation import normalize_phone

    value = _normalise(value)
    if "@" in value:
        validate_email(value)
        return value
    if not value:
        raise ValidationError("An email address or a phone number (E.164, e.g. +966501234567) is needed.",
                              code="required")
    return normalize_phone(value)


def _address(message, subscriber):
    """The phone or email this message goes to (None for push and in-app)."""
    if message.channel in (DeliveryChannel.SMS, DeliveryChannel.WHATSAPP):
        return subscriber.phone or None
    if message.channel == DeliveryChannel.EMAIL:
        return subscriber.email or None
    return None


def _normalise(address):
    address = (address or "").strip()
    if address.lower().startswith("whatsapp:"):
        address = address[len("whatsapp:"):]
    return address.lower()


def _candidate_addresses(message, subscriber):
    """Every address that identifies this shopper to the suppression list, normalised."""
    values = {subscriber.phone, subscriber.email}
    if message.channel != DeliveryChannel.PUSH:
        values.add(message.to)
    return {_normalise(v) for v in values if v}


def _channel_addresses(message, subscriber):
    """The addresses this message goes to on its own channel (for channel-specific entries)."""
    values = {_address(message, subscriber)}
    if message.channel != DeliveryChannel.PUSH:
        values.add(message.to)
    return {_normalise(v) for v in values if v}


def _reachability_decision(message, subscriber, consents, push_statuses):
    channel = message.channel
    name = CHANNEL_NAMES.get(channel, channel)
    if channel not in CHANNEL_NAMES:
        return _suppress("unknown_channel", f"unknown channel '{channel}'")
    if channel in (DeliveryChannel.SMS, DeliveryChannel.WHATSAPP) and not subscriber.phone:
        return _suppress("no_address", "no phone number")
    if channel == DeliveryChannel.EMAIL and not subscriber.email:
        return _suppress("no_address", "no email address")
    if channel == DeliveryChannel.PUSH:
        if message.push_subscription_id is None:
            return _suppress("no_address", "no push subscription")
        status = push_statuses.get(message.push_subscription_id)
        if status is None:
            return _suppress("no_address", "push subscription deleted")
        if status != PushSubscriptionStatus.ACTIVE:
            return _suppress("unreachable", f"push subscription {status}")
    if channel in CONSENT_CHANNELS:
        consent = consents.get((subscriber.pk, channel))
        if consent is None:
            return _suppress("no_consent", f"no {name} consent")
        if consent != ConsentStatus.GRANTED:
            return _suppress("no_consent", f"{name} consent revoked")
    return None


def _suppression_decision(message, subscriber, suppressions):
    name = CHANNEL_NAMES[message.channel]
    for address in sorted(_channel_addresses(message, subscriber)):
        if (message.channel, address) in suppressions:
            return _listed(f"{address} is on the {name} suppression list", suppressions[(message.channel, address)])
    # An entry for all channels names the person: it stops every channel, push and in-app too.
    for address in sorted(_candidate_addresses(message, subscriber)):
        if ("", address) in suppressions:
            return _listed(f"{address} is on the suppression list for all channels", suppressions[("", address)])
    return None


def _listed(text, reason):
    return _suppress("suppressed", f"{text} ({reason})" if reason else text)


# --- Frequency caps ---------------------------------------------------------------

def _send_key(channel, source_type, source_id, occurrence):
    # One send to a shopper is one (source, occurrence) on one channel: the same
    # campaign pushed to three of their browsers counts once.
    return (channel, source_type, source_id, occurrence)


def _caps_apply(message):
    if message.is_transactional:
        return False
    caps = frequency_caps(message.channel)
    if caps["day"] or caps["week"]:
        return True
    if message.channel in INTERRUPTING_CHANNELS:
        caps = frequency_caps("all")
        return bool(caps["day"] or caps["week"])
    return False


def _load_history(subscriber_ids, now):
    """{subscriber_id: {send_key: last sent_at}} of counted messages in the last week, one query."""
    history = {pk: {} for pk in subscriber_ids}
    if not subscriber_ids:
        return history
    rows = (
        Message.objects.filter(
            subscriber_id__in=subscriber_ids,
            channel__in=list(CHANNEL_NAMES),
            sent_at__gt=now - WEEK,
            status__in=COUNTED_STATUSES,
            is_transactional=False,
        )
        .values_list("subscriber_id", "channel", "source_type", "source_id", "occurrence")
        .annotate(last_sent=Max("sent_at"))
        .order_by()
    )
    for subscriber_id, channel, source_type, source_id, occurrence, last_sent in rows:
        history[subscriber_id][_send_key(channel, source_type, source_id, occurrence)] = last_sent
    return history


def _caps_decision(message, sends, now):
    key = _send_key(message.channel, message.source_type, message.source_id, message.occurrence)
    if key in sends:
        # Another copy of this very send (a sibling browser) already went: no new interruption.
        return None
    name = CHANNEL_NAMES[message.channel]
    scopes = [(frequency_caps(message.channel), {message.channel}, name)]
    if message.channel in INTERRUPTING_CHANNELS:
        scopes.append((frequency_caps("all"), set(INTERRUPTING_CHANNELS), "messages across channels"))
    for caps, channels, label in scopes:
        for period, length in (("day", DAY), ("week", WEEK)):
            limit = caps[period]
            if not limit:
                continue
            since = now - length
            count = sum(1 for k, sent in sends.items() if k[0] in channels and sent > since)
            if count >= limit:
                return _suppress("frequency_cap", f"frequency cap: {limit} {label} per {period}")
    return None


# --- Entry points -----------------------------------------------------------------

# --- Reachability as a query -----------------------------------------------------------

def reachable_q(channel):
    """Shoppers who can get a message on `channel` now, as a Q over Subscriber (the segments' `reachable`
    condition: an active push subscription; consent plus a phone or an email). In-app reaches everyone,
    on their next visit. What campaigns and journeys choose a shopper's channel with."""
    from django.db.models import Q

    from subscribers.segments import compile_rules

    if channel == DeliveryChannel.INAPP:
        return Q()
    return compile_rules({"type": "group", "match": "all",
                          "conditions": [{"type": "reachable", "channel": channel, "operator": "is"}]})


# --- Source gates ------------------------------------------------------------------

_SOURCE_GATES = {}


def register_source_gate(source_type, gate):
    """Let the owner of a source hold or stop its messages at send time (a paused campaign).

    `gate(source_ids, now)` gets the distinct source ids of one chunk's messages of
    `source_type` and returns {source_id: Decision} for those that must not go
    now (a HOLD is checked again at `until`); ids left out are sent as usual.
    Registered by the upper apps in their AppConfig.ready, so delivery imports
    none of them.
    """
    _SOURCE_GATES[source_type] = gate


def _gate_decisions(messages, now):
    wanted = {}
    for message in messages:
        if message.source_type in _SOURCE_GATES:
            wanted.setdefault(message.source_type, set()).add(message.source_id)
    decisions = {}
    for source_type, source_ids in wanted.items():
        for source_id, decision in (_SOURCE_GATES[source_type](source_ids, now) or {}).items():
            decisions[(source_type, source_id)] = decision
    return decisions


def check(message, *, now=None):
    """Decide whether `message` may be sent now. A few queries, however busy the shopper."""
    return check_many([message], now=now)[0]


def check_many(messages, *, now=None):
    """Decisions for a chunk of messages, in their order, in at most five queries (plus one per gated source type).

    Subscribers and push subscriptions loaded with select_related are used as they
    are (fewer queries); the caller must have loaded them just now.

    Messages of one chunk are decided in order, and a message allowed to go counts
    against the caps of the ones after it, as if it had been sent.
    """
    messages = list(messages)
    if not messages:
        return []
    now = now or timezone.now()
    subscribers = _load_subscribers(messages)

    consent_subscribers = {m.subscriber_id for m in messages if m.channel in CONSENT_CHANNELS}
    consents = {}
    if consent_subscribers:
        consents = {
            (subscriber_id, channel): status
            for subscriber_id, channel, status in Consent.objects.filter(
                subscriber_id__in=consent_subscribers
            ).values_list("subscriber_id", "channel", "status")
        }

    push_statuses = {}
    push_ids = set()
    for m in messages:
        if m.channel != DeliveryChannel.PUSH or m.push_subscription_id is None:
            continue
        if Message.push_subscription.is_cached(m) and m.push_subscription is not None:
            push_statuses[m.push_subscription_id] = m.push_subscription.status
        else:
            push_ids.add(m.push_subscription_id)
    if push_ids - set(push_statuses):
        push_statuses.update(PushSubscription.objects.filter(pk__in=push_ids - set(push_statuses))
                             .values_list("pk", "status"))

    addresses = set()
    for message in messages:
        addresses |= _candidate_addresses(message, subscribers[message.subscriber_id])
    suppressions = {}
    if addresses:
        suppressions = {
            (channel, value): reason
            for channel, value, reason in Suppression.objects.annotate(normal=Lower("value"))
            .filter(normal__in=addresses).values_list("channel", "normal", "reason")
        }

    gated = _gate_decisions(messages, now) if _SOURCE_GATES else {}
    histories = None
    decisions = []
    for message in messages:
        subscriber = subscribers[message.subscriber_id]
        decision = (
            gated.get((message.source_type, message.source_id))
            or _reachability_decision(message, subscriber, consents, push_statuses)
            or _suppression_decision(message, subscriber, suppressions)
            or _quiet_hours_decision(message, subscriber, now)
        )
        if decision is None and _caps_apply(message):
            if histories is None:
                histories = _load_history(
                    sorted({m.subscriber_id for m in messages if _caps_apply(m)}), now
                )
            sends = histories[message.subscriber_id]
            decision = _caps_decision(message, sends, now)
            if decision is None:
                sends[_send_key(message.channel, message.source_type, message.source_id, message.occurrence)] = now
        decisions.append(decision or SEND_NOW)
    return decisions


def _load_subscribers(messages):
    """The messages' subscribers, reusing the ones already loaded (select_related)."""
    found = {}
    missing = set()
    for message in messages:
        if Message.subscriber.is_cached(message):
            found[message.subscriber_id] = message.subscriber
        else:
            missing.add(message.subscriber_id)
    missing -= set(found)
    if missing:
        for subscriber in Subscriber.objects.filter(pk__in=missing).only(
            "pk", "phone", "email", "timezone"
        ):
            found[subscriber.pk] = subscriber
    return found
