"""The naive evaluation of a segment: load the shoppers and test each one in Python.

It is the baseline of the segments benchmark (what a plugin that filters in
application code does) and the oracle of the property tests: the same rules
must pick the same shoppers here as in the one SQL query subscribers.segments
compiles. The semantics follow the SQL, NULLs included: a missing value never
equals, is never greater or before anything, and is always "not equal".
"""
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from subscribers.models import CartStatus, Channel, ConsentStatus, PushSubscriptionStatus, Segment, SegmentKind
from subscribers.sql_functions import bucket_of, json_number, json_timestamp


@dataclass
class Facts:
    """One shopper and everything about them a segment can ask."""

    subscriber: object
    events: list = field(default_factory=list)  # (name, properties, occurred_at)
    carts: list = field(default_factory=list)  # (status, abandoned_at)
    consents: dict = field(default_factory=dict)  # channel -> status
    active_push: bool = False
    static_segments: set = field(default_factory=set)


def load_facts(subscribers):
    """Every shopper of a queryset with their events, carts, consents, push subscriptions and lists."""
    queryset = subscribers.prefetch_related("events", "carts", "consents", "push_subscriptions",
                                            "segment_memberships")
    for subscriber in queryset.iterator(chunk_size=2000):
        yield Facts(
            subscriber=subscriber,
            events=[(e.name, e.properties, e.occurred_at) for e in subscriber.events.all()],
            carts=[(c.status, c.abandoned_at) for c in subscriber.carts.all()],
            consents={c.channel: c.status for c in subscriber.consents.all()},
            active_push=any(p.status == PushSubscriptionStatus.ACTIVE for p in subscriber.push_subscriptions.all()),
            static_segments={m.segment_id for m in subscriber.segment_memberships.all()},
        )


def matches(rules, facts, now, *, segments=None):
    """Whether one shopper is in the segment the rules describe, at `now`."""
    return _Evaluator(now, segments if segments is not None else {}).node(rules, facts)


def naive_count(rules, subscribers, now):
    segments = {s.pk: s for s in Segment.objects.all()}
    return sum(1 for facts in load_facts(subscribers) if matches(rules, facts, now, segments=segments))


def _json_text(value, present):
    """What PostgreSQL's ->> gives: NULL for a missing key or JSON null, 'true'/'false', numbers as written."""
    if not present or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    return json.dumps(value)


def _moment(value):
    """As the rules read a date: a whole day from midnight UTC, or a time (naive = UTC)."""
    try:
        return datetime.combine(date.fromisoformat(value), time.min, UTC), True
    except ValueError:
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), False


