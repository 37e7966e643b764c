"""The message outbox: the only writer of Message.status.

A message is a row before it is a send. `queue_message` / `fan_out` write rows
(unique idempotency key, so a repeat writes nothing), `deliver` claims due rows
with a conditional UPDATE (queued -> sending) so that a task delivered twice, a
double click or two workers racing send each message once, then asks the
policy, the rate limiter and the channel backend, and records what happened.
Every status change appends a MessageEvent.

Waiting is a row: retries, quiet hours and scheduled sends move `send_at`, and
the periodic `dispatch_due` tick hands due rows to the send queues; a worker
killed mid-chunk leaves rows in "sending", which `reclaim_stuck` puts back in
the queue only where a second send is harmless (push, email, in-app, sandbox).
Twilio has no idempotency key, so there a stuck row becomes "unknown".
"""
import hashlib
import hmac
import importlib
import json
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from subscribers import bulk_sql
from subscribers import services as subscriber_services
from subscribers.models import Channel as ConsentChannel
from subscribers.models import PushSubscription, PushSubscriptionStatus, Source

from . import links, ratelimit
from .channels import get_backend
from .channels.base import ChannelBackend, DeliveryError, SendResult
from .links import click_path, link_signature, tracked_links  # noqa: F401 - the click tracking API
from .models import (
    DeliveryChannel, Message, MessageEvent, MessageEventKind, MessageLane, MessageStatus, Suppression,
)

log = logging.getLogger(__name__)

SEND_QUEUE = "send"
BULK_QUEUE = "bulk"

# Provider error codes with a lasting consequence (see docs/channels.md).
PUSH_GONE_CODES = {"404", "410"}
TWILIO_OPTED_OUT_CODES = {"21610"}
TWILIO_INVALID_NUMBER_CODES = {"21211", "21614"}

# Channels whose provider gives no way to make a resend harmless (Twilio: no
# idempotency key). A backend may say otherwise with `resend_safe`.
UNSAFE_TO_RESEND_CHANNELS = {DeliveryChannel.SMS, DeliveryChannel.WHATSAPP}


class RenderingUnavailable(Exception):
    """A template was given but delivery.rendering is not installed."""


# --- Keys, codes, addresses --------------------------------------------------------

def idempotency_key_for(*, source_type, source_id, subscriber_id, channel, occurrence="", push_subscription_id=None):
    key = f"{source_type}:{source_id}:{subscriber_id}:{channel}:{occurrence}"
    if push_subscription_id is not None:
        key = f"{key}:{push_subscription_id}"
    if len(key) > 255:
        # Long source ids or occurrences still get one stable, unique key.
        key = f"{key[:190]}~{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def new_code():
    """A short, unguessable public code (click links in SMS count every character)."""
    return secrets.token_urlsafe(9)


def address_for(subscriber, channel, push_subscription=None):
    if channel == DeliveryChannel.PUSH:
        return push_subscription.endpoint if push_subscription is not None else ""
    if channel in (DeliveryChannel.SMS, DeliveryChannel.WHATSAPP):
        return subscriber.phone or ""
    if channel == DeliveryChannel.EMAIL:
        return subscriber.email or ""
    return ""


def _render(*, template, channel, subscriber, context, content):
    """(locale, content) for a new message; content given directly needs no renderer."""
    if template is None:
        return (subscriber.locale or ""), dict(content or {})
    try:
        rendering = importlib.import_module("delivery.rendering")
    except ModuleNotFoundError as error:
        if error.name != "delivery.rendering":
            raise
        raise RenderingUnavailable("delivery.rendering is not installed; pass content= instead") from None
    return rendering.render_message(template=template, channel=channel, subscriber=subscriber, context=context or {})


def template_context(context):
    """The context with its cart or order as templates see them (dicts): converted once per message, for both
    the render and the stored copy (a cart's restore link is signed on each conversion)."""
    if not context:
        return {}
    rendering = importlib.import_module("delivery.rendering")
    context = dict(context)
    for name, convert in (("cart", rendering.cart_context), ("order", rendering.order_context)):
        if context.get(name) is not None and not isinstance(context[name], dict):
            context[name] = convert(context[name])
    return context


def storable_context(context):
    """The context as kept on the message: JSON (a cart or order as templates see it, dates in ISO 8601)."""
    if not context:
        return {}
    return json.loads(json.dumps(template_context(context), cls=DjangoJSONEncoder))


def _render_error_class():
    try:
        return importlib.import_module("delivery.rendering").RenderError
    except (ModuleNotFoundError, AttributeError):
        return RenderingUnavailable


def _policy():
    try:
        return importlib.import_module("delivery.policy")
    except ModuleNotFoundError as error:
        if error.name != "delivery.policy":
            raise
        return None


def _event(message_id, kind, at, **detail):
    return MessageEvent(message_id=message_id, kind=kind, occurred_at=at, detail=detail)


