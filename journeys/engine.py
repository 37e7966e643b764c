"""The journey engine: steps, entering, advancing, goals and exits, and the scheduler's claim.

A version's steps are a graph in JSON:

    {"start": "wait-15m", "steps": {
        "wait-15m": {"type": "wait", "minutes": 15, "next": "push"},
        "push": {"type": "send", "template": "abandoned-cart", "channels": ["push"], "next": "wait-45m"},
        "wait-45m": {"type": "wait", "minutes": 45, "next": "clicked?"},
        "clicked?": {"type": "branch", "condition": {"clicked_last": true}, "yes": "end", "no": "sms"},
        "sms": {"type": "send", "template": "abandoned-cart", "channels": ["whatsapp", "sms"], "next": "end"},
        "end": {"type": "exit"}}}

Step types (docs/journeys.md): wait (minutes / hours / days), wait_until (a local
time of day, optional weekdays), wait_for_event (an event before a timeout: yes /
no), send (a template on the first reachable of its channels; `unless_clicked`
skips it when the enrolment's last message was clicked; `at_best_time` first waits for the
shopper's best local hour), branch (clicked the last
message, an event within N minutes, or segment rules: yes / no), split (random
paths by percent, stable per enrolment), update (attributes and tags), exit.

Each step runs in its own transaction with the enrolment row locked, and a send
step's message carries the enrolment and the step's visit in its idempotency key:
a worker that dies between claiming and committing leaves nothing behind, and the
rerun writes the same message once.
"""
import hashlib
import json
import zoneinfo
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from delivery import outbox
from delivery.rendering import order_context
from delivery.models import DeliveryChannel, MessageLane, MessageTemplate
from delivery.policy import reachable_q
from subscribers import bulk_sql
from subscribers import services as subscriber_services
from subscribers.models import Cart, Event, Order, PushSubscription, PushSubscriptionStatus, Subscriber
from subscribers.segments import RulesError, compile_rules, validate_rules

from . import webhooks
from .models import (
    SOURCE_TYPE,
    EntryRule,
    Enrolment,
    EnrolmentStatus,
    Journey,
    JourneyStatus,
    JourneyVersion,
    SegmentMemberSnapshot,
    StepRun,
    TriggerKind,
)

STEP_TYPES = ("wait", "wait_until", "wait_for_event", "send", "branch", "split", "update", "webhook", "exit")
WAIT_TYPES = ("wait", "wait_until", "wait_for_event")
# A graph that loops without waiting is stopped after this many steps in one go (and goes on at the next tick).
MAX_STEPS_PER_ADVANCE = 50
# A send step "at best time" for a shopper not scored yet waits for this local hour (campaigns use 10:00 too).
DEFAULT_BEST_HOUR = 10
LOOP_PAUSE = timedelta(minutes=1)
CONTEXT_KEYS = ("cart_id", "order_id", "product", "product_id", "discount_code", "value", "currency", "items",
                "restore_url", "category", "tracking_url", "carrier")
# A product sent as flat properties (product_viewed: title, url, image, price) becomes the template's `product`.
PRODUCT_KEYS = ("title", "url", "image", "price", "currency")


class StepsError(Exception):
    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.problems))


# --- Checking a graph -----------------------------------------------------------------------

