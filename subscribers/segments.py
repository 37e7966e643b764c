"""Segments: audiences built from what shoppers are and did, counted in one SQL query.

A dynamic segment's rules are a JSON tree. The root is a group; a group holds
conditions and other groups, all of which (`"match": "all"`) or any of which
(`"match": "any"`) must hold:

    {"type": "group", "match": "all", "conditions": [
        {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 2,
         "within_days": 30, "properties": [{"property": "category", "operator": "equals", "value": "shoes"}]},
        {"type": "group", "match": "any", "conditions": [
            {"type": "commerce", "field": "orders_count", "operator": "gte", "value": 2},
            {"type": "tags", "operator": "has_any", "value": ["vip"]}]}]}

Condition types (see docs/segments.md for every operator):
- `attribute` (a profile field) and `custom_attribute` (a key of `attributes`);
- `tags`, `locale`, `timezone`, `location` (country / city), `subscription` (page / category);
- `reachable` on a channel (an active push subscription; email / SMS / WhatsApp consent and a contact);
- `event`: performed at least / at most / exactly K times (optionally within the
  last N days, with property filters), or did not;
- `commerce` (orders count, total spent, average order value, first / last order)
  and `abandoned_cart` (a cart abandoned in the last N hours);
- `lifecycle` stage; `random_bucket` (stable per shopper); `segment` (in / not in another segment);
- `prediction`: the scores analytics writes nightly (purchase likelihood and churn risk 0–1, best send
  hour 0–23), compared as numbers or tested for being set.

`validate_rules()` checks a tree and raises RulesError listing every problem
with the path of its node ("rules.conditions[2].value: expected a number of
days ..."). `compile_rules()` turns a valid tree into one Q over Subscriber:
profile conditions are plain column filters, everything else a correlated
EXISTS on the shopper's events, carts, consents or push subscriptions, so the
database does all the filtering. The only queries made while compiling load
the segments a `segment` condition names (none when they are passed in `known`).
"""
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform, compile_json_path
from django.db.models.functions import Lower
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import (
    EVENT_CATEGORY_KEY_LENGTH,
    EVENT_NAME_PATTERN,
    Cart,
    CartStatus,
    Channel,
    Consent,
    ConsentStatus,
    Event,
    LifecycleStage,
    PushSubscription,
    PushSubscriptionStatus,
    Segment,
    SegmentKind,
    SegmentMembership,
    Subscriber,
)
from .sql_functions import bucket_of  # noqa: F401  (the random_bucket condition in Python)
from .validation import timezone_names

MAX_DEPTH = 5  # groups inside groups
MAX_CONDITIONS = 100
MAX_LIST = 1000
MAX_DAYS = 3650
MAX_HOURS = 24 * 365
MAX_COUNT = 100_000
MAX_TEXT = 500

TEXT, NUMBER, DATE, DATETIME, JSON = "text", "number", "date", "datetime", "json"

TEXT_OPERATORS = ("equals", "not_equals", "contains", "not_contains", "in", "not_in", "exists", "not_exists")
NUMBER_OPERATORS = ("equals", "not_equals", "gt", "gte", "lt", "lte")
TIME_OPERATORS = ("before", "after", "within_last_days", "not_within_last_days", "exists", "not_exists")
OPERATORS = {
    TEXT: TEXT_OPERATORS,
    NUMBER: NUMBER_OPERATORS,
    DATE: TIME_OPERATORS,
    DATETIME: TIME_OPERATORS,
    JSON: TEXT_OPERATORS + ("gt", "gte", "lt", "lte") + TIME_OPERATORS[:4],
}

ATTRIBUTE_FIELDS = {
    "first_name": TEXT, "last_name": TEXT, "email": TEXT, "phone": TEXT, "gender": TEXT, "external_id": TEXT,
    "birthday": DATE, "created_at": DATETIME, "last_seen_at": DATETIME,
}
COMMERCE_FIELDS = {
    "orders_count": NUMBER, "total_spent": NUMBER, "average_order_value": NUMBER,
    "first_order_at": DATETIME, "last_order_at": DATETIME,
}
SUBSCRIPTION_FIELDS = {"page": "subscribed_page_url", "category": "subscribed_category"}
# The predictions' columns and the range of each (docs/predictions.md); null until a shopper is scored.
PREDICTION_FIELDS = {"purchase_likelihood": (0, 1), "churn_risk": (0, 1), "best_send_hour": (0, 23)}
PREDICTION_OPERATORS = NUMBER_OPERATORS + ("exists", "not_exists")
LOCATION_FIELDS = ("country", "city")
EVENT_OPERATORS = ("at_least", "at_most", "exactly", "did_not")
CUSTOM_KEY = re.compile(r"^[^\x00-\x1f]{1,100}$")
EVENT_NAME = re.compile(EVENT_NAME_PATTERN)
COUNTRY = re.compile(r"^[A-Z]{2}$")