def _log_events_where(where, params, kind, at, detail=None):
    """Append one `kind` event for every message matching `where`, in one INSERT … SELECT.

    The hot path (claiming and recording chunks of hundreds) would otherwise spend
    more CPU building event objects in Python than on sending.
    """
    message_table = Message._meta.db_table
    event_table = MessageEvent._meta.db_table
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    sql = (
        f"INSERT INTO {event_table} (message_id, kind, detail, occurred_at) "
        f"SELECT id, %s, %s{cast}, %s FROM {message_table} WHERE {where}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [str(kind), json.dumps(detail or {}), _db_value(at), *params])


# --- Queueing ---------------------------------------------------------------------

def queue_message(*, subscriber, channel, source_type, source_id="", occurrence="", template=None, content=None,
                  context=None, transactional=False, send_at=None, push_subscription=None, lane=None):
    """Write one Message row (rendered now) unless its idempotency key exists; -> (message, created).

    A render error (a missing variable without a default) keeps the row, failed
    with the reason, so the marketer sees why nothing went out. Links in SMS,
    WhatsApp and email content become the message's tracking links (delivery.links).
    """
    if channel == DeliveryChannel.PUSH and push_subscription is None:
        raise ValueError("A push message names its push_subscription (one message per browser).")
    key = idempotency_key_for(
        source_type=source_type, source_id=source_id, subscriber_id=subscriber.pk, channel=channel,
        occurrence=occurrence, push_subscription_id=push_subscription.pk if push_subscription else None,
    )
    existing = Message.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing, False

    now = timezone.now()
    status, error, locale, rendered = MessageStatus.QUEUED, "", subscriber.locale or "", {}
    try:
        locale, rendered = _render(template=template, channel=channel, subscriber=subscriber, context=context,
                                   content=content)
    except (_render_error_class(), RenderingUnavailable) as problem:
        status, error = MessageStatus.FAILED, str(problem)
    code = new_code()
    if status == MessageStatus.QUEUED:
        rendered = links.track_links(rendered, channel=channel, code=code)
    if lane is None:
        lane = MessageLane.TRANSACTIONAL if transactional else MessageLane.BULK
    message = Message(
        idempotency_key=key, code=code, subscriber=subscriber, channel=channel, template=template,
        locale=locale or "", source_type=source_type, source_id=str(source_id or ""),
        occurrence=str(occurrence or ""), lane=lane,
        is_transactional=bool(transactional or (template is not None and template.is_transactional)),
        context=storable_context(context), content=rendered, push_subscription=push_subscription,
        to=address_for(subscriber, channel, push_subscription), status=status, send_at=send_at or now,
        queued_at=now,
    )
    if status == MessageStatus.FAILED:
        message.error, message.status_reason, message.failed_at = error, "render_error", now
    try:
        with transaction.atomic():
            message.save(force_insert=True)
            MessageEvent.objects.create(message=message, kind=MessageEventKind.QUEUED, occurred_at=now)
            if status == MessageStatus.FAILED:
                MessageEvent.objects.create(message=message, kind=MessageEventKind.FAILED, occurred_at=now,
                                            detail={"reason": "render_error", "error": error})
    except IntegrityError:
        # Lost a race with the same key (a double click): the other row is the message.
        existing = Message.objects.filter(idempotency_key=key).first()
        if existing is None:
            raise
        return existing, False
    return message, True


def send_message(**kwargs):
    """Queue one message on the transactional lane and enqueue its send after commit; -> message.

    Calling it twice with the same arguments (a double click) returns the same
    message and sends it once.
    """
    kwargs.setdefault("lane", MessageLane.TRANSACTIONAL)
    message, _created = queue_message(**kwargs)
    now = timezone.now()
    if message.status == MessageStatus.QUEUED and message.send_at <= now:
        enqueue([message.pk], lane=message.lane, now=now)
    return message


def enqueue(message_ids, *, lane, now=None, mark=True):
    """Hand messages to the send queue of their lane once the transaction commits.

    `mark=False` when the rows were written with their dispatched_at already set.
    """
    from . import tasks

    message_ids = list(message_ids)
    if not message_ids:
        return
    if mark:
        Message.objects.filter(pk__in=message_ids).update(dispatched_at=now or timezone.now())
    task = tasks.send_transactional if lane == MessageLane.TRANSACTIONAL else tasks.send_bulk_chunk
    size = chunk_size()
    for start in range(0, len(message_ids), size):
        ids = message_ids[start:start + size]
        transaction.on_commit(lambda ids=ids: task.delay(ids))


def chunk_size():
    return max(1, int(getattr(settings, "DELIVERY_CHUNK_SIZE", 500)))


def _build_row(*, key, subscriber, channel, template, context, stored_context, content, source_type, source_id,
               occurrence, push_subscription, lane, transactional, send_at, now, render_error, track):
    """One unsaved Message: rendered (a render error makes it a failed row with the reason), links tracked."""
    status, error = MessageStatus.QUEUED, ""
    try:
        locale, rendered = _render(template=template, channel=channel, subscriber=subscriber, context=context,
                                   content=content)
    except (render_error, RenderingUnavailable) as problem:
        locale, rendered, status, error = subscriber.locale or "", {}, MessageStatus.FAILED, str(problem)
    code = new_code()
    if not error:
        rendered = links.track_links(rendered, channel=channel, code=code, channels=track)
    return Message(
        idempotency_key=key, code=code, subscriber=subscriber, channel=channel, template=template,
        locale=locale or "", source_type=source_type, source_id=str(source_id or ""),
        occurrence=str(occurrence or ""), lane=lane,
        is_transactional=bool(transactional or (template is not None and template.is_transactional)),
        context=stored_context, content=rendered, push_subscription=push_subscription,
        to=address_for(subscriber, channel, push_subscription), status=status,
        status_reason="render_error" if error else "", error=error,
        failed_at=now if error else None, send_at=send_at, queued_at=now,
        dispatched_at=now if send_at <= now and not error else None,
    )


def _write_rows(rows, *, now):
    """bulk_create the rows (a concurrent repeat's rows are skipped) with their history; -> the rows this call
    wrote as (pk, status, error, send_at, idempotency_key)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            written = _insert_returning(rows)
        else:
            Message.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
            # Rows this call wrote (not a concurrent repeat's): this call's keys and queue time.
            written = list(Message.objects.filter(
                idempotency_key__in=[row.idempotency_key for row in rows], queued_at=now,
            ).values_list("pk", "status", "error", "send_at", "idempotency_key"))
        for start in range(0, len(written), 500):
            ids = [row[0] for row in written[start:start + 500]]
            _log_events_where(f"id IN ({', '.join(['%s'] * len(ids))})", ids, MessageEventKind.QUEUED, now)
        MessageEvent.objects.bulk_create([
            _event(pk, MessageEventKind.FAILED, now, reason="render_error", error=error)
            for pk, status, error, _at, _key in written if status == MessageStatus.FAILED])
    return written


def _insert_returning(rows):
    """PostgreSQL: insert the rows in one statement with one parameter (subscribers.bulk_sql), skipping those
    whose key or code exists; -> the rows written as (pk, status, error, send_at, idempotency_key).

    bulk_create sends each column as an array that psycopg escapes element by element in Python: profiled in
    bench/journeys it was the largest cost of writing a journey step's messages.
    """
    fields = [field for field in Message._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) SELECT {columns} FROM {bulk_sql.rows_of(Message)} "
            f"ON CONFLICT DO NOTHING RETURNING id, status, error, send_at, idempotency_key",
            [bulk_sql.json_rows(rows, fields)])
        return cursor.fetchall()


def queue_many(drafts, *, now=None, lane=MessageLane.TRANSACTIONAL):
    """Write many messages, each with its own subscriber, context and key (a journey step for a batch of
    enrolments), in a few statements, and hand the due ones to the senders after commit.

    Each draft is a dict with subscriber, channel, template, context, source_type, source_id, occurrence
    and optionally push_subscription, transactional, send_at. A draft whose key exists writes nothing.
    -> {idempotency key: (pk, code, status)} for every draft, new or already there.
    """
    now = now or timezone.now()
    render_error = _render_error_class()
    track = links.tracked_channels()
    keyed = {}
    for draft in drafts:
        browser = draft.get("push_subscription")
        key = idempotency_key_for(
            source_type=draft["source_type"], source_id=draft["source_id"], subscriber_id=draft["subscriber"].pk,
            channel=draft["channel"], occurrence=draft.get("occurrence", ""),
            push_subscription_id=browser.pk if browser else None)
        keyed[key] = draft
    existing = dict((key, (pk, code, status)) for key, pk, code, status in Message.objects.filter(
        idempotency_key__in=list(keyed)).values_list("idempotency_key", "pk", "code", "status"))
    contexts = {key: template_context(draft.get("context")) for key, draft in keyed.items() if key not in existing}
    rows = [
        _build_row(key=key, subscriber=draft["subscriber"], channel=draft["channel"], template=draft.get("template"),
                   context=contexts[key], stored_context=storable_context(contexts[key]),
                   content=draft.get("content"), source_type=draft["source_type"], source_id=draft["source_id"],
                   occurrence=draft.get("occurrence", ""), push_subscription=draft.get("push_subscription"),
                   lane=lane, transactional=draft.get("transactional", False), send_at=draft.get("send_at") or now,
                   now=now, render_error=render_error, track=track)
        for key, draft in keyed.items() if key not in existing]
    result = dict(existing)
    if rows:
        codes = {row.idempotency_key: row.code for row in rows}
        written = _write_rows(rows, now=now)
        enqueue([pk for pk, status, _error, at, _key in written if status == MessageStatus.QUEUED and at <= now],
                lane=lane, now=now, mark=False)
        result.update({key: (pk, codes[key], status) for pk, status, _error, _at, key in written})
        missing = [row.idempotency_key for row in rows if row.idempotency_key not in result]
        if missing:  # a concurrent writer won those keys
            result.update({key: (pk, code, status) for key, pk, code, status in Message.objects.filter(
                idempotency_key__in=missing).values_list("idempotency_key", "pk", "code", "status")})
    return result


def fan_out(*, audience, channel, template, source_type, source_id, occurrence="", context=None, send_at=None,
            chunk_size=1000, content=None, transactional=False, spread_per_minute=0):
    """Write one message per subscriber of `audience` (per active push subscription for push) and send.

    Walks the audience in primary-key order in chunks (no OFFSET, nothing held in
    memory beyond a chunk), writes rows with bulk_create(ignore_conflicts) so a
    repeat writes nothing new, and enqueues the new rows on the bulk lane.
    `spread_per_minute` (a campaign's throttle) gives the first N rows `send_at`,
    the next N a minute later, and so on; the periodic tick sends each when due.
    `transactional` exempts the messages from frequency caps and quiet hours.
    Returns counts: subscribers, created, existing, failed (render errors), and
    last_send_at (the latest send_at written, or None).
    """
    counts = {"subscribers": 0, "created": 0, "existing": 0, "failed": 0, "last_send_at": None}
    now = timezone.now()
    base_at = send_at or now
    spread = max(0, int(spread_per_minute or 0))
    position = 0
    context = template_context(context)
    stored_context = storable_context(context)
    due_now = send_at is None or send_at <= now
    render_error = _render_error_class()
    track = links.tracked_channels()
    last_pk = 0
    audience = audience.order_by("pk")
    while True:
        subscribers = list(audience.filter(pk__gt=last_pk)[:chunk_size])
        if not subscribers:
            break
        last_pk = subscribers[-1].pk
        counts["subscribers"] += len(subscribers)
        targets = []  # (subscriber, push_subscription or None)
        if channel == DeliveryChannel.PUSH:
            by_subscriber = {}
            for sub in PushSubscription.objects.filter(
                    subscriber_id__in=[s.pk for s in subscribers], status=PushSubscriptionStatus.ACTIVE,
            ).order_by("pk"):
                by_subscriber.setdefault(sub.subscriber_id, []).append(sub)
            for subscriber in subscribers:
                targets.extend((subscriber, sub) for sub in by_subscriber.get(subscriber.pk, []))
        else:
            targets = [(subscriber, None) for subscriber in subscribers]

        keyed = {}
        for subscriber, push_subscription in targets:
            key = idempotency_key_for(
                source_type=source_type, source_id=source_id, subscriber_id=subscriber.pk, channel=channel,
                occurrence=occurrence, push_subscription_id=push_subscription.pk if push_subscription else None)
            keyed[key] = (subscriber, push_subscription)
        existing = set(Message.objects.filter(idempotency_key__in=list(keyed)).values_list("idempotency_key",
                                                                                          flat=True))
        counts["existing"] += len(existing)
        rows = []
        for key, (subscriber, push_subscription) in keyed.items():
            if key in existing:
                continue
            row_at = base_at + timedelta(minutes=position // spread) if spread else base_at
            position += 1
            rows.append(_build_row(
                key=key, subscriber=subscriber, channel=channel, template=template, context=context,
                stored_context=stored_context, content=content, source_type=source_type, source_id=source_id,
                occurrence=occurrence, push_subscription=push_subscription, lane=MessageLane.BULK,
                transactional=transactional, send_at=row_at, now=now, render_error=render_error, track=track))
        if not rows:
            continue
        written = _write_rows(rows, now=now)
        counts["created"] += len(written)
        counts["failed"] += sum(1 for row in written if row[1] == MessageStatus.FAILED)
        counts["existing"] += len(rows) - len(written)
        if written:
            latest = max(row[3] for row in written)
            counts["last_send_at"] = max(filter(None, [counts["last_send_at"], latest]))
        if due_now:
            enqueue([pk for pk, status, _error, at, _key in written if status == MessageStatus.QUEUED and at <= now],
                    lane=MessageLane.BULK, now=now, mark=False)
    return counts


# --- Sending ----------------------------------------------------------------------

def claim(message_ids, *, now=None):
    """Move due, queued messages to "sending" for this worker; -> the ids it won.

    One conditional UPDATE: a row already claimed elsewhere (a duplicate task, a
    second worker, a double click) no longer matches `status=queued`, so exactly
    one claimer gets it. The token tells this worker which rows were its own.
    """
    now = now or timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        Message.objects.filter(pk__in=list(message_ids), status=MessageStatus.QUEUED, send_at__lte=now).update(
            status=MessageStatus.SENDING, claimed_at=now, claim_token=token, attempts=F("attempts") + 1,
            provider="")
        won = list(Message.objects.filter(pk__in=list(message_ids), claim_token=token,
                                          status=MessageStatus.SENDING).values_list("pk", flat=True))
        if won:
            _log_events_where("claim_token = %s", [token], MessageEventKind.SENDING, now)
    return won


def resend_is_safe(channel):
    """May a message stuck in "sending" on this channel be sent again without risk of a duplicate?"""
    backend = get_backend(channel)
    flag = getattr(backend, "resend_safe", None)
    if flag is None:
        flag = channel not in UNSAFE_TO_RESEND_CHANNELS
    return bool(flag)


def retry_delay(attempts, retry_after=None):
    """Seconds before the next try: the provider's Retry-After when it gave one, else exponential backoff."""
    base = float(settings.DELIVERY_RETRY_BASE_SECONDS)
    ceiling = float(settings.DELIVERY_RETRY_MAX_SECONDS)
    if retry_after is not None:
        return min(max(float(retry_after), 0.0), ceiling)
    return min(base * (2 ** max(attempts - 1, 0)), ceiling)


def deliver(message_ids, *, now=None):
    """Claim, check, rate-limit, send and record the given messages. -> {status: count} of outcomes.

    Safe to call with ids that are not due, not queued or already sent: those
    are skipped.
    """
    now = now or timezone.now()
    won = claim(message_ids, now=now)
    outcomes = {}
    if not won:
        return outcomes
    messages = list(Message.objects.filter(pk__in=won).select_related("subscriber", "push_subscription")
                    .order_by("pk"))
    policy = _policy()
    ready = []
    addressed = []
    for message in messages:
        if message.channel != DeliveryChannel.INAPP and not message.to:
            _finish(message, MessageStatus.SUPPRESSED, MessageEventKind.SUPPRESSED, reason="no_address")
            outcomes["suppressed"] = outcomes.get("suppressed", 0) + 1
        else:
            addressed.append(message)
    decisions = [None] * len(addressed)
    if policy is not None:
        if hasattr(policy, "check_many"):
            decisions = policy.check_many(addressed, now=now)
        else:
            decisions = [policy.check(message, now=now) for message in addressed]
    for message, decision in zip(addressed, decisions):
        if decision is not None:
            if decision.action == "suppress":
                _finish(message, MessageStatus.SUPPRESSED, MessageEventKind.SUPPRESSED, reason=decision.reason)
                outcomes["suppressed"] = outcomes.get("suppressed", 0) + 1
                continue
            if decision.action == "hold":
                _hold(message, until=decision.until or now, reason=decision.reason)
                outcomes["held"] = outcomes.get("held", 0) + 1
                continue
        ready.append(message)

    by_channel = {}
    for message in ready:
        by_channel.setdefault(message.channel, []).append(message)
    for channel, batch in by_channel.items():
        backend = get_backend(channel)
        for sendable, deferred in _rate_limited_batches(backend, batch):
            for message in deferred:
                _requeue(message, send_at=max(now, timezone.now()) + timedelta(seconds=deferred[message]),
                         reason="rate_limited", count_attempt=False)
                outcomes["rate_limited"] = outcomes.get("rate_limited", 0) + 1
            if not sendable:
                continue
            marks_handover = not resend_is_safe(channel)
            if type(backend).send_many is ChannelBackend.send_many:
                # One at a time anyway: record each outcome as soon as it is known, so a
                # worker killed mid-chunk leaves at most the message in flight unrecorded.
                for message in sendable:
                    if marks_handover:
                        _mark_handed_over([message], backend)
                    status = _record_result(message, backend, _send_one(backend, message), now=now)
                    outcomes[status] = outcomes.get(status, 0) + 1
                continue
            if marks_handover:
                _mark_handed_over(sendable, backend)
            try:
                results = backend.send_many(sendable)
            except Exception as error:  # a bug or an unexpected library error: nothing is known
                log.exception("channel backend %s failed on a batch", backend.__class__.__name__)
                results = [DeliveryError(f"{error.__class__.__name__}: {error}", unknown=True)] * len(sendable)
            for status, count in _record_results(list(zip(sendable, results)), backend, now=now).items():
                outcomes[status] = outcomes.get(status, 0) + count
    return outcomes


def _record_results(pairs, backend, *, now=None):
    """Record a batch: accepted sends in a few statements whatever the batch size, errors one by one."""
    now = max(now or timezone.now(), timezone.now())
    provider = getattr(backend, "provider", "") or ""
    outcomes = {}
    accepted = {MessageStatus.SENT: [], MessageStatus.DELIVERED: []}
    for message, result in pairs:
        if isinstance(result, SendResult):
            status = MessageStatus.DELIVERED if result.status == "delivered" else MessageStatus.SENT
            accepted[status].append((message, result))
        else:
            status = _record_result(message, backend, result, now=now)
            outcomes[status] = outcomes.get(status, 0) + 1
    with transaction.atomic():
        for status, done in accepted.items():
            if not done:
                continue
            fields = {"status": status, "sent_at": now, "provider": provider, "error": "", "status_reason": ""}
            if status == MessageStatus.DELIVERED:
                fields["delivered_at"] = now
            _mark_accepted([(message.pk, result.provider_id or "") for message, result in done], fields)
            for start in range(0, len(done), 500):
                ids = [message.pk for message, _result in done[start:start + 500]]
                where = f"id IN ({', '.join(['%s'] * len(ids))})"
                _log_events_where(where, ids, MessageEventKind.SENT, now, {"provider": provider})
                if status == MessageStatus.DELIVERED:
                    _log_events_where(where, ids, MessageEventKind.DELIVERED, now)
            outcomes[status] = outcomes.get(status, 0) + len(done)
    return outcomes


def _mark_accepted(rows, fields, batch_size=500):
    """sending -> `fields` plus each row's own provider id, one statement per batch.

    Django's bulk_update builds a CASE per row in Python, which cost more CPU
    than the sends themselves; a VALUES list joined in the database does not.
    """
    table = Message._meta.db_table
    assignments = ", ".join(f"{connection.ops.quote_name(name)} = %s" for name in fields)
    for start in range(0, len(rows), batch_size):
        part = rows[start:start + batch_size]
        values = ", ".join(["(%s, %s)"] * len(part))
        params = [value for row in part for value in row]
        sql = (
            f"WITH accepted (id, provider_id) AS (VALUES {values}) "
            f"UPDATE {table} SET {assignments}, "
            f"provider_id = (SELECT accepted.provider_id FROM accepted WHERE accepted.id = {table}.id) "
            f"WHERE {table}.id IN (SELECT accepted.id FROM accepted) AND {table}.status = %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params + [_db_value(value) for value in fields.values()] + [MessageStatus.SENDING])


def _db_value(value):
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return str(value) if isinstance(value, str) else value


def _mark_handed_over(messages, backend):
    # Where a resend could duplicate (Twilio), note which rows reached the provider, so a
    # lost worker's rows that never did can be queued again instead of marked unknown.
    Message.objects.filter(pk__in=[m.pk for m in messages], status=MessageStatus.SENDING).update(
        provider=backend.provider or backend.__class__.__name__)


def _send_one(backend, message):
    try:
        return backend.send(message)
    except DeliveryError as error:
        return error
    except Exception as error:  # a bug or an unexpected library error: nothing is known
        log.exception("channel backend %s failed on message %s", backend.__class__.__name__, message.code)
        return DeliveryError(f"{error.__class__.__name__}: {error}", unknown=True)


def _rate_limited_batches(backend, batch):
    """Yield (messages to send now, {message: seconds to wait} to put back) within the provider's rate."""
    provider = backend.provider or backend.__class__.__name__
    limit = ratelimit.limit_for(provider)
    if limit is None:
        yield batch, {}
        return
    size = max(1, int(limit.burst))
    max_wait = float(settings.DELIVERY_RATE_LIMIT_MAX_WAIT_SECONDS)
    for start in range(0, len(batch), size):
        part = batch[start:start + size]
        waited = 0.0
        while True:
            wait = ratelimit.take(provider, len(part), limit=limit)
            if wait <= 0:
                yield part, {}
                break
            if waited + wait > max_wait:
                # Put the rest back in the queue rather than hold a worker.
                rest = batch[start:]
                yield [], {message: wait for message in rest}
                return
            time.sleep(wait)
            waited += wait


def _record_result(message, backend, result, *, now=None):
    # The caller's clock when it runs ahead of ours (a tick for a future time, tests).
    now = max(now or timezone.now(), timezone.now())
    provider = getattr(backend, "provider", "") or ""
    if isinstance(result, SendResult):
        delivered = result.status == "delivered"
        fields = {"status": MessageStatus.DELIVERED if delivered else MessageStatus.SENT, "sent_at": now,
                  "provider": provider, "provider_id": result.provider_id or "", "error": "", "status_reason": ""}
        if delivered:
            fields["delivered_at"] = now
        with transaction.atomic():
            Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(**fields)
            MessageEvent.objects.create(message_id=message.pk, kind=MessageEventKind.SENT, occurred_at=now,
                                        detail={"provider": provider, "provider_id": result.provider_id or ""})
            if delivered:
                MessageEvent.objects.create(message_id=message.pk, kind=MessageEventKind.DELIVERED, occurred_at=now)
        return fields["status"]

    error = result
    if not isinstance(error, DeliveryError):
        error = DeliveryError(str(error), unknown=True)
    detail = {"code": error.code}
    if error.permanent:
        _finish(message, MessageStatus.FAILED, MessageEventKind.FAILED, reason=error.code or "permanent",
                error=str(error), provider=provider, at=now, **detail)
        _apply_permanent_error(message, error.code, provider=provider)
        return MessageStatus.FAILED
    if error.unknown and not resend_is_safe(message.channel):
        _finish(message, MessageStatus.UNKNOWN, MessageEventKind.UNKNOWN, reason="no_answer",
                error=str(error), provider=provider, at=now, **detail)
        return MessageStatus.UNKNOWN
    attempts = Message.objects.filter(pk=message.pk).values_list("attempts", flat=True).first() or message.attempts
    if attempts >= int(settings.DELIVERY_MAX_ATTEMPTS):
        _finish(message, MessageStatus.FAILED, MessageEventKind.FAILED, reason="too_many_attempts",
                error=str(error), provider=provider, at=now, **detail)
        return MessageStatus.FAILED
    delay = retry_delay(attempts, error.retry_after)
    _requeue(message, send_at=now + timedelta(seconds=delay), reason=error.code or "transient", error=str(error),
             count_attempt=True, detail={**detail, "error": str(error)})
    return "retry"


def _finish(message, status, kind, *, reason="", error="", provider=None, at=None, **detail):
    """sending -> a final status (sent outcomes are recorded in _record_result)."""
    at = at or timezone.now()
    fields = {"status": status, "status_reason": (reason or "")[:300]}
    if error:
        fields["error"] = error
    if provider is not None:
        fields["provider"] = provider
    if status == MessageStatus.FAILED:
        fields["failed_at"] = at
    if status == MessageStatus.SUPPRESSED:
        # Not an attempt: the policy said no before anything was sent.
        fields["attempts"] = F("attempts") - 1
    if error:
        detail["error"] = error
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(**fields)
        if changed:
            MessageEvent.objects.create(message_id=message.pk, kind=kind, occurred_at=at,
                                        detail={"reason": reason, **detail})
    return changed


def _hold(message, *, until, reason=""):
    now = timezone.now()
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
            status=MessageStatus.HELD, send_at=until, status_reason=(reason or "")[:300], dispatched_at=None,
            attempts=F("attempts") - 1)
        if changed:
            MessageEvent.objects.create(message_id=message.pk, kind=MessageEventKind.HELD, occurred_at=now,
                                        detail={"reason": reason, "until": until.isoformat()})
    return changed


def _requeue(message, *, send_at, reason, error="", count_attempt=True, detail=None):
    now = timezone.now()
    fields = {"status": MessageStatus.QUEUED, "send_at": send_at, "status_reason": reason[:300],
              "dispatched_at": None, "claim_token": ""}
    if error:
        fields["error"] = error
    if not count_attempt:
        fields["attempts"] = F("attempts") - 1
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(**fields)
        if changed:
            MessageEvent.objects.create(message_id=message.pk, kind=MessageEventKind.RETRY, occurred_at=now,
                                        detail={"reason": reason, "send_at": send_at.isoformat(), **(detail or {})})
    return changed


def _apply_permanent_error(message, code, *, provider=""):
    """What a permanent provider error means beyond this message."""
    if message.channel == DeliveryChannel.PUSH and code in PUSH_GONE_CODES:
        endpoint = message.push_subscription.endpoint if message.push_subscription_id else message.to
        if endpoint:
            subscriber_services.expire_push_subscription(endpoint=endpoint, reason=f"push service answered {code}")
    elif message.channel in (DeliveryChannel.SMS, DeliveryChannel.WHATSAPP) and code in TWILIO_OPTED_OUT_CODES:
        subscriber_services.revoke_consent(subscriber=message.subscriber, channel=message.channel,
                                           source=Source.PROVIDER,
                                           evidence={"provider": provider, "code": code, "message": message.code})
    elif message.channel in (DeliveryChannel.SMS, DeliveryChannel.WHATSAPP) and code in TWILIO_INVALID_NUMBER_CODES:
        if message.to:
            Suppression.objects.get_or_create(channel=message.channel, value=message.to,
                                              defaults={"reason": f"invalid number ({provider} {code})"})


# --- The periodic tick ------------------------------------------------------------

def reclaim_stuck(*, now=None):
    """Rows left in "sending" past the lease (a killed worker): -> {"requeued": n, "unknown": m}.

    They go back to the queue where a resend is harmless (push, email, in-app,
    sandbox) or where the row never reached the provider; a row that reached a
    provider without idempotency (Twilio) becomes "unknown" and is not resent.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=int(settings.DELIVERY_SENDING_LEASE_SECONDS))
    counts = {"requeued": 0, "unknown": 0}
    stuck = Message.objects.filter(status=MessageStatus.SENDING, claimed_at__lt=cutoff)
    for channel in stuck.values_list("channel", flat=True).distinct().order_by():
        safe = resend_is_safe(channel)
        with transaction.atomic():
            rows = list(stuck.filter(channel=channel).select_for_update(skip_locked=True)
                        .values_list("pk", "provider")[:10000])
            requeue = [pk for pk, provider in rows if safe or not provider]
            unknown = [pk for pk, provider in rows if not safe and provider]
            if requeue:
                Message.objects.filter(pk__in=requeue, status=MessageStatus.SENDING).update(
                    status=MessageStatus.QUEUED, send_at=now, dispatched_at=None, claim_token="",
                    status_reason="reclaimed")
                MessageEvent.objects.bulk_create(
                    [_event(pk, MessageEventKind.RETRY, now, reason="reclaimed") for pk in requeue])
            if unknown:
                Message.objects.filter(pk__in=unknown, status=MessageStatus.SENDING).update(
                    status=MessageStatus.UNKNOWN, status_reason="worker_lost")
                MessageEvent.objects.bulk_create(
                    [_event(pk, MessageEventKind.UNKNOWN, now, reason="worker_lost") for pk in unknown])
            counts["requeued"] += len(requeue)
            counts["unknown"] += len(unknown)
    return counts


def dispatch_due(*, now=None, limit=None):
    """Hand due queued/held rows to the send queues (held ones go back to queued). -> count handed over.

    Rows whose task was enqueued recently are left alone, so a backlog is not
    enqueued again on every tick; a task lost by the broker is enqueued again
    after DELIVERY_REDISPATCH_SECONDS.
    """
    now = now or timezone.now()
    limit = limit or int(settings.DELIVERY_DISPATCH_BATCH)
    redispatch_before = now - timedelta(seconds=int(settings.DELIVERY_REDISPATCH_SECONDS))
    with transaction.atomic():
        rows = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(status__in=[MessageStatus.QUEUED, MessageStatus.HELD], send_at__lte=now)
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=redispatch_before))
            .order_by("send_at", "pk").values_list("pk", "status", "lane")[:limit]
        )
        held = [pk for pk, status, _lane in rows if status == MessageStatus.HELD]
        if held:
            Message.objects.filter(pk__in=held, status=MessageStatus.HELD).update(
                status=MessageStatus.QUEUED, status_reason="")
            MessageEvent.objects.bulk_create([_event(pk, MessageEventKind.QUEUED, now, reason="released")
                                              for pk in held])
        for lane in (MessageLane.TRANSACTIONAL, MessageLane.BULK):
            enqueue([pk for pk, _status, row_lane in rows if row_lane == lane], lane=lane, now=now)
    return len(rows)


# --- What happened afterwards -----------------------------------------------------

def record_provider_status(*, provider, provider_id, status, code="", error_code="", error_message="", at=None):
    """A provider's status callback. -> the message, or None for an unknown id (callers answer 200).

    `code` is the message code carried in the callback URL: a callback can beat
    the worker to saving the provider's id (Twilio answers the send, then calls
    back at once), so the code finds the message either way and the id is kept.
    """
    at = at or timezone.now()
    if not provider_id:
        return None
    if code:
        message = Message.objects.select_related("subscriber").filter(code=code).first()
        if message is not None and message.provider_id and message.provider_id != provider_id:
            return None
    else:
        message = Message.objects.select_related("subscriber").filter(provider=provider,
                                                                      provider_id=provider_id).first()
    if message is None:
        return None
    # A callback for a send still being recorded counts as the provider's answer.
    open_statuses = [MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.UNKNOWN]
    identity = {"provider": provider, "provider_id": provider_id}
    with transaction.atomic():
        if status == "delivered":
            changed = Message.objects.filter(pk=message.pk, status__in=open_statuses).update(
                status=MessageStatus.DELIVERED, delivered_at=at, sent_at=Coalesce(F("sent_at"), Value(at)),
                **identity)
            kind = MessageEventKind.DELIVERED
        elif status in ("failed", "undelivered"):
            changed = Message.objects.filter(pk=message.pk, status__in=open_statuses).update(
                status=MessageStatus.FAILED, failed_at=at, status_reason=str(error_code or status)[:300],
                error=error_message or status, **identity)
            kind = MessageEventKind.FAILED
        elif status == "sent":
            changed = Message.objects.filter(
                pk=message.pk, status__in=[MessageStatus.SENDING, MessageStatus.UNKNOWN]).update(
                status=MessageStatus.SENT, sent_at=Coalesce(F("sent_at"), Value(at)), **identity)
            kind = MessageEventKind.SENT
        else:
            raise ValueError(f"unknown provider status {status!r}")
        if changed:
            MessageEvent.objects.create(message=message, kind=kind, occurred_at=at, detail={
                "provider": provider, "status": status, "code": str(error_code or ""), "error": error_message or ""})
    if changed and kind == MessageEventKind.FAILED and error_code:
        _apply_permanent_error(message, str(error_code), provider=provider)
    message.refresh_from_db()
    return message


def mark_displayed(*, code, at=None):
    """The shopper saw it (push shown, in-app rendered). The first report counts; -> message or None."""
    at = at or timezone.now()
    message = Message.objects.filter(code=code).first()
    if message is None:
        return None
    with transaction.atomic():
        if Message.objects.filter(pk=message.pk, displayed_at__isnull=True).update(displayed_at=at):
            MessageEvent.objects.create(message=message, kind=MessageEventKind.DISPLAYED, occurred_at=at)
        _mark_delivered_by_engagement(message, at)
    message.refresh_from_db()
    return message


def mark_clicked(*, code, at=None, action=""):
    """The shopper clicked (the message or one of its buttons): every click is recorded; -> message or None."""
    at = at or timezone.now()
    message = Message.objects.filter(code=code).first()
    if message is None:
        return None
    with transaction.atomic():
        Message.objects.filter(pk=message.pk, clicked_at__isnull=True).update(clicked_at=at)
        MessageEvent.objects.create(message=message, kind=MessageEventKind.CLICKED, occurred_at=at,
                                    detail={"action": action} if action else {})
        _mark_delivered_by_engagement(message, at)
    message.refresh_from_db()
    return message


def _mark_delivered_by_engagement(message, at):
    # A message seen or clicked was delivered, whatever the provider said (or did not).
    if Message.objects.filter(pk=message.pk, status__in=[MessageStatus.SENT, MessageStatus.UNKNOWN]).update(
            status=MessageStatus.DELIVERED, delivered_at=at):
        MessageEvent.objects.create(message=message, kind=MessageEventKind.DELIVERED, occurred_at=at,
                                    detail={"by": "engagement"})


def record_unsubscribe(*, code, channel, source=Source.WEBHOOK, at=None):
    """An unsubscribe from a message (one-click link, STOP reply): revoke consent on `channel`; -> message."""
    at = at or timezone.now()
    message = Message.objects.select_related("subscriber").filter(code=code).first()
    if message is None:
        return None
    if channel in ConsentChannel.values:
        subscriber_services.revoke_consent(subscriber=message.subscriber, channel=channel, source=source,
                                           evidence={"message": message.code}, at=at)
    MessageEvent.objects.create(message=message, kind=MessageEventKind.UNSUBSCRIBED, occurred_at=at,
                                detail={"channel": channel})
    return message


def cancel_pending(queryset, *, reason="cancelled"):
    """Cancel messages not yet claimed (a stopped campaign): -> count."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(queryset.filter(status__in=[MessageStatus.QUEUED, MessageStatus.HELD])
                   .select_for_update(skip_locked=True).values_list("pk", flat=True))
        changed = Message.objects.filter(pk__in=ids, status__in=[MessageStatus.QUEUED, MessageStatus.HELD]).update(
            status=MessageStatus.CANCELLED, status_reason=reason[:300])
        MessageEvent.objects.bulk_create([_event(pk, MessageEventKind.CANCELLED, now, reason=reason) for pk in ids])
    return changed


# --- Click tracking -----------------------------------------------------------------

def click_url(message, index):
    """The signed tracking link for link number `index` of the message's content."""
    return f"{settings.SITE_URL}{click_path(message.code, index)}"


def resolve_click(*, code, index, signature):
    """-> (message, url) for a valid signed link whose target is an http(s) URL stored in the message, else None."""
    if not hmac.compare_digest(link_signature(code, index), signature or ""):
        return None
    message = Message.objects.filter(code=code).first()
    if message is None:
        return None
    targets = tracked_links(message.content or {})
    if not 0 <= index < len(targets):
        return None
    url = targets[index]
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        return None
    return message, url


def action_for_link(content, index):
    """The push action id behind link `index` ("" for the main URL)."""
    offset = sum(1 for key in ("url", "button_url") if content.get(key))
    actions = [a for a in (content.get("actions") or []) if isinstance(a, dict) and a.get("url")]
    if offset <= index < offset + len(actions):
        return str(actions[index - offset].get("action") or "")
    return ""