def validate_steps(graph):
    """Raise StepsError naming the path of every problem: unknown types, missing fields, dangling links."""
    problems = []
    if not isinstance(graph, dict) or not isinstance(graph.get("steps"), dict) or not graph["steps"]:
        raise StepsError([("steps", _("expected {\"start\": key, \"steps\": {key: step}} with at least one step."))])
    steps = graph["steps"]
    if graph.get("start") not in steps:
        problems.append(("start", _("the first step must be one of the steps.")))

    def link(path, key, optional=False):
        if key is None and optional:
            return
        if key not in steps:
            problems.append((path, _("there is no step %(key)s.") % {"key": key}))

    for key, step in steps.items():
        path = f"steps.{key}"
        if not isinstance(step, dict) or step.get("type") not in STEP_TYPES:
            problems.append((f"{path}.type", _("expected one of: %(types)s.") % {"types": ", ".join(STEP_TYPES)}))
            continue
        kind = step["type"]
        if kind == "wait":
            amount = sum(int(step.get(unit) or 0) for unit in ("minutes", "hours", "days")
                         if isinstance(step.get(unit, 0), int))
            if amount <= 0:
                problems.append((path, _("a wait needs minutes, hours or days.")))
            link(f"{path}.next", step.get("next"))
        elif kind == "wait_until":
            try:
                time.fromisoformat(str(step.get("time")))
            except ValueError:
                problems.append((f"{path}.time", _("expected a time of day such as 10:00.")))
            weekdays = step.get("weekdays") or []
            if not all(isinstance(d, int) and 0 <= d <= 6 for d in weekdays):
                problems.append((f"{path}.weekdays", _("expected weekdays 0 (Monday) to 6 (Sunday).")))
            link(f"{path}.next", step.get("next"))
        elif kind == "wait_for_event":
            if not step.get("event"):
                problems.append((f"{path}.event", _("name the event to wait for.")))
            if not isinstance(step.get("timeout_minutes"), int) or step["timeout_minutes"] <= 0:
                problems.append((f"{path}.timeout_minutes", _("expected a number of minutes.")))
            link(f"{path}.yes", step.get("yes"))
            link(f"{path}.no", step.get("no"))
        elif kind == "send":
            if not MessageTemplate.objects.filter(slug=step.get("template") or "").exists():
                problems.append((f"{path}.template", _("no template has this slug.")))
            channels = step.get("channels") or []
            if not channels or any(c not in DeliveryChannel.values for c in channels):
                problems.append((f"{path}.channels", _("expected channels in order, e.g. [\"push\", \"sms\"].")))
            if not isinstance(step.get("at_best_time", False), bool):
                problems.append((f"{path}.at_best_time", _("expected true or false.")))
            link(f"{path}.next", step.get("next"), optional=True)
        elif kind == "branch":
            condition = step.get("condition") or {}
            if "rules" in condition:
                try:
                    validate_rules(condition["rules"])
                except RulesError as error:
                    problems += [(f"{path}.condition.{inner}", message) for inner, message in error.problems]
            elif "event" in condition:
                if not isinstance(condition.get("within_minutes"), int):
                    problems.append((f"{path}.condition.within_minutes", _("expected a number of minutes.")))
            elif "clicked_last" not in condition:
                problems.append((f"{path}.condition", _("expected clicked_last, event or rules.")))
            link(f"{path}.yes", step.get("yes"))
            link(f"{path}.no", step.get("no"))
        elif kind == "split":
            paths = step.get("paths") or []
            if not paths or sum(int(p.get("percent") or 0) for p in paths) != 100:
                problems.append((f"{path}.paths", _("the paths' percents must add up to 100.")))
            for index, option in enumerate(paths):
                link(f"{path}.paths[{index}].next", option.get("next"))
        elif kind == "update":
            if not isinstance(step.get("attributes", {}), dict):
                problems.append((f"{path}.attributes", _("expected an object.")))
            link(f"{path}.next", step.get("next"), optional=True)
        elif kind == "webhook":
            try:
                webhooks.check_url(str(step.get("url") or ""))
            except webhooks.WebhookRefused as refused:
                problems.append((f"{path}.url", str(refused)))
            link(f"{path}.next", step.get("next"), optional=True)
    if problems:
        raise StepsError(problems)


# --- Entering ----------------------------------------------------------------------------------