# How every node type reads: the keys it may carry besides "type".
NODE_KEYS = {
    "group": {"match", "conditions"},
    "attribute": {"field", "operator", "value"},
    "custom_attribute": {"key", "operator", "value"},
    "tags": {"operator", "value"},
    "locale": {"operator", "value"},
    "timezone": {"operator", "value"},
    "location": {"field", "operator", "value"},
    "subscription": {"field", "operator", "value"},
    "reachable": {"channel", "operator"},
    "event": {"name", "operator", "count", "within_days", "properties"},
    "commerce": {"field", "operator", "value"},
    "abandoned_cart": {"operator", "within_hours"},
    "lifecycle": {"operator", "value"},
    "random_bucket": {"salt", "from", "to"},
    "segment": {"segment", "operator"},
    "prediction": {"field", "operator", "value"},
}
PROPERTY_KEYS = {"property", "operator", "value"}
# The order a group's conditions are written in SQL: a shopper's own columns first, then their JSON, then the
# subqueries (events, carts, consents, other segments). PostgreSQL keeps the written order between filters it
# costs the same, so a cheap column test spares most rows the JSON parsing and the index probes.
COST_RANK = {"group": 2, "custom_attribute": 1, "tags": 1, "random_bucket": 1,
             "reachable": 2, "event": 2, "abandoned_cart": 2, "segment": 2}


class RulesError(ValidationError):
    """Rules that can't be compiled; `problems` is a list of (path, message)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__([f"{path}: {message}" for path, message in self.problems], code="invalid_rules")


def validate_rules(rules, *, segment=None):
    """Raise RulesError naming the path of every bad node; return None when the rules are valid.

    `segment` is the segment the rules belong to, so a rule can't include it in itself.
    """
    _Parser(segment=segment).parse(rules)


def compile_rules(rules, now=None, *, segment=None, known=None):
    """The rules as one Q over Subscriber (relative windows counted back from `now`).

    `known` ({id: Segment}) lends the segments a `segment` condition names, so
    compiling several segments already loaded queries none of them again.
    """
    build = _Parser(segment=segment, known=known or {}).parse(rules)
    return build(now or timezone.now())


def segment_queryset(segment, now=None):
    """The shoppers in a segment: a lazy queryset, one query when evaluated."""
    if segment.kind == SegmentKind.STATIC:
        return Subscriber.objects.filter(_static_member(segment.pk))
    return Subscriber.objects.filter(compile_rules(segment.rules, now, segment=segment))


def count_and_sample(rules, n=10, now=None):
    """(how many shoppers match, up to `n` of them, newest first): two queries whatever the rules."""
    matching = Subscriber.objects.filter(compile_rules(rules, now))
    return matching.count(), list(matching.order_by("-pk")[:n])


def count_segments(segments, now=None, *, among=None):
    """{segment id: member count} for several segments in one query (None for rules that no longer compile).

    `among` narrows the count to a queryset of subscribers (one shopper: segments_of).
    """
    now = now or timezone.now()
    segments = list(segments)
    known = {segment.pk: segment for segment in segments}
    filters, counts = {}, {}
    for segment in segments:
        if segment.kind == SegmentKind.STATIC:
            filters[f"s{segment.pk}"] = _static_member(segment.pk)
            continue
        try:
            filters[f"s{segment.pk}"] = compile_rules(segment.rules, now, segment=segment, known=known)
        except RulesError:
            counts[segment.pk] = None
    if filters:
        totals = (Subscriber.objects.all() if among is None else among).aggregate(**{
            alias: models.Count("pk", filter=condition) if condition else models.Count("pk")
            for alias, condition in filters.items()})
        counts.update({int(alias[1:]): total for alias, total in totals.items()})
    return counts


def segments_of(subscriber, segments, now=None):
    """The segments among `segments` that `subscriber` is in now, in their order: one query for them all.

    Every segment's rules become a filtered count over the one shopper's row, so a
    profile page asks the database once however many segments there are (the
    segments a rule names are taken from `segments` when they are among them).
    """
    segments = list(segments)
    counts = count_segments(segments, now, among=Subscriber.objects.filter(pk=subscriber.pk))
    return [segment for segment in segments if counts.get(segment.pk)]


def _static_member(segment_id):
    return Q(Exists(SegmentMembership.objects.filter(segment_id=segment_id, subscriber=OuterRef("pk"))))


# --- SQL pieces -------------------------------------------------------------------

class JSONNumber(models.Func):
    """A JSON value as a number: JSON numbers and numeric strings; NULL for anything else."""

    function = "tanbih_jsonb_numeric"  # subscribers/sql_functions.py
    output_field = models.FloatField()


class JSONTimestamp(models.Func):
    """A JSON value as a timestamp: ISO 8601 strings (naive ones in UTC); NULL for anything else."""

    function = "tanbih_jsonb_timestamptz"
    output_field = models.DateTimeField()


class JSONIsNull(models.Func):
    """The key holds JSON null (SQLite's ->> reads it as the text 'null', PostgreSQL's as SQL NULL)."""

    output_field = models.BooleanField()

    def __init__(self, column, key):
        super().__init__(F(column))
        self.key = key

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"(jsonb_typeof({column} -> %s) = 'null')", [*params, self.key]

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"(JSON_TYPE({column}, %s) = 'null')", [*params, compile_json_path([self.key])]


class Bucket(models.Func):
    """The shopper's random bucket (0–99) for a salt; bucket_of() in Python."""

    function = "tanbih_bucket"
    output_field = models.IntegerField()