class _Evaluator:
    def __init__(self, now, segments):
        self.now = now
        self.segments = segments

    def node(self, node, facts):
        if node.get("type", "group") == "group":
            results = [self.node(child, facts) for child in node.get("conditions", [])]
            if not results:
                return True
            return all(results) if node.get("match", "all") == "all" else any(results)
        return getattr(self, node["type"])(node, facts)

    # Profile columns

    def compare_text(self, actual, operator, value):
        if operator == "exists":
            return actual not in (None, "")
        if operator == "not_exists":
            return actual in (None, "")
        if operator in ("equals", "not_equals"):
            hit = actual is not None and actual.upper() == value.upper()
        elif operator in ("contains", "not_contains"):
            hit = actual is not None and value.upper() in actual.upper()
        else:
            hit = actual is not None and actual.lower() in {v.lower() for v in value}
        return hit if operator in ("equals", "contains", "in") else not hit

    def compare_number(self, actual, operator, value):
        value = Decimal(str(value))
        return {"equals": actual == value, "not_equals": actual != value, "gt": actual > value,
                "gte": actual >= value, "lt": actual < value, "lte": actual <= value}[operator]

    def compare_time(self, actual, operator, value, *, is_date=False):
        if operator in ("exists", "not_exists"):
            return (actual is not None) == (operator == "exists")
        if actual is None:
            return False
        if operator in ("within_last_days", "not_within_last_days"):
            cutoff = self.now - timedelta(days=value)
            if is_date:
                cutoff = cutoff.date()
            return actual >= cutoff if operator == "within_last_days" else actual < cutoff
        moment, whole_day = _moment(value)
        if whole_day and operator == "after":
            moment += timedelta(days=1)  # after March 1 = from March 2
        if is_date:
            return actual < moment.date() if operator == "before" else actual >= moment.date()
        if operator == "before":
            return actual < moment
        return actual >= moment if whole_day else actual > moment

    def column(self, name, kind, node, facts):
        actual = getattr(facts.subscriber, name)
        if kind == "text":
            return self.compare_text(actual, node["operator"], node.get("value"))
        if kind == "number":
            return self.compare_number(actual, node["operator"], node["value"])
        return self.compare_time(actual, node["operator"], node.get("value"), is_date=kind == "date")

    def attribute(self, node, facts):
        from subscribers.segments import ATTRIBUTE_FIELDS
        return self.column(node["field"], ATTRIBUTE_FIELDS[node["field"]], node, facts)

    def commerce(self, node, facts):
        from subscribers.segments import COMMERCE_FIELDS
        return self.column(node["field"], COMMERCE_FIELDS[node["field"]], node, facts)

    def prediction(self, node, facts):
        actual, operator = getattr(facts.subscriber, node["field"]), node["operator"]
        if operator in ("exists", "not_exists"):
            return (actual is not None) == (operator == "exists")
        if actual is None:
            return operator == "not_equals"  # NULL is never equal, greater or less; always "not equal"
        return self.compare_number(Decimal(actual), operator, node["value"])

    def subscription(self, node, facts):
        from subscribers.segments import SUBSCRIPTION_FIELDS
        return self.column(SUBSCRIPTION_FIELDS[node["field"]], "text", node, facts)

    # JSON keys

    def json(self, data, key, operator, value):
        present = isinstance(data, dict) and key in data
        raw = data.get(key) if present else None
        text = _json_text(raw, present)
        if operator in ("exists", "not_exists"):
            exists = text not in (None, "")
            return exists if operator == "exists" else not exists
        if operator in ("equals", "not_equals", "in", "not_in"):
            values = value if operator in ("in", "not_in") else [value]
            number = json_number(raw) if present else None
            hit = False
            for wanted in values:
                if isinstance(wanted, bool):
                    hit |= text == ("true" if wanted else "false")
                elif isinstance(wanted, str):
                    hit |= text is not None and text.lower() == wanted.lower()
                else:
                    hit |= number is not None and number == float(wanted)
            return hit if operator in ("equals", "in") else not hit
        if operator in ("contains", "not_contains"):
            hit = text is not None and value.upper() in text.upper()
            return hit if operator == "contains" else not hit
        if operator in ("gt", "gte", "lt", "lte"):
            number = json_number(raw) if present else None
            return number is not None and self.compare_number(Decimal(str(number)), operator, value)
        stamp = json_timestamp(raw) if present else None
        if stamp is None:
            return False
        return self.compare_time(datetime.fromisoformat(stamp).replace(tzinfo=UTC), operator, value)

    def custom_attribute(self, node, facts):
        return self.json(facts.subscriber.attributes, node["key"], node["operator"], node.get("value"))

    # The rest

    def tags(self, node, facts):
        have, wanted = set(facts.subscriber.tags or []), set(node["value"])
        return {"has_any": bool(have & wanted), "has_all": wanted <= have, "has_none": not have & wanted}[
            node["operator"]]

    def locale(self, node, facts):
        locale = facts.subscriber.locale.lower()
        hit = any(locale == v.lower() or ("-" not in v and locale.startswith(v.lower() + "-")) for v in node["value"])
        return hit if node["operator"] == "in" else not hit

    def timezone(self, node, facts):
        hit = facts.subscriber.timezone in node["value"]
        return hit if node["operator"] == "in" else not hit

    def location(self, node, facts):
        if node["field"] == "country":
            hit = facts.subscriber.country in {v.upper() for v in node["value"]}
        else:
            hit = facts.subscriber.city.lower() in {v.strip().lower() for v in node["value"]}
        return hit if node["operator"] == "in" else not hit

    def lifecycle(self, node, facts):
        hit = facts.subscriber.lifecycle_stage in node["value"]
        return hit if node["operator"] == "in" else not hit

    def reachable(self, node, facts):
        channel = node["channel"]
        if channel == Channel.PUSH:
            hit = facts.active_push
        else:
            contact = facts.subscriber.email if channel == Channel.EMAIL else facts.subscriber.phone
            hit = facts.consents.get(channel) == ConsentStatus.GRANTED and contact != ""
        return hit if node.get("operator", "is") == "is" else not hit

    def event(self, node, facts):
        since = self.now - timedelta(days=node["within_days"]) if node.get("within_days") else None
        count = sum(
            1 for name, properties, at in facts.events
            if name == node["name"] and (since is None or at >= since)
            and all(self.json(properties, f["property"], f["operator"], f.get("value"))
                    for f in node.get("properties", []))
        )
        operator = node.get("operator", "at_least")
        wanted = node.get("count", 1) if operator != "did_not" else 0
        return {"at_least": count >= wanted, "at_most": count <= wanted, "exactly": count == wanted,
                "did_not": count == 0}[operator]

    def abandoned_cart(self, node, facts):
        since = self.now - timedelta(hours=node["within_hours"])
        hit = any(status == CartStatus.ABANDONED and at is not None and at >= since for status, at in facts.carts)
        return hit if node.get("operator", "has") == "has" else not hit

    def random_bucket(self, node, facts):
        return node["from"] <= bucket_of(facts.subscriber.pk, node.get("salt", "")) < node["to"]

    def segment(self, node, facts):
        other = self.segments.get(node["segment"]) or Segment.objects.get(pk=node["segment"])
        if other.kind == SegmentKind.STATIC:
            hit = other.pk in facts.static_segments
        else:
            hit = self.node(other.rules, facts)
        return hit if node.get("operator", "in") == "in" else not hit