def publish(journey, steps, *, now=None):
    """A new version of the journey's steps (checked); enrolments in flight keep theirs."""
    validate_steps(steps)
    now = now or timezone.now()
    number = (journey.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = JourneyVersion.objects.create(journey=journey, number=number, steps=steps, published_at=now)
    Journey.objects.filter(pk=journey.pk).update(current_version=version)
    journey.current_version = version
    forget_interest()
    return version


def forget_interest():
    """Journeys changed: this process reads the event names journeys react to again on the next event."""
    from django.apps import apps

    apps.get_app_config("journeys").forget_interest()


def context_from_event(event):
    """What the enrolment keeps of the event that started it (cart, order, product …)."""
    properties = event.properties or {}
    context = {key: properties[key] for key in CONTEXT_KEYS if key in properties}
    if "product" not in context and any(key in properties for key in ("title", "url", "image")):
        context["product"] = {key: properties[key] for key in PRODUCT_KEYS if key in properties}
        if properties.get("product_id"):
            context["product"]["id"] = properties["product_id"]
    context["trigger_event"] = event.name
    context["trigger_event_id"] = event.pk
    return context


def may_enter(journey, subscriber, now):
    """The entry rules: never twice at once; once ever / once per N days; the daily cap."""
    mine = Enrolment.objects.filter(journey=journey, subscriber=subscriber, is_test=False)
    if mine.filter(status=EnrolmentStatus.ACTIVE).exists():
        return False
    if journey.entry_rule == EntryRule.ONCE and mine.exists():
        return False
    if journey.entry_rule == EntryRule.ONCE_PER_PERIOD and mine.filter(
            entered_at__gte=now - timedelta(days=journey.entry_period_days)).exists():
        return False
    if journey.daily_cap:
        start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if Enrolment.objects.filter(journey=journey, is_test=False, entered_at__gte=start_of_day).count() \
                >= journey.daily_cap:
            return False
    return True


def enroll(journey, subscriber, *, context=None, trigger_key="", now=None, test=False, start_at=None):
    """Put a shopper in a journey (entry rules apply, except for a test run); -> Enrolment or None.

    `start_at` delays the first step (a birthday greeting at 10:00 local time)."""
    now = now or timezone.now()
    version = journey.current_version
    if version is None or (journey.status != JourneyStatus.ACTIVE and not test):
        return None
    if not test and not may_enter(journey, subscriber, now):
        return None
    try:
        with transaction.atomic():
            return Enrolment.objects.create(
                journey=journey, version=version, subscriber=subscriber, step=version.steps["start"],
                next_run_at=start_at or now, context=context or {}, trigger_key=trigger_key, entered_at=now,
                is_test=test)
    except IntegrityError:
        return None  # already in it, or this trigger already enrolled them


# --- Advancing ---------------------------------------------------------------------------------

def _finish(enrolment, status, reason, now):
    enrolment.status, enrolment.exit_reason, enrolment.finished_at = status, reason[:200], now
    enrolment.next_run_at, enrolment.is_waiting, enrolment.waiting_for = None, False, ""


def _log(enrolment, key, kind, outcome, now, **detail):
    """Record a step run; written with the enrolment's new state (in bulk for a batch)."""
    enrolment.visits += 1
    if not hasattr(enrolment, "pending_runs"):
        enrolment.pending_runs = []
    enrolment.pending_runs.append((enrolment.pk, key, kind, enrolment.visits, outcome, detail, now))


def _local_next(step, subscriber, now):
    zone = zoneinfo.ZoneInfo(subscriber.timezone or "UTC")
    at = time.fromisoformat(str(step["time"]))
    weekdays = set(step.get("weekdays") or range(7))
    local_now = now.astimezone(zone)
    for offset in range(8):
        day = local_now.date() + timedelta(days=offset)
        moment = datetime.combine(day, at, tzinfo=zone)
        if day.weekday() in weekdays and moment > local_now:
            return moment.astimezone(zoneinfo.ZoneInfo("UTC"))
    return now + timedelta(days=1)


def best_time_wait(step, enrolment, now):
    """When a send step "at best time" should send (None: now, or the step does not wait).

    The shopper's best local hour (Subscriber.best_send_hour, written by the predictions; DEFAULT_BEST_HOUR
    until they are scored): at once when it is that hour where they are, else at the start of its next
    occurrence. An enrolment already waiting here has been woken by that moment and sends.
    """
    if not step.get("at_best_time") or enrolment.is_waiting:
        return None
    subscriber = enrolment.subscriber
    hour = subscriber.best_send_hour if subscriber.best_send_hour is not None else DEFAULT_BEST_HOUR
    zone = zoneinfo.ZoneInfo(subscriber.timezone or "UTC")
    local_now = now.astimezone(zone)
    if local_now.hour == hour:
        return None
    day = local_now.date() + timedelta(days=0 if local_now.hour < hour else 1)
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(zoneinfo.ZoneInfo("UTC"))


def _held_for_best_time(enrolment, step, now):
    """Park the enrolment on its send step until its best hour; -> True when it now waits."""
    when = best_time_wait(step, enrolment, now)
    enrolment.is_waiting = when is not None
    if when is not None:
        enrolment.next_run_at = when
    return when is not None


def _wait_until(step, enrolment, now):
    if step["type"] == "wait":
        return now + timedelta(days=step.get("days") or 0, hours=step.get("hours") or 0,
                               minutes=step.get("minutes") or 0)
    if step["type"] == "wait_until":
        return _local_next(step, enrolment.subscriber, now)
    return now + timedelta(minutes=step["timeout_minutes"])


def _reachable(subscriber, channel):
    return subscriber.pk in _reachable_ids([subscriber.pk], channel)


def _reachable_ids(subscriber_ids, channel):
    """Which of these shoppers can get a message on `channel` now: one query (none for in-app)."""
    if channel == DeliveryChannel.INAPP:
        return set(subscriber_ids)
    return set(Subscriber.objects.filter(pk__in=subscriber_ids).filter(reachable_q(channel))
               .values_list("pk", flat=True))


def _contexts(enrolments):
    """Each enrolment's template variables, with the carts and orders read fresh in two queries."""
    carts, orders = {}, {}
    cart_keys = {(e.subscriber_id, str(e.context["cart_id"])) for e in enrolments if (e.context or {}).get("cart_id")}
    if cart_keys:
        # Two IN lists and the exact pairs picked in Python: an OR of one term per enrolment cost more to build
        # than the rest of the query (bench/journeys).
        ids = {cart_id for _subscriber, cart_id in cart_keys}
        for cart in Cart.objects.filter(subscriber_id__in={subscriber for subscriber, _cart in cart_keys}).filter(
                Q(external_id__in=ids) | Q(pk__in=[int(i) for i in ids if i.isdigit()])):
            for key in ((cart.subscriber_id, cart.external_id or str(cart.pk)), (cart.subscriber_id, str(cart.pk))):
                if key in cart_keys:
                    carts[key] = cart
    order_keys = {(e.subscriber_id, str(e.context["order_id"])) for e in enrolments
                  if (e.context or {}).get("order_id")}
    if order_keys:
        orders = {(o.subscriber_id, o.external_id): o for o in Order.objects.filter(
            subscriber_id__in={subscriber for subscriber, _order in order_keys},
            external_id__in={order_id for _subscriber, order_id in order_keys})
            if (o.subscriber_id, o.external_id) in order_keys}
    contexts = {}
    for enrolment in enrolments:
        context = {k: v for k, v in (enrolment.context or {}).items() if not k.startswith("trigger_")}
        cart = carts.get((enrolment.subscriber_id, str(context.get("cart_id", ""))))
        if cart is not None:
            context["cart"] = cart
        order = orders.get((enrolment.subscriber_id, str(context.get("order_id", ""))))
        if order is not None:
            context["order"] = order_context(order)
            for key in ("tracking_url", "carrier"):  # from the order_shipped event that started it
                if context.get(key):
                    context["order"][key] = context[key]
        contexts[enrolment.pk] = context
    return contexts


def _send_many(enrolments, key, step, now):
    """A send step for enrolments at the same step: -> {enrolment id: (outcome, detail)}.

    Each message's key names the enrolment and this visit, so it is written once
    whatever happens to the worker; the messages are written together (outbox.queue_many).
    """
    results = {}
    pending = []
    for enrolment in enrolments:
        last = enrolment.last_message
        if step.get("unless_clicked") and last is not None and last.clicked_at is not None:
            results[enrolment.pk] = ("skipped_clicked", {})
        else:
            pending.append(enrolment)
    template = MessageTemplate.objects.filter(slug=step["template"]).first()
    if template is None:
        results.update({e.pk: ("no_template", {"template": step["template"]}) for e in pending})
        return results
    contexts = _contexts(pending) if pending else {}
    drafts, owners = [], []
    for channel in step["channels"]:
        if not pending:
            break
        reachable = _reachable_ids([e.subscriber_id for e in pending], channel)
        chosen = [e for e in pending if e.subscriber_id in reachable]
        pending = [e for e in pending if e.subscriber_id not in reachable]
        browsers = {}
        if channel == DeliveryChannel.PUSH and chosen:
            for browser in PushSubscription.objects.filter(
                    subscriber_id__in=[e.subscriber_id for e in chosen], status=PushSubscriptionStatus.ACTIVE
            ).order_by("pk"):
                browsers.setdefault(browser.subscriber_id, []).append(browser)
        for enrolment in chosen:
            for browser in (browsers.get(enrolment.subscriber_id, []) if channel == DeliveryChannel.PUSH else [None]):
                drafts.append({
                    "subscriber": enrolment.subscriber, "channel": channel, "template": template,
                    "context": contexts[enrolment.pk], "source_type": SOURCE_TYPE,
                    "source_id": f"{enrolment.journey_id}:{key}", "occurrence": f"{enrolment.pk}.{enrolment.visits + 1}",
                    "push_subscription": browser, "transactional": bool(step.get("transactional"))})
                owners.append((enrolment, channel))
    results.update({e.pk: ("unreachable", {"channels": step["channels"]}) for e in pending})
    if not drafts:
        return results
    written = outbox.queue_many(drafts, now=now, lane=MessageLane.TRANSACTIONAL)
    for draft, (enrolment, channel) in zip(drafts, owners):
        browser = draft["push_subscription"]
        pk, code, _status = written[outbox.idempotency_key_for(
            source_type=SOURCE_TYPE, source_id=draft["source_id"], subscriber_id=enrolment.subscriber_id,
            channel=channel, occurrence=draft["occurrence"], push_subscription_id=browser.pk if browser else None)]
        outcome, detail = results.get(enrolment.pk, ("sent", {"channel": channel, "messages": []}))
        if outcome != "sent":
            continue
        if not detail["messages"]:
            enrolment.last_message_id = pk
        detail["messages"].append(code)
        results[enrolment.pk] = (outcome, detail)
    return results


def _condition(enrolment, condition, now):
    if "clicked_last" in condition:
        clicked = enrolment.last_message is not None and enrolment.last_message.clicked_at is not None
        return clicked == bool(condition["clicked_last"])
    if "event" in condition:
        since = max(enrolment.entered_at, now - timedelta(minutes=condition["within_minutes"]))
        return Event.objects.filter(subscriber=enrolment.subscriber, name=condition["event"],
                                    occurred_at__gte=since).exists()
    return Subscriber.objects.filter(pk=enrolment.subscriber_id).filter(compile_rules(condition["rules"], now)).exists()


def _split(enrolment, key, step):
    bucket = int(hashlib.md5(f"{enrolment.pk}:{key}".encode()).hexdigest()[:8], 16) % 100
    total = 0
    for option in step["paths"]:
        total += int(option["percent"])
        if bucket < total:
            return option["next"]
    return step["paths"][-1]["next"]


def run_step(enrolment, now):
    """Run (or wake from) the enrolment's current step; -> True when it should go on at once."""
    key = enrolment.step
    step = enrolment.version.step(key)
    if step is None:
        _finish(enrolment, EnrolmentStatus.EXITED, f"step {key} no longer exists", now)
        return False
    kind = step["type"]
    if kind in WAIT_TYPES and enrolment.is_waiting:
        # Woken: the wait is over (or the event did not come in time).
        enrolment.is_waiting, enrolment.waiting_for = False, ""
        following = step.get("no") if kind == "wait_for_event" else step.get("next")
        _log(enrolment, key, kind, "timeout" if kind == "wait_for_event" else "waited", now)
        return _go(enrolment, following, now)
    if kind in WAIT_TYPES:
        enrolment.is_waiting = True
        enrolment.next_run_at = _wait_until(step, enrolment, now)
        enrolment.waiting_for = step.get("event", "") if kind == "wait_for_event" else ""
        return False
    if kind == "send":
        if _held_for_best_time(enrolment, step, now):
            return False
        outcome, detail = _send_many([enrolment], key, step, now)[enrolment.pk]
        _log(enrolment, key, kind, outcome, now, **detail)
        return _go(enrolment, step.get("next"), now)
    if kind == "branch":
        yes = _condition(enrolment, step["condition"], now)
        _log(enrolment, key, kind, "yes" if yes else "no", now)
        return _go(enrolment, step["yes"] if yes else step["no"], now)
    if kind == "split":
        following = _split(enrolment, key, step)
        _log(enrolment, key, kind, following, now)
        return _go(enrolment, following, now)
    if kind == "update":
        changed = subscriber_services.update_profile(
            subscriber=enrolment.subscriber, attributes=step.get("attributes") or None,
            add_tags=step.get("add_tags") or (), remove_tags=step.get("remove_tags") or ())
        _log(enrolment, key, kind, "updated", now, changed=changed)
        return _go(enrolment, step.get("next"), now)
    if kind == "webhook":
        _log(enrolment, key, kind, "queued", now, url=step["url"])
        enrolment_id, visit = enrolment.pk, enrolment.visits
        transaction.on_commit(lambda: _call_webhook_later(enrolment_id, visit))
        return _go(enrolment, step.get("next"), now)
    _log(enrolment, key, kind, "exit", now)
    _finish(enrolment, EnrolmentStatus.COMPLETED, "reached an exit", now)
    return False


def _call_webhook_later(enrolment_id, visit):
    from .tasks import call_webhook

    call_webhook.delay(enrolment_id, visit)


def webhook_payload(enrolment, step_key):
    subscriber = enrolment.subscriber
    return {
        "journey": {"id": enrolment.journey_id, "name": enrolment.journey.name}, "step": step_key,
        "enrolment": enrolment.pk, "entered_at": enrolment.entered_at.isoformat(),
        "subscriber": {"id": subscriber.pk, "external_id": subscriber.external_id, "first_name": subscriber.first_name,
                       "last_name": subscriber.last_name, "email": subscriber.email, "phone": subscriber.phone,
                       "locale": subscriber.locale},
        "context": {k: v for k, v in (enrolment.context or {}).items() if not k.startswith("trigger_event_id")},
    }


def call_webhook(enrolment_id, visit):
    """Make the webhook call a step queued; -> the StepRun's outcome ("called 200", "failed 500", "refused")."""
    run = StepRun.objects.select_related("enrolment__journey", "enrolment__subscriber", "enrolment__version").filter(
        enrolment_id=enrolment_id, visit=visit, kind="webhook").first()
    if run is None or run.outcome not in ("queued", "retrying"):
        return run and run.outcome
    step = run.enrolment.version.step(run.step) or {}
    try:
        status = webhooks.call(step.get("url", ""), webhook_payload(run.enrolment, run.step),
                               delivery_id=f"{enrolment_id}.{visit}")
    except webhooks.WebhookRefused as refused:
        outcome, detail = "refused", {"error": str(refused)}
    except OSError as error:  # requests' connection errors and timeouts
        outcome, detail = "retrying", {"error": f"{error.__class__.__name__}: {error}"}
    else:
        outcome = "called" if 200 <= status < 300 else ("retrying" if status >= 500 or status == 429 else "failed")
        detail = {"status": status}
    StepRun.objects.filter(pk=run.pk).update(outcome=outcome, detail={**run.detail, **detail})
    return outcome


def _go(enrolment, following, now):
    if not following:
        _finish(enrolment, EnrolmentStatus.COMPLETED, "reached the end", now)
        return False
    enrolment.step, enrolment.next_run_at = following, now
    return True


SAVED_FIELDS = ["status", "step", "visits", "next_run_at", "is_waiting", "waiting_for", "last_message",
                "finished_at", "exit_reason"]


def _guard(enrolment, now):
    """The checks before any step: the time limit, an inactive shopper back, a paused journey; -> go on?"""
    journey = enrolment.journey
    if journey.time_limit_days and enrolment.entered_at + timedelta(days=journey.time_limit_days) <= now:
        _finish(enrolment, EnrolmentStatus.EXITED, "time limit", now)
        return False
    seen = enrolment.subscriber.last_seen_at
    if journey.trigger_kind == TriggerKind.INACTIVITY and seen and seen > enrolment.entered_at:
        _finish(enrolment, EnrolmentStatus.EXITED, "came back", now)
        return False
    if journey.status == JourneyStatus.PAUSED and not enrolment.is_test:
        enrolment.next_run_at = now + LOOP_PAUSE
        return False
    return True


def _save(enrolments):
    """Write the enrolments' new state and their step runs: a few statements for a whole batch."""
    runs = [run for e in enrolments for run in getattr(e, "pending_runs", [])]
    if runs:
        _insert_runs(runs)
    for e in enrolments:
        e.pending_runs = []
    if len(enrolments) == 1:
        enrolments[0].save(update_fields=SAVED_FIELDS)
    elif enrolments:
        _update_many(enrolments)


RUN_COLUMNS = ("enrolment_id", "step", "kind", "visit", "outcome", "detail", "at")


def _insert_runs(runs):
    """Insert step runs (tuples of RUN_COLUMNS); on PostgreSQL with COPY, which costs a fraction of
    bulk_create's model instances and arrays of values (three runs per enrolment for a wait, a send and an
    exit: bench/journeys)."""
    if connection.vendor != "postgresql":
        StepRun.objects.bulk_create([StepRun(**dict(zip(RUN_COLUMNS, run))) for run in runs], batch_size=1000)
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {quote(StepRun._meta.db_table)} ({', '.join(map(quote, RUN_COLUMNS))}) "
                                f"FROM STDIN") as copy:
            for enrolment_id, step, kind, visit, outcome, detail, at in runs:
                copy.write_row((enrolment_id, step, kind, visit, outcome, json.dumps(detail), at))