class HasTags(models.Func):
    """The shopper's tags (a JSON list) hold any / all of `tags`.

    Django's has_any_keys reads object keys on SQLite, not list items, so both
    databases get their own SQL: `?|` / `?&` (GIN-indexable) on PostgreSQL,
    json_each on SQLite.
    """

    output_field = models.BooleanField()

    def __init__(self, tags, *, every=False):
        super().__init__(F("tags"))
        self.tags = sorted(set(tags))
        self.every = every

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} {'?&' if self.every else '?|'} %s::text[])", [*params, self.tags]

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        marks = ", ".join(["%s"] * len(self.tags))
        found = f"(SELECT COUNT(DISTINCT value) FROM json_each({column}) WHERE value IN ({marks}))"
        return f"({found} {'=' if self.every else '>='} %s)", [*params, *self.tags,
                                                                 len(self.tags) if self.every else 1]


def _known(expression):
    return Q(IsNull(expression, False))


def _definite(condition, expression):
    # SQL's NULL would make NOT(condition) drop shoppers lacking the value; pin it to false.
    return Q(condition) & _known(expression)


# --- Parsing ----------------------------------------------------------------------

_MISSING = object()


@dataclass
class _Parser:
    segment: Segment | None = None
    problems: list = field(default_factory=list)
    conditions: int = 0
    stack: tuple = ()
    known: dict = field(default_factory=dict)  # {id: Segment} already loaded, for `segment` conditions

    def __post_init__(self):
        if self.segment is not None and self.segment.pk:
            self.stack = (self.segment.pk,)

    def parse(self, rules):
        build = self.group(rules, "rules", depth=0, root=True)
        if self.problems:
            raise RulesError(self.problems)
        return build

    def problem(self, path, message):
        self.problems.append((path, str(message)))
        return _MISSING

    # Nodes

    def group(self, node, path, *, depth, root=False):
        if not isinstance(node, dict):
            self.problem(path, _("expected a group: an object with \"match\" and \"conditions\"."))
            return None
        if node.get("type", "group") != "group":
            self.problem(path + ".type", _("the rules must start with a group."))
            return None
        self.unknown_keys(node, NODE_KEYS["group"], path)
        match = self.choice(node, "match", path, ("all", "any"), default="all")
        children = node.get("conditions", [])
        if not isinstance(children, list):
            self.problem(path + ".conditions", _("expected a list of conditions."))
            return None
        if not children and not root:
            self.problem(path + ".conditions", _("a group needs at least one condition."))
        if depth > MAX_DEPTH:
            self.problem(path, _("groups can be nested %(max)s levels deep at most.") % {"max": MAX_DEPTH})
            return None
        builds, ranks = [], []
        for index, child in enumerate(children):
            child_path = f"{path}.conditions[{index}]"
            if isinstance(child, dict) and child.get("type") == "group":
                builds.append(self.group(child, child_path, depth=depth + 1))
            else:
                builds.append(self.condition(child, child_path))
            ranks.append(COST_RANK.get(child.get("type", "group"), 0) if isinstance(child, dict) else 0)
        if match is _MISSING or None in builds:
            return None
        builds = [b for _rank, _index, b in sorted(zip(ranks, range(len(builds)), builds))]

        def build(now):
            parts = [b(now) for b in builds]
            if not parts:
                return Q()
            combined = parts[0]
            for part in parts[1:]:
                combined = (combined & part) if match == "all" else (combined | part)
            return combined
        return build

    def condition(self, node, path):
        self.conditions += 1
        if self.conditions == MAX_CONDITIONS + 1:
            self.problem(path, _("a segment can have %(max)s conditions at most.") % {"max": MAX_CONDITIONS})
        if not isinstance(node, dict):
            self.problem(path, _("expected a condition: an object with a \"type\"."))
            return None
        kind = node.get("type")
        if kind not in NODE_KEYS:
            self.problem(path + ".type", _("'%(value)s' is not a condition type; use one of %(choices)s.")
                         % {"value": kind, "choices": ", ".join(NODE_KEYS)})
            return None
        self.unknown_keys(node, NODE_KEYS[kind], path)
        return getattr(self, f"parse_{kind}")(node, path)

    def unknown_keys(self, node, allowed, path):
        for key in node:
            if key != "type" and key not in allowed:
                self.problem(f"{path}.{key}", _("unknown key; this node reads %(keys)s.")
                             % {"keys": ", ".join(sorted(allowed))})

    # Values

    def choice(self, node, key, path, choices, *, default=_MISSING):
        value = node.get(key, default)
        if value not in choices:
            return self.problem(f"{path}.{key}", _("expected one of %(choices)s.") % {"choices": ", ".join(choices)})
        return value

    def whole(self, node, key, path, low, high, what, *, required=True):
        value = node.get(key, _MISSING)
        if value is _MISSING or value is None:
            if not required:
                return None
        elif isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        return self.problem(f"{path}.{key}", _("expected %(what)s (a whole number from %(low)s to %(high)s).")
                            % {"what": what, "low": low, "high": high})

    def text(self, node, key, path):
        value = node.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            return self.problem(f"{path}.{key}", _("expected a text of 1 to %(max)s characters.") % {"max": MAX_TEXT})
        return value

    def number(self, node, key, path):
        value = node.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return self.problem(f"{path}.{key}", _("expected a number."))
        return Decimal(str(value))

    def moment(self, node, key, path):
        """An ISO date (→ midnight UTC, flagged as a whole day) or an ISO datetime (naive = UTC)."""
        value = node.get(key)
        if isinstance(value, str):
            try:
                return datetime.combine(date.fromisoformat(value), time.min, dt_timezone.utc), True
            except ValueError:
                pass
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                return (parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=dt_timezone.utc)), False
        return self.problem(f"{path}.{key}", _("expected a date such as 2026-03-01 or a date and time such as "
                                               "2026-03-01T18:00:00+03:00."))

    def items(self, node, key, path, *, kinds=(str,), check=None):
        value = node.get(key)
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            return self.problem(f"{path}.{key}", _("expected a list of 1 to %(max)s values.") % {"max": MAX_LIST})
        cleaned = []
        for index, item in enumerate(value):
            item_path = f"{path}.{key}[{index}]"
            if isinstance(item, bool) or not isinstance(item, kinds) or (isinstance(item, str) and not item.strip()):
                self.problem(item_path, _("expected a text") if kinds == (str,) else _("expected a text or a number"))
                continue
            if check is not None:
                item = check(item, item_path)
                if item is _MISSING:
                    continue
            cleaned.append(item)
        return cleaned if len(cleaned) == len(value) else _MISSING

    def comparison(self, node, path, kind):
        """(operator, value) for a field of `kind`; value is _MISSING after a problem."""
        operator = self.choice(node, "operator", path, OPERATORS[kind])
        if operator is _MISSING:
            return operator, _MISSING
        if operator in ("exists", "not_exists"):
            return operator, None
        if operator in ("within_last_days", "not_within_last_days"):
            return operator, self.whole(node, "value", path, 1, MAX_DAYS, _("a number of days"))
        if operator in ("before", "after"):
            return operator, self.moment(node, "value", path)
        if operator in ("gt", "gte", "lt", "lte") or kind == NUMBER:
            return operator, self.number(node, "value", path)
        if operator in ("in", "not_in"):
            return operator, self.items(node, "value", path, kinds=(str,) if kind == TEXT else (str, int, float))
        if operator in ("contains", "not_contains") or kind == TEXT:
            return operator, self.text(node, "value", path)
        value = node.get("value")  # equals / not_equals on a JSON value
        if isinstance(value, bool) or (isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT):
            return operator, value
        if isinstance(value, int | float) and math.isfinite(value):
            return operator, Decimal(str(value))
        return operator, self.problem(path + ".value", _("expected a text, a number, true or false."))

    # Conditions: each returns build(now) -> Q, or None after recording its problems.

    def parse_attribute(self, node, path):
        name = self.choice(node, "field", path, tuple(ATTRIBUTE_FIELDS))
        if name is _MISSING:
            return None
        return self.field_condition(node, path, name, ATTRIBUTE_FIELDS[name])

    def parse_commerce(self, node, path):
        name = self.choice(node, "field", path, tuple(COMMERCE_FIELDS))
        if name is _MISSING:
            return None
        return self.field_condition(node, path, name, COMMERCE_FIELDS[name])

    def parse_subscription(self, node, path):
        name = self.choice(node, "field", path, tuple(SUBSCRIPTION_FIELDS))
        if name is _MISSING:
            return None
        return self.field_condition(node, path, SUBSCRIPTION_FIELDS[name], TEXT)

    def field_condition(self, node, path, name, kind):
        operator, value = self.comparison(node, path, kind)
        if value is _MISSING:
            return None
        return lambda now: _field_q(name, kind, operator, value, now)

    def parse_prediction(self, node, path):
        name = self.choice(node, "field", path, tuple(PREDICTION_FIELDS))
        operator = self.choice(node, "operator", path, PREDICTION_OPERATORS)
        if _MISSING in (name, operator):
            return None
        if operator in ("exists", "not_exists"):
            return lambda now: Q(**{f"{name}__isnull": operator == "not_exists"})
        value = self.number(node, "value", path)
        low, high = PREDICTION_FIELDS[name]
        if value is not _MISSING and not low <= value <= high:
            value = self.problem(path + ".value", _("expected a number from %(low)s to %(high)s.")
                                 % {"low": low, "high": high})
        if value is _MISSING:
            return None
        return lambda now: _field_q(name, NUMBER, operator, value, now)

    def parse_custom_attribute(self, node, path):
        key = node.get("key")
        if not isinstance(key, str) or not CUSTOM_KEY.match(key):
            self.problem(path + ".key", _("expected the name of a custom attribute (1 to 100 characters)."))
            return None
        operator, value = self.comparison(node, path, JSON)
        if value is _MISSING:
            return None
        return lambda now: _json_q("attributes", key, operator, value, now)

    def parse_tags(self, node, path):
        operator = self.choice(node, "operator", path, ("has_any", "has_all", "has_none"))
        tags = self.items(node, "value", path)
        if _MISSING in (operator, tags):
            return None
        if operator == "has_all":
            return lambda now: Q(HasTags(tags, every=True))
        if operator == "has_any":
            return lambda now: Q(HasTags(tags))
        return lambda now: ~Q(HasTags(tags))

    def parse_locale(self, node, path):
        operator = self.choice(node, "operator", path, ("in", "not_in"))

        def check(item, item_path):
            if not re.match(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,3})?$", item):
                return self.problem(item_path, _("expected a language code such as 'ar', 'en' or 'ar-SA'."))
            return item

        locales = self.items(node, "value", path, check=check)
        if _MISSING in (operator, locales):
            return None

        def build(now):
            # "ar" matches every Arabic shopper (ar, ar-SA, ar-EG); "ar-SA" only those.
            q = Q()
            for locale in locales:
                language, _sep, region = locale.partition("-")
                if region:
                    q |= Q(locale__iexact=locale)
                else:
                    q |= Q(locale__iexact=language) | Q(locale__istartswith=language + "-")
            return q if operator == "in" else ~q
        return build

    def parse_timezone(self, node, path):
        operator = self.choice(node, "operator", path, ("in", "not_in"))

        def check(item, item_path):
            if item not in timezone_names():
                return self.problem(item_path, _("'%(value)s' is not an IANA timezone name (for example "
                                                 "Asia/Riyadh or Europe/London).") % {"value": item})
            return item

        zones = self.items(node, "value", path, check=check)
        if _MISSING in (operator, zones):
            return None
        return lambda now: Q(timezone__in=zones) if operator == "in" else ~Q(timezone__in=zones)

    def parse_location(self, node, path):
        name = self.choice(node, "field", path, LOCATION_FIELDS)
        operator = self.choice(node, "operator", path, ("in", "not_in"))

        def check_country(item, item_path):
            if not COUNTRY.match(item.upper()):
                return self.problem(item_path, _("expected a two-letter country code (ISO 3166-1) such as SA."))
            return item.upper()

        values = self.items(node, "value", path, check=check_country if name == "country" else None)
        if _MISSING in (name, operator, values):
            return None
        if name == "country":
            q = Q(country__in=values)
        else:
            q = Q(In(Lower(F("city")), [v.strip().lower() for v in values]))
        return lambda now: q if operator == "in" else ~q

    def parse_lifecycle(self, node, path):
        operator = self.choice(node, "operator", path, ("in", "not_in"))
        stages = self.items(node, "value", path, check=lambda item, item_path: (
            item if item in LifecycleStage.values else self.problem(
                item_path, _("expected one of %(choices)s.") % {"choices": ", ".join(LifecycleStage.values)})))
        if _MISSING in (operator, stages):
            return None
        return lambda now: Q(lifecycle_stage__in=stages) if operator == "in" else ~Q(lifecycle_stage__in=stages)

    def parse_reachable(self, node, path):
        channel = self.choice(node, "channel", path, Channel.values)
        operator = self.choice(node, "operator", path, ("is", "is_not"), default="is")
        if _MISSING in (channel, operator):
            return None

        def build(now):
            if channel == Channel.PUSH:
                q = Q(Exists(PushSubscription.objects.filter(
                    subscriber=OuterRef("pk"), status=PushSubscriptionStatus.ACTIVE)))
            else:
                contact = "email" if channel == Channel.EMAIL else "phone"
                q = Q(Exists(Consent.objects.filter(
                    subscriber=OuterRef("pk"), channel=channel, status=ConsentStatus.GRANTED))) & ~Q(**{contact: ""})
            return q if operator == "is" else ~q
        return build

    def parse_event(self, node, path):
        name = node.get("name")
        if not isinstance(name, str) or not EVENT_NAME.match(name):
            name = self.problem(path + ".name", _("expected an event name such as product_viewed."))
        operator = self.choice(node, "operator", path, EVENT_OPERATORS, default="at_least")
        count = None
        if operator in ("at_least", "exactly"):
            count = self.whole(node, "count", path, 1, MAX_COUNT, _("a number of times"),
                               required=operator == "exactly") or 1
        elif operator == "at_most":
            count = self.whole(node, "count", path, 0, MAX_COUNT, _("a number of times"))
        elif operator == "did_not" and "count" in node:
            self.problem(path + ".count", _("\"did not\" takes no count."))
        days = self.whole(node, "within_days", path, 1, MAX_DAYS, _("a number of days"), required=False)
        filters = self.property_filters(node, path)
        if _MISSING in (name, operator, count, days, filters):
            return None

        def build(now):
            events = Event.objects.filter(subscriber=OuterRef("pk"), name=name)
            if days:
                events = events.filter(occurred_at__gte=now - timedelta(days=days))
            for build_filter in filters:
                events = events.filter(build_filter(now))
            return _event_count_q(events, operator, count)
        return build

    def property_filters(self, node, path):
        raw = node.get("properties", [])
        if not isinstance(raw, list) or len(raw) > 20:
            return self.problem(path + ".properties", _("expected a list of at most 20 property filters."))
        builds = []
        for index, item in enumerate(raw):
            item_path = f"{path}.properties[{index}]"
            if not isinstance(item, dict):
                self.problem(item_path, _("expected a property filter: an object with \"property\" and \"operator\"."))
                continue
            self.unknown_keys(item, PROPERTY_KEYS, item_path)
            key = item.get("property")
            if not isinstance(key, str) or not CUSTOM_KEY.match(key):
                self.problem(item_path + ".property", _("expected the name of an event property."))
                continue
            operator, value = self.comparison(item, item_path, JSON)
            if value is _MISSING:
                continue
            builds.append(lambda now, key=key, operator=operator, value=value:
                          _event_property_q(key, operator, value, now))
        return builds if len(builds) == len(raw) else _MISSING

    def parse_abandoned_cart(self, node, path):
        operator = self.choice(node, "operator", path, ("has", "has_not"), default="has")
        hours = self.whole(node, "within_hours", path, 1, MAX_HOURS, _("a number of hours"))
        if _MISSING in (operator, hours):
            return None

        def build(now):
            q = Q(Exists(Cart.objects.filter(subscriber=OuterRef("pk"), status=CartStatus.ABANDONED,
                                             abandoned_at__gte=now - timedelta(hours=hours))))
            return q if operator == "has" else ~q
        return build

    def parse_random_bucket(self, node, path):
        salt = node.get("salt", "")
        if not isinstance(salt, str) or len(salt) > 100:
            salt = self.problem(path + ".salt", _("expected a text of at most 100 characters."))
        low = self.whole(node, "from", path, 0, 99, _("the first bucket"))
        high = self.whole(node, "to", path, 1, 100, _("the bucket after the last one"))
        if _MISSING in (salt, low, high):
            return None
        if high <= low:
            self.problem(path + ".to", _("expected a bucket after \"from\" (the range is from ≤ bucket < to)."))
            return None

        def build(now):
            # Buckets run 0–99, so a bound at either end says nothing, and each bound written hashes every
            # shopper once more. (Never an empty Q: Django drops it from an OR instead of making the OR true.)
            bucket = Bucket(Value(salt), F("pk"))
            if high == 100:
                return Q(GreaterThanOrEqual(bucket, low))
            upper = Q(LessThan(bucket, high))
            return upper if low == 0 else Q(GreaterThanOrEqual(bucket, low)) & upper
        return build

    def parse_segment(self, node, path):
        operator = self.choice(node, "operator", path, ("in", "not_in"), default="in")
        segment_id = node.get("segment")
        if isinstance(segment_id, bool) or not isinstance(segment_id, int):
            self.problem(path + ".segment", _("expected the id of a segment."))
            return None
        if segment_id in self.stack:
            self.problem(path + ".segment", _("a segment can't include itself, even through other segments."))
            return None
        other = self.known.get(segment_id) or Segment.objects.filter(pk=segment_id).first()
        if other is None:
            self.problem(path + ".segment", _("there is no segment %(id)s.") % {"id": segment_id})
            return None
        if operator is _MISSING:
            return None
        if other.kind == SegmentKind.STATIC:
            return lambda now: _static_member(other.pk) if operator == "in" else ~_static_member(other.pk)
        inner = _Parser(segment=None, stack=self.stack + (other.pk,), known=self.known)
        inner.conditions = self.conditions
        build = inner.group(other.rules, "rules", depth=0, root=True)
        self.conditions = inner.conditions
        for inner_path, message in inner.problems:
            self.problem(path + ".segment", _("segment '%(name)s' can't be used: %(problem)s")
                         % {"name": other, "problem": f"{inner_path}: {message}"})
        if inner.problems or build is None:
            return None
        return lambda now: build(now) if operator == "in" else ~build(now)


