"""What the journey builder pages need beside the engine: the flow laid out as a diagram, the live
figures per step in a few queries, step edits that become a new version, and the test run.

The diagram is a tree drawn top to bottom: a step with several ways out (branch, split, wait for an
event) puts its paths side by side and the flow goes on below them at the first step every path
reaches (where they meet). A step drawn already (a loop, or a path joining another one early) is
drawn as a "go to" box instead of twice.
"""
import copy
from collections import deque
from urllib.parse import urlsplit

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from delivery import outbox
from delivery.models import DeliveryChannel, Message, MessageLane
from subscribers.models import Subscriber

from . import engine
from .models import SOURCE_TYPE, Enrolment, EnrolmentStatus, Journey, JourneyStatus, StepRun



def weekday_names():
    names = (_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun"))
    return dict(enumerate(names))


# --- Reading a graph ---------------------------------------------------------------------------

def exits(step):
    """The ways out of a step: [(label, key)] in the order they are drawn."""
    if not isinstance(step, dict):
        return []
    kind = step.get("type")
    if kind == "branch":
        return [(_("yes"), step.get("yes")), (_("no"), step.get("no"))]
    if kind == "wait_for_event":
        return [(_("the event came"), step.get("yes")), (_("timed out"), step.get("no"))]
    if kind == "split":
        return [(f"{int(p.get('percent') or 0)}%", p.get("next")) for p in step.get("paths") or []
                if isinstance(p, dict)]
    if kind == "exit":
        return []
    return [("", step.get("next"))]


def _duration(step):
    parts = []
    if step.get("days"):
        parts.append(_("%(n)s d") % {"n": step["days"]})
    if step.get("hours"):
        parts.append(_("%(n)s h") % {"n": step["hours"]})
    if step.get("minutes"):
        parts.append(_("%(n)s min") % {"n": step["minutes"]})
    return " ".join(parts) or "0"


def channel_names(channels):
    labels = dict(DeliveryChannel.choices)
    return " → ".join(str(labels.get(c, c)) for c in channels or [])


def summary(step):
    """One line a marketer reads in the step's box."""
    if not isinstance(step, dict):
        return _("unknown step")
    kind = step.get("type")
    if kind == "wait":
        return _("Wait %(duration)s") % {"duration": _duration(step)}
    if kind == "wait_until":
        days = weekday_names()
        weekdays = step.get("weekdays") or []
        text = _("Wait until %(time)s") % {"time": step.get("time", "")}
        if weekdays:
            text += " (" + ", ".join(days.get(d, str(d)) for d in weekdays) + ")"
        return text
    if kind == "wait_for_event":
        return _("Wait for %(event)s, at most %(minutes)s min") % {
            "event": step.get("event", ""), "minutes": step.get("timeout_minutes", "")}
    if kind == "send":
        text = _("Send “%(template)s” by %(channels)s") % {
            "template": step.get("template", ""), "channels": channel_names(step.get("channels"))}
        if step.get("unless_clicked"):
            text += " · " + _("unless the last message was clicked")
        if step.get("at_best_time"):
            text += " · " + _("at the shopper's best hour")
        return text
    if kind == "branch":
        condition = step.get("condition") or {}
        if "clicked_last" in condition:
            return _("Clicked the last message?") if condition["clicked_last"] else \
                _("Did not click the last message?")
        if "event" in condition:
            return _("%(event)s in the last %(minutes)s min?") % {
                "event": condition.get("event"), "minutes": condition.get("within_minutes")}
        return _("Matches the segment rules?")
    if kind == "split":
        return _("Random split")
    if kind == "update":
        parts = []
        if step.get("attributes"):
            parts.append(_("set %(names)s") % {"names": ", ".join(sorted(step["attributes"]))})
        if step.get("add_tags"):
            parts.append(_("tag %(tags)s") % {"tags": ", ".join(step["add_tags"])})
        if step.get("remove_tags"):
            parts.append(_("untag %(tags)s") % {"tags": ", ".join(step["remove_tags"])})
        return _("Update: %(what)s") % {"what": "; ".join(parts) or _("nothing")}
    if kind == "webhook":
        return _("Call a webhook on %(host)s") % {"host": urlsplit(str(step.get("url") or "")).hostname or "?"}
    if kind == "exit":
        return _("Exit")
    return _("unknown step")


def _reachable(steps, key, stops=()):
    """Keys reachable from `key` in breadth-first order (key first), not going on past `stops`."""
    order, seen, queue = [], set(), deque([key])
    while queue:
        current = queue.popleft()
        if current in seen or current not in steps:
            continue
        seen.add(current)
        order.append(current)
        if current not in stops:
            queue.extend(target for _label, target in exits(steps[current]) if target)
    return order


def flow_order(graph):
    """A version's step keys in the order a shopper meets them (breadth-first from the start), then any
    step nothing leads to."""
    steps = (graph or {}).get("steps") or {}
    order = _reachable(steps, (graph or {}).get("start"))
    return order + [key for key in steps if key not in order]


def _meeting_point(steps, targets, stops=()):
    """The first step every path reaches (where the paths join again), or None."""
    reach = [_reachable(steps, t, stops) for t in targets if t]
    if len(reach) < 2 or len(reach) < len(targets):
        return None
    common = set(reach[0]).intersection(*map(set, reach[1:]))
    return next((key for key in reach[0] if key in common), None)


def layout(graph, figures=None):
    """The diagram as nested items: {"kind": "step"|"goto"|"missing"|"end", ...}; a step with several ways
    out carries "paths": [{"label", "target", "items"}] and the flow goes on below it where they meet.

    `stops` are the meeting points of the forks this chain is inside: reaching the innermost one, a path
    ends (the flow goes on below its fork); reaching an outer one, it says "go to"."""
    steps = (graph or {}).get("steps") or {}
    figures = figures or {}
    drawn = set()

    def box(key):
        step = steps[key]
        return {"kind": "step", "key": key, "type": step.get("type") if isinstance(step, dict) else "?",
                "summary": summary(step), "figures": figures.get(key, EMPTY_FIGURES)}

    def chain(key, stops):
        items = []
        while True:
            if key is None:
                last = items[-1] if items else None
                if last and last["kind"] == "step" and last["type"] != "exit" and "paths" not in last:
                    items.append({"kind": "end"})
                return items
            if stops and key == stops[-1]:
                return items
            if key in stops or key in drawn:
                items.append({"kind": "goto", "key": key})
                return items
            if key not in steps:
                items.append({"kind": "missing", "key": key})
                return items
            drawn.add(key)
            item = box(key)
            items.append(item)
            ways = exits(steps[key])
            if len(ways) > 1:
                meet = _meeting_point(steps, [target for _label, target in ways], stops)
                if meet in drawn or meet in stops:
                    meet = None
                inner = (*stops, meet) if meet is not None else stops
                item["paths"] = [{"label": label, "target": target, "items": chain(target, inner)}
                                 for label, target in ways]
                key = meet
                if meet is None:
                    return items
                continue
            key = ways[0][1] if ways else None
            if not ways:
                return items

    start = (graph or {}).get("start")
    items = chain(start, ()) if start else []
    return {"items": items, "orphans": [box(key) for key in steps if key not in drawn]}


# --- Live figures ------------------------------------------------------------------------------

FIGURE_NAMES = ("entered", "waiting", "sent", "clicked", "converted", "exited")
EMPTY_FIGURES = dict.fromkeys(FIGURE_NAMES, 0)


def step_figures(journey):
    """{step key: {entered, waiting, sent, clicked, converted, exited}} for real (not test) enrolments,
    in four queries: step runs, enrolments where they are, test runs, and clicked messages."""
    figures = {}

    def of(key):
        return figures.setdefault(key, dict(EMPTY_FIGURES))

    runs = (StepRun.objects.filter(enrolment__journey=journey, enrolment__is_test=False)
            .values("step").annotate(entered=Count("pk"), sent=Count("pk", filter=Q(outcome="sent"))))
    for row in runs:
        of(row["step"]).update(entered=row["entered"], sent=row["sent"])
    where = (Enrolment.objects.filter(journey=journey, is_test=False).values("step", "status")
             .annotate(n=Count("pk")))
    for row in where:
        figure = of(row["step"])
        if row["status"] == EnrolmentStatus.ACTIVE:
            figure["waiting"] += row["n"]
        elif row["status"] == EnrolmentStatus.CONVERTED:
            figure["converted"] += row["n"]
        else:
            figure["exited"] += row["n"]
    prefix = f"{journey.pk}:"
    clicked = Message.objects.filter(source_type=SOURCE_TYPE, source_id__startswith=prefix, clicked_at__isnull=False)
    tests = Q()
    for pk in Enrolment.objects.filter(journey=journey, is_test=True).values_list("pk", flat=True)[:500]:
        tests |= Q(occurrence__startswith=f"{pk}.")  # a message's occurrence is "<enrolment>.<visit>"
    if tests:
        clicked = clicked.exclude(tests)
    clicked = clicked.values("source_id").annotate(n=Count("pk"))
    for row in clicked:
        of(row["source_id"][len(prefix):])["clicked"] += row["n"]
    return figures


def journey_totals(journey):
    return Enrolment.objects.filter(journey=journey, is_test=False).aggregate(
        entered=Count("pk"), active=Count("pk", filter=Q(status=EnrolmentStatus.ACTIVE)),
        converted=Count("pk", filter=Q(status=EnrolmentStatus.CONVERTED)))


def journeys_with_counts():
    """Every journey with entered / active / converted (real enrolments), in one query."""
    real = Q(enrolments__is_test=False)
    return (Journey.objects.select_related("current_version")
            .annotate(entered=Count("enrolments", filter=real),
                      active=Count("enrolments", filter=real & Q(enrolments__status=EnrolmentStatus.ACTIVE)),
                      converted=Count("enrolments", filter=real & Q(enrolments__status=EnrolmentStatus.CONVERTED)))
            .order_by("name", "pk"))


def trigger_summary(journey):
    trigger = journey.trigger or {}
    if journey.trigger_kind == "event":
        text = journey.trigger_event or _("(no event chosen)")
        filters = trigger.get("properties") or []
        if filters:
            text += " · " + ", ".join(f"{f.get('property')} {f.get('operator', 'equals')} {f.get('value', '')}"
                                      .strip() for f in filters if isinstance(f, dict))
        return text
    if journey.trigger_kind == "segment_entered":
        from subscribers.models import Segment

        name = Segment.objects.filter(pk=_int(trigger.get("segment"))).values_list("name", flat=True).first()
        return _("enters the segment %(name)s") % {"name": name or "#%s" % trigger.get("segment", "?")}
    if journey.trigger_kind == "date_attribute":
        return _("%(attribute)s, %(offset)s d, at %(time)s") % {
            "attribute": trigger.get("attribute", "birthday"), "offset": trigger.get("offset_days", 0),
            "time": trigger.get("local_time", "10:00")}
    return _("inactive %(days)s days") % {"days": trigger.get("days", "?")}


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- Editing: every change is a new version ----------------------------------------------------

def current_graph(journey):
    version = journey.current_version
    return copy.deepcopy(version.steps) if version else {"start": None, "steps": {}}


BLANK = {"start": "wait", "steps": {"wait": {"type": "wait", "hours": 1, "next": "end"}, "end": {"type": "exit"}}}

NEW_STEP = {
    "wait": {"type": "wait", "minutes": 15},
    "wait_until": {"type": "wait_until", "time": "10:00", "weekdays": []},
    "wait_for_event": {"type": "wait_for_event", "event": "order_placed", "timeout_minutes": 60},
    "send": {"type": "send", "template": "", "channels": ["push"]},
    "branch": {"type": "branch", "condition": {"clicked_last": True}},
    "split": {"type": "split"},
    "update": {"type": "update", "attributes": {}, "add_tags": [], "remove_tags": []},
    "webhook": {"type": "webhook", "url": "https://"},
    "exit": {"type": "exit"},
}


def new_key(graph, kind):
    steps = graph.get("steps") or {}
    base = kind.replace("_", "-")
    number = 1
    while f"{base}-{number}" in steps:
        number += 1
    return f"{base}-{number}"


def add_step(graph, after, kind):
    """A new step of `kind` right after `after` (or first when `after` is empty); -> its key.

    A step with one way out keeps what `after` pointed to; one with two or more gets it on every path."""
    steps = graph.setdefault("steps", {})
    key = new_key(graph, kind)
    following = None
    if after:
        previous = steps[after]
        if previous.get("type") in ("branch", "split", "wait_for_event", "exit"):
            raise engine.StepsError([(f"steps.{after}", _("add steps after this one on its paths instead."))])
        following = previous.get("next")
        previous["next"] = key
    else:
        following = graph.get("start")
        graph["start"] = key
    step = copy.deepcopy(NEW_STEP[kind])
    if following is None and kind not in ("send", "update", "webhook", "exit"):
        following = _an_exit(steps)  # waits and branches must lead somewhere
    if kind in ("branch", "wait_for_event"):
        step["yes"] = step["no"] = following
    elif kind == "split":
        step["paths"] = [{"percent": 50, "next": following}, {"percent": 50, "next": following}]
    elif kind != "exit":
        step["next"] = following
    steps[key] = step
    return key


def _an_exit(steps):
    for key, step in steps.items():
        if isinstance(step, dict) and step.get("type") == "exit":
            return key
    key = "end" if "end" not in steps else new_key({"steps": steps}, "exit")
    steps[key] = {"type": "exit"}
    return key


def remove_step(graph, key):
    """Take a step out; whatever led to it leads to where it led (its first way out)."""
    steps = graph.get("steps") or {}
    step = steps.pop(key)
    ways = exits(step)
    following = ways[0][1] if ways else None
    if graph.get("start") == key:
        graph["start"] = following
    for other in steps.values():
        for field in ("next", "yes", "no"):
            if other.get(field) == key:
                other[field] = following
        for option in other.get("paths") or []:
            if option.get("next") == key:
                option["next"] = following
    return graph


def publish(journey, graph):
    """engine.publish with the steps cleaned of empty links; raises engine.StepsError."""
    for step in (graph.get("steps") or {}).values():
        if isinstance(step, dict) and step.get("next") is None and "next" in step:
            del step["next"]
    return engine.publish(journey, graph)


# --- Status ------------------------------------------------------------------------------------

def activate(journey):
    """Active only with a current version that still checks out (templates may have gone)."""
    if journey.current_version is None:
        raise engine.StepsError([("steps", _("publish the steps first."))])
    trigger = journey.trigger or {}
    missing = {"event": not journey.trigger_event, "segment_entered": not trigger.get("segment"),
               "inactivity": not trigger.get("days")}.get(journey.trigger_kind)
    if missing:
        raise engine.StepsError([("trigger", _("choose what starts the journey (Trigger, entry and goal)."))])
    engine.validate_steps(journey.current_version.steps)
    set_status(journey, JourneyStatus.ACTIVE)


def set_status(journey, status):
    Journey.objects.filter(pk=journey.pk).update(status=status, updated_at=timezone.now())
    journey.status = status
    engine.forget_interest()


# --- The test run ------------------------------------------------------------------------------

def find_subscriber(who):
    who = (who or "").strip()
    if not who:
        return None
    return (Subscriber.objects.filter(external_id=who).first()
            or Subscriber.objects.filter(email__iexact=who).order_by("pk").first()
            or Subscriber.objects.filter(phone=who.replace(" ", "")).order_by("pk").first())


def start_test(journey, subscriber):
    """Enrol the shopper as a test and run the steps until the first wait; -> the enrolment or None
    (already in this journey)."""
    enrolment = engine.enroll(journey, subscriber, test=True, context=test_context(subscriber))
    if enrolment is not None:
        engine.advance(enrolment.pk)
        _send_due(enrolment)
    return enrolment


def test_context(subscriber):
    """What a real trigger would have carried, taken from the shopper's latest cart and order, so the
    messages show their items and restore link."""
    context = {"test_run": True}
    cart = subscriber.carts.order_by("-last_activity_at", "-pk").first()
    if cart is not None:
        context.update(cart_id=cart.external_id or str(cart.pk), items=cart.items, value=str(cart.value),
                       currency=cart.currency)
    order = subscriber.orders.order_by("-placed_at", "-pk").first()
    if order is not None:
        context["order_id"] = order.external_id
    return context


def next_step(enrolment):
    """Fast-forward: the wait is over now; run until the next wait or the end; -> steps run."""
    now = timezone.now()
    Enrolment.objects.filter(pk=enrolment.pk, status=EnrolmentStatus.ACTIVE).update(next_run_at=now)
    ran = engine.advance(enrolment.pk, now)
    _send_due(enrolment)
    return ran


def _send_due(enrolment):
    """Hand the test run's due messages to the send queue now rather than at the outbox's next tick: the
    engine queues a message only when its send_at is not after the step's `now`, and a message written
    during the step is stamped a moment later."""
    due = list(Message.objects.filter(
        source_type=SOURCE_TYPE, source_id__startswith=f"{enrolment.journey_id}:", subscriber_id=enrolment.subscriber_id,
        occurrence__startswith=f"{enrolment.pk}.", status="queued", dispatched_at__isnull=True,
        send_at__lte=timezone.now()).values_list("pk", flat=True))
    if due:
        outbox.enqueue(due, lane=MessageLane.TRANSACTIONAL)


def stop_test(enrolment):
    return Enrolment.objects.filter(pk=enrolment.pk, is_test=True, status=EnrolmentStatus.ACTIVE).update(
        status=EnrolmentStatus.EXITED, finished_at=timezone.now(), next_run_at=None, is_waiting=False,
        waiting_for="", exit_reason="test stopped")


def test_messages(enrolment):
    return list(Message.objects.filter(source_type=SOURCE_TYPE, source_id__startswith=f"{enrolment.journey_id}:",
                                       subscriber_id=enrolment.subscriber_id,
                                       occurrence__startswith=f"{enrolment.pk}.").order_by("pk"))