SAVE_BATCH = 1000


def _update_many(enrolments):
    """Write the enrolments' new state with one UPDATE … FROM the rows as one JSON parameter on PostgreSQL
    (a VALUES list per SAVE_BATCH rows elsewhere).

    Django's bulk_update builds a CASE WHEN per field and row: profiled in bench/journeys, it cost more
    Python time than everything else a round does (about 80 ms of CPU per enrolment at 500 rows); a VALUES
    list still had psycopg parse and quote a placeholder per value.
    """
    fields = [Enrolment._meta.get_field(name) for name in SAVED_FIELDS]
    quote = connection.ops.quote_name
    table = quote(Enrolment._meta.db_table)
    assignments = ", ".join(f"{quote(f.column)} = changed.{quote(f.column)}" for f in fields)
    if connection.vendor == "postgresql":
        # The whole batch as one JSON parameter: no placeholder per value for psycopg to parse and quote.
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {assignments} FROM {bulk_sql.rows_of(Enrolment)} AS changed "
                           f"WHERE {table}.{quote('id')} = changed.{quote('id')}",
                           [bulk_sql.json_rows(enrolments, [Enrolment._meta.pk, *fields])])
        return
    row = "(" + ", ".join(["%s"] * (len(fields) + 1)) + ")"
    columns = ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        for start in range(0, len(enrolments), SAVE_BATCH):
            batch = enrolments[start:start + SAVE_BATCH]
            params = []
            for enrolment in batch:
                params.append(enrolment.pk)
                params += [f.get_db_prep_save(getattr(enrolment, f.attname), connection) for f in fields]
            cursor.execute(
                f"WITH changed (id, {columns}) AS (VALUES {', '.join([row] * len(batch))}) "
                f"UPDATE {table} SET {assignments} FROM changed WHERE {table}.{quote('id')} = changed.id", params)