def _event_count_q(events, operator, count):
    # Existence of the K-th row (OFFSET K-1 LIMIT 1) stops the index scan after
    # K events instead of counting every one of them.
    if operator == "did_not" or (operator in ("at_most", "exactly") and count == 0):
        return ~Q(Exists(events))
    if operator == "at_least":
        return Q(Exists(events[count - 1:count]))
    more_than_count = Q(Exists(events[count:count + 1]))
    if operator == "at_most":
        return ~more_than_count
    return Q(Exists(events[count - 1:count])) & ~more_than_count


def _field_q(name, kind, operator, value, now):
    """A condition on a Subscriber column; Django keeps NULLs right under negation."""
    if kind == TEXT:
        if operator in ("exists", "not_exists"):
            q = Q(**{f"{name}__isnull": False}) & ~Q(**{name: ""})
            return q if operator == "exists" else ~q
        if operator in ("equals", "not_equals"):
            q = Q(**{f"{name}__iexact": value})
            return q if operator == "equals" else ~q
        if operator in ("contains", "not_contains"):
            q = Q(**{f"{name}__icontains": value})
            return q if operator == "contains" else ~q
        q = _definite(In(Lower(F(name)), [v.lower() for v in value]), F(name))
        return q if operator == "in" else ~q
    if kind == NUMBER:
        if operator == "not_equals":
            return ~Q(**{name: value})
        lookup = {"equals": "exact"}.get(operator, operator)
        return Q(**{f"{name}__{lookup}": value})
    if operator in ("exists", "not_exists"):
        return Q(**{f"{name}__isnull": operator == "not_exists"})
    if operator in ("within_last_days", "not_within_last_days"):
        cutoff = now - timedelta(days=value)
        if kind == DATE:
            cutoff = cutoff.date()
        return Q(**{f"{name}__{'gte' if operator == 'within_last_days' else 'lt'}": cutoff})
    moment, whole_day = value
    if operator == "after" and whole_day:
        moment += timedelta(days=1)  # after March 1 = from March 2
    if kind == DATE:
        return Q(**{f"{name}__{'lt' if operator == 'before' else 'gte'}": moment.date()})
    lookup = "lt" if operator == "before" else ("gte" if whole_day else "gt")
    return Q(**{f"{name}__{lookup}": moment})