def advance_many(enrolment_ids, now=None):
    """Run the enrolments' due steps until each waits or ends; -> steps run.

    One transaction with the due enrolments locked: each runs its steps until it
    waits, ends or reaches a send; the enrolments at the same send step of the
    same version send together (a few statements), then go on the same way; their
    new state and step runs are written at the end in a few statements. A worker
    that dies in the middle leaves it all undone; the message keys make the rerun
    write nothing twice. A graph that loops without waiting stops after
    MAX_STEPS_PER_ADVANCE steps and goes on after LOOP_PAUSE.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(Enrolment.objects.select_for_update(of=("self",))
                    .select_related("subscriber", "last_message")
                    .filter(pk__in=list(enrolment_ids), status=EnrolmentStatus.ACTIVE, next_run_at__lte=now)
                    .order_by("pk"))
        _share_versions(rows)
        pending = [e for e in rows if _guard(e, now)]
        steps_run = dict.fromkeys((e.pk for e in pending), 0)
        while pending:
            sends = {}
            for enrolment in pending:
                at_send, steps_run[enrolment.pk] = _run_until_send(enrolment, now, steps_run[enrolment.pk])
                if at_send:
                    sends.setdefault((enrolment.version_id, enrolment.step), []).append(enrolment)
            pending = []
            for (_version, key), group in sends.items():
                step = group[0].version.step(key)
                results = _send_many(group, key, step, now)
                for enrolment in group:
                    outcome, detail = results[enrolment.pk]
                    _log(enrolment, key, "send", outcome, now, **detail)
                    steps_run[enrolment.pk] += 1
                    if _go(enrolment, step.get("next"), now):
                        pending.append(enrolment)
        _save(rows)
    return sum(steps_run.values())


def _share_versions(enrolments):
    """One JourneyVersion and one Journey instance for all the enrolments on them (two queries), instead of a
    copy each, with the version's steps decoded again per row, that select_related would make."""
    versions = JourneyVersion.objects.in_bulk({e.version_id for e in enrolments})
    journeys = Journey.objects.in_bulk({e.journey_id for e in enrolments})
    for enrolment in enrolments:
        enrolment.version, enrolment.journey = versions[enrolment.version_id], journeys[enrolment.journey_id]