def _event_property_q(key, operator, value, now):
    """A filter on one event property: the category from the stored column when it says the same, else the JSON.

    Event.category_key is lower(properties.category) cut to EVENT_CATEGORY_KEY_LENGTH characters and sits in
    the (subscriber, name, occurred_at) index, so "viewed shoes 3 times in 30 days" is an index-only probe per
    shopper. Only text (in)equality on values shorter than the cut reads it: there the cut copy equals a value
    exactly when the whole category does (a cut copy is as long as the cut).
    """
    if key == "category" and operator in ("equals", "not_equals", "in", "not_in"):
        values = value if operator in ("in", "not_in") else [value]
        if all(isinstance(v, str) and len(v) < EVENT_CATEGORY_KEY_LENGTH for v in values):
            column = F("category_key")
            q = _definite(In(column, [v.lower() for v in values]), column)
            return q if operator in ("equals", "in") else ~q
    return _json_q("properties", key, operator, value, now)


def _json_q(column, key, operator, value, now):
    """A condition on one key of a JSON column (custom attributes, event properties)."""
    text = KeyTextTransform(key, column)
    if operator in ("exists", "not_exists"):
        q = _known(text) & ~Q(Exact(text, "")) & ~Q(JSONIsNull(column, key))
        return q if operator == "exists" else ~q
    if operator in ("equals", "not_equals", "in", "not_in"):
        values = value if operator in ("in", "not_in") else [value]
        parts = []
        words = [v.lower() for v in values if isinstance(v, str)]
        flags = ["true" if v else "false" for v in values if isinstance(v, bool)]
        numbers = [float(v) for v in values if isinstance(v, int | float | Decimal) and not isinstance(v, bool)]
        if words:
            parts.append(_definite(In(Lower(text), words), text))
        if flags:
            # Both databases read JSON true / false as the texts 'true' / 'false'.
            parts.append(_definite(In(text, flags), text))
        if numbers:
            number = JSONNumber(KeyTransform(key, column))
            parts.append(_definite(In(number, numbers), number))
        q = parts[0]
        for part in parts[1:]:
            q |= part
        return q if operator in ("equals", "in") else ~q
    if operator in ("contains", "not_contains"):
        q = _definite(IContains(text, value), text)
        return q if operator == "contains" else ~q
    if operator in ("gt", "gte", "lt", "lte"):
        number = JSONNumber(KeyTransform(key, column))
        lookup = {"gt": GreaterThan, "gte": GreaterThanOrEqual, "lt": LessThan, "lte": LessThanOrEqual}[operator]
        return _definite(lookup(number, float(value)), number)
    stamp = JSONTimestamp(KeyTransform(key, column))
    if operator == "within_last_days":
        return _definite(GreaterThanOrEqual(stamp, now - timedelta(days=value)), stamp)
    if operator == "not_within_last_days":
        return _definite(LessThan(stamp, now - timedelta(days=value)), stamp)
    moment, whole_day = value
    if operator == "before":
        return _definite(LessThan(stamp, moment), stamp)
    if whole_day:
        return _definite(GreaterThanOrEqual(stamp, moment + timedelta(days=1)), stamp)
    return _definite(GreaterThan(stamp, moment), stamp)