def _run_until_send(enrolment, now, count):
    """Run one enrolment's steps until it waits, ends or is at a send step it may send now; -> (at a send,
    steps run so far in this advance). After MAX_STEPS_PER_ADVANCE it pauses (a loop without a wait)."""
    while True:
        if count >= MAX_STEPS_PER_ADVANCE:
            enrolment.next_run_at = now + LOOP_PAUSE
            return False, count
        step = enrolment.version.step(enrolment.step) or {}
        if step.get("type") == "send":
            return not _held_for_best_time(enrolment, step, now), count
        count += 1
        if not run_step(enrolment, now):
            return False, count


def advance(enrolment_id, now=None):
    """Run one enrolment's steps until it waits or ends; -> steps run."""
    return advance_many([enrolment_id], now)


# --- The scheduler ---------------------------------------------------------------------------

def claim_due(now, limit=500):
    """Due enrolments for this worker: locked with SKIP LOCKED, leased by moving next_run_at; -> ids."""
    with transaction.atomic():
        ids = list(Enrolment.objects.select_for_update(skip_locked=True)
                   .filter(status=EnrolmentStatus.ACTIVE, next_run_at__lte=now)
                   .order_by("next_run_at").values_list("pk", flat=True)[:limit])
        if ids:
            # The lease: another tick skips them; a worker that dies leaves them due again after it.
            Enrolment.objects.filter(pk__in=ids).update(
                next_run_at=now + timedelta(seconds=settings.JOURNEY_CLAIM_LEASE_SECONDS))
    return ids


def run_due(ids, now):
    """Advance claimed enrolments together (giving their lease back first)."""
    Enrolment.objects.filter(pk__in=ids, status=EnrolmentStatus.ACTIVE).update(next_run_at=now)
    advance_many(ids, now)
    return len(ids)


# --- Events: triggers, waits, goals ----------------------------------------------------------

def _properties_match(filters, properties):
    for item in filters or []:
        value = properties.get(item.get("property"))
        wanted = item.get("value")
        operator = item.get("operator", "equals")
        if operator == "equals" and value != wanted:
            return False
        if operator == "not_equals" and value == wanted:
            return False
        if operator == "in" and value not in (wanted or []):
            return False
        if operator == "exists" and value is None:
            return False
    return True


def handle_event(event, now=None):
    """An event arrived: goals convert, waits resume, triggers enrol; -> enrolment ids to advance now."""
    now = now or timezone.now()
    properties = event.properties or {}
    to_advance = []
    active = Enrolment.objects.filter(subscriber_id=event.subscriber_id, status=EnrolmentStatus.ACTIVE)
    for enrolment in active.filter(journey__goal_event=event.name).select_related("journey"):
        cart = (enrolment.context or {}).get("cart_id")
        if enrolment.journey.goal_same_cart and cart and properties.get("cart_id") not in (None, "", cart):
            continue
        Enrolment.objects.filter(pk=enrolment.pk, status=EnrolmentStatus.ACTIVE).update(
            status=EnrolmentStatus.CONVERTED, finished_at=now, next_run_at=None, is_waiting=False,
            waiting_for="", exit_reason=f"goal: {event.name}")
    for enrolment in active.filter(waiting_for=event.name, is_waiting=True).select_related("version"):
        step = enrolment.version.step(enrolment.step) or {}
        if step.get("type") != "wait_for_event" or not _properties_match(step.get("properties"), properties):
            continue
        with transaction.atomic():
            if Enrolment.objects.filter(pk=enrolment.pk, status=EnrolmentStatus.ACTIVE, is_waiting=True).update(
                    is_waiting=False, waiting_for="", step=step["yes"], next_run_at=now, visits=enrolment.visits + 1):
                StepRun.objects.create(enrolment=enrolment, step=enrolment.step, kind="wait_for_event",
                                       visit=enrolment.visits + 1, outcome="event", at=now,
                                       detail={"event_id": event.pk})
                to_advance.append(enrolment.pk)
    subscriber = None
    for journey in Journey.objects.filter(status=JourneyStatus.ACTIVE, trigger_kind="event",
                                          trigger_event=event.name).select_related("current_version"):
        if not _properties_match((journey.trigger or {}).get("properties"), properties):
            continue
        subscriber = subscriber or Subscriber.objects.get(pk=event.subscriber_id)
        enrolment = enroll(journey, subscriber, context=context_from_event(event),
                           trigger_key=f"event:{event.pk}", now=now)
        if enrolment is not None:
            to_advance.append(enrolment.pk)
    return to_advance


def interesting_event_names():
    """Event names any active journey reacts to (trigger, goal, a wait): the signal handler's filter."""
    names = set()
    for trigger, goal, steps in Journey.objects.filter(status=JourneyStatus.ACTIVE).values_list(
            "trigger_event", "goal_event", "current_version__steps"):
        names |= {trigger, goal}
        for step in ((steps or {}).get("steps") or {}).values():
            if isinstance(step, dict) and step.get("type") == "wait_for_event":
                names.add(step.get("event"))
    return {name for name in names if name}


def exit_on_lost_consent(subscriber_id, channel, now=None):
    """A revoked consent ends enrolments that can no longer reach the shopper on any channel they send on."""
    now = now or timezone.now()
    exited = 0
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return 0
    for enrolment in Enrolment.objects.filter(subscriber_id=subscriber_id,
                                              status=EnrolmentStatus.ACTIVE).select_related("version"):
        channels = {c for step in (enrolment.version.steps.get("steps") or {}).values()
                    if isinstance(step, dict) and step.get("type") == "send" for c in step.get("channels") or []}
        if channel not in channels:
            continue
        if any(_reachable(subscriber, other) for other in channels):
            continue
        exited += Enrolment.objects.filter(pk=enrolment.pk, status=EnrolmentStatus.ACTIVE).update(
            status=EnrolmentStatus.EXITED, finished_at=now, next_run_at=None, is_waiting=False, waiting_for="",
            exit_reason=f"lost consent: {channel}")
    return exited



# --- Periodic triggers: entering a segment, a date attribute, inactivity ------------------------

SCAN_CHUNK = 2000


def _enroll_chunk(journey, subscribers, now, *, key, context=None, start_at=None):
    entered = []
    for subscriber in subscribers:
        enrolment = enroll(journey, subscriber, context=dict(context or {}), trigger_key=key(subscriber), now=now,
                           start_at=start_at(subscriber) if start_at else None)
        if enrolment is not None:
            entered.append(enrolment.pk)
    return entered