# --- Static segments --------------------------------------------------------------

STATIC_COLUMNS = ("external_id", "email", "phone")
STATIC_CHUNK = 1000


@dataclass
class StaticUpload:
    """What adding a list to a static segment did; `problems` has one entry per row left out."""

    rows: int = 0
    added: int = 0
    already: int = 0
    problems: list = field(default_factory=list)

    def problem(self, row, column, message, value=""):
        self.problems.append({"row": row, "field": column, "message": str(message), "value": value})


def add_static_members(*, segment, file, file_format=None, replace=False):
    """Add the shoppers a CSV/XLSX list names to a static segment.

    The file has a header row with at least one of the columns external_id,
    email, phone; each row names a shopper by the first of those it fills in
    (a phone in E.164, +9665…). A row naming nobody we know, or a malformed
    value, is reported with its row number (1 = the first row under the header)
    and left out; the other rows are added. `replace` empties the segment first.
    Raises ImportFileError when the file can't be read or has none of the columns.
    """
    from .imports import ImportFile, ImportFileError, guess_format, text

    if segment.kind != SegmentKind.STATIC:
        raise ValidationError(_("Only a static segment takes a list of shoppers; this one is built from rules."))
    file_format = file_format or guess_format(getattr(file, "name", "")) or "csv"
    source = ImportFile(file, file_format)
    headers = source.headers()
    if not set(headers) & set(STATIC_COLUMNS):
        raise ImportFileError(_("The list needs a header row with an external_id, email or phone column; "
                                "it has: %(headers)s.") % {"headers": ", ".join(h for h in headers if h) or "-"})
    report = StaticUpload()
    with transaction.atomic():
        segment = Segment.objects.select_for_update().get(pk=segment.pk)
        if replace:
            segment.memberships.all().delete()
        chunk = []
        for number, row in source.rows():
            report.rows += 1
            chunk.append((number, {column: text(row.get(column)) for column in STATIC_COLUMNS}))
            if len(chunk) == STATIC_CHUNK:
                _add_chunk(segment, chunk, report)
                chunk = []
        if chunk:
            _add_chunk(segment, chunk, report)
        Segment.objects.filter(pk=segment.pk).update(updated_at=timezone.now())
    report.problems.sort(key=lambda problem: problem["row"])
    return report