def _walk(queryset):
    last = 0
    while True:
        chunk = list(queryset.filter(pk__gt=last).order_by("pk")[:SCAN_CHUNK])
        if not chunk:
            return
        yield chunk
        last = chunk[-1].pk


def scan_segment_entered(journey, now):
    """Shoppers who entered the segment since the last scan; the first scan only notes who is in it."""
    from subscribers.models import Segment
    from subscribers.segments import segment_queryset

    segment = Segment.objects.filter(pk=(journey.trigger or {}).get("segment")).first()
    if segment is None:
        return []
    first_scan = not SegmentMemberSnapshot.objects.filter(journey=journey).exists() and \
        not (journey.trigger or {}).get("_scanned")
    members = segment_queryset(segment, now)
    entered = []
    for chunk in _walk(members.exclude(pk__in=SegmentMemberSnapshot.objects.filter(journey=journey)
                                       .values("subscriber_id"))):
        SegmentMemberSnapshot.objects.bulk_create(
            [SegmentMemberSnapshot(journey=journey, subscriber=s, seen_at=now) for s in chunk], ignore_conflicts=True)
        if not first_scan:
            entered += _enroll_chunk(journey, chunk, now,
                                     key=lambda s: f"segment:{segment.pk}:{s.pk}:{now:%Y%m%d%H%M}",
                                     context={"segment": segment.pk})
    # Those who left may enter again later.
    SegmentMemberSnapshot.objects.filter(journey=journey).exclude(subscriber__in=members.values("pk")).delete()
    if first_scan:
        Journey.objects.filter(pk=journey.pk).update(trigger={**(journey.trigger or {}), "_scanned": True})
    return entered


def scan_inactivity(journey, now):
    """Shoppers not seen for N days (one enrolment per absence: the key names the last visit)."""
    days = int((journey.trigger or {}).get("days") or 0)
    if days <= 0:
        return []
    absent = Subscriber.objects.filter(last_seen_at__lte=now - timedelta(days=days),
                                       last_seen_at__gt=now - timedelta(days=days + 30))
    entered = []
    for chunk in _walk(absent):
        entered += _enroll_chunk(journey, chunk, now, key=lambda s: f"inactive:{s.pk}:{s.last_seen_at:%Y%m%d%H%M}",
                                 context={"inactive_days": days})
    return entered


def _shifted(day, years=0):
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year + years, day=28)


def scan_date_attribute(journey, now):
    """Shoppers whose date (birthday, sign-up anniversary, a custom date) falls on their local today
    (shifted by offset_days); the first step waits for the chosen local time."""
    trigger = journey.trigger or {}
    attribute = trigger.get("attribute") or "birthday"
    offset = int(trigger.get("offset_days") or 0)
    at = time.fromisoformat(trigger.get("local_time") or "10:00")
    yearly = trigger.get("yearly", attribute in ("birthday", "created_at"))
    entered = []
    for zone_name in Subscriber.objects.values_list("timezone", flat=True).distinct().order_by():
        zone = zoneinfo.ZoneInfo(zone_name or "UTC")
        local_today = now.astimezone(zone).date()
        target = local_today - timedelta(days=offset)  # "3 days before the birthday": offset -3
        shoppers = Subscriber.objects.filter(timezone=zone_name)
        if attribute in ("birthday", "created_at"):
            field = "birthday" if attribute == "birthday" else "created_at__date"
            if yearly:
                shoppers = shoppers.filter(**{f"{field}__month": target.month, f"{field}__day": target.day})
                if target.month == 2 and target.day == 28 and not _is_leap(target.year):
                    shoppers = Subscriber.objects.filter(timezone=zone_name).filter(
                        Q(**{f"{field}__month": 2, f"{field}__day": 28}) | Q(**{f"{field}__month": 2,
                                                                                f"{field}__day": 29}))
                if attribute == "created_at":
                    shoppers = shoppers.filter(created_at__date__lt=target)  # an anniversary, not the day itself
            else:
                shoppers = shoppers.filter(**{field: target})
        else:
            shoppers = shoppers.filter(**{f"attributes__{attribute}": target.isoformat()})
        moment = datetime.combine(local_today, at, tzinfo=zone)
        start = max(moment, now)
        for chunk in _walk(shoppers):
            entered += _enroll_chunk(journey, chunk, now, key=lambda s: f"date:{attribute}:{local_today.isoformat()}:"
                                                                        f"{s.pk}",
                                     context={"date_attribute": attribute, "date": target.isoformat()},
                                     start_at=lambda s: start)
    return entered


def _is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


SCANNERS = {
    TriggerKind.SEGMENT_ENTERED: scan_segment_entered,
    TriggerKind.DATE_ATTRIBUTE: scan_date_attribute,
    TriggerKind.INACTIVITY: scan_inactivity,
}


def scan_triggers(now=None):
    """The periodic triggers of every active journey; -> {journey id: enrolments}."""
    now = now or timezone.now()
    result = {}
    for journey in Journey.objects.filter(status=JourneyStatus.ACTIVE, trigger_kind__in=list(SCANNERS)) \
            .select_related("current_version"):
        result[journey.pk] = len(SCANNERS[journey.trigger_kind](journey, now))
    return result