def _add_chunk(segment, chunk, report):
    from .validation import normalize_phone

    wanted = []  # (row number, column, value as stored)
    for number, values in chunk:
        column = next((c for c in STATIC_COLUMNS if values[c]), None)
        if column is None:
            report.problem(number, "", _("The row has no external_id, email or phone."))
            continue
        value = values[column]
        if column == "email":
            if "@" not in value:
                report.problem(number, column, _("'%(value)s' is not an email address.") % {"value": value}, value)
                continue
            value = value.lower()
        elif column == "phone":
            try:
                value = normalize_phone(value)
            except ValidationError as error:
                report.problem(number, column, error.messages[0], value)
                continue
        wanted.append((number, column, value))

    found = {column: {} for column in STATIC_COLUMNS}
    for column in STATIC_COLUMNS:
        values = {value for _n, c, value in wanted if c == column}
        if not values:
            continue
        matches = Subscriber.objects.all()
        if column == "email":
            matches = matches.annotate(match=Lower("email")).filter(match__in=values)
        else:
            matches = matches.annotate(match=F(column)).filter(match__in=values)
        for subscriber_id, value in matches.values_list("pk", "match"):
            found[column].setdefault(value, []).append(subscriber_id)

    ids = set()
    for number, column, value in wanted:
        matched = found[column].get(value)
        if not matched:
            report.problem(number, column, _("No shopper has the %(column)s '%(value)s'.")
                           % {"column": column, "value": value}, value)
            continue
        ids.update(matched)
    existing = set(SegmentMembership.objects.filter(segment=segment, subscriber_id__in=ids)
                   .values_list("subscriber_id", flat=True))
    SegmentMembership.objects.bulk_create(
        [SegmentMembership(segment=segment, subscriber_id=i) for i in sorted(ids - existing)], ignore_conflicts=True)
    report.added += len(ids - existing)
    report.already += len(existing)
