"""Property tests: random rule trees pick the same shoppers in SQL as in a plain Python evaluator.

The shoppers are drawn once from a seeded generator with values chosen to sit
on every edge the rules have (window boundaries to the second, JSON values of
every type, malformed dates, missing keys, nulls); hypothesis draws the rules.
"""
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.segments.naive import load_facts, matches
from subscribers.models import Cart, Consent, Event, PushSubscription, Subscriber
from subscribers.segments import compile_rules, validate_rules

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NAMES = ["Layla", "layla", "Omar", "", "ليلى", "Sara Ali"]
EMAILS = ["layla@shop.example", "OMAR@mail.example", "", "sara@shop.example"]
LOCALES = ["ar", "ar-SA", "AR-eg", "en", "en-GB", "arn"]
ZONES = ["Asia/Riyadh", "Europe/London", "UTC"]
COUNTRIES = ["SA", "GB", ""]
CITIES = ["Riyadh", "riyadh", "London", ""]
TAGS = ["vip", "newsletter", "wholesale"]
STAGES = ["new", "active", "at_risk", "lapsed", "loyal"]
CATEGORIES = ["shoes", "Shoes", "bags", ""]
KEYS = ["plan", "score", "renews_on", "beta"]
JSON_VALUES = ["gold", "Gold", "silver", "", "12", "7.5", "lots", 12, 7.5, 0, -3, True, False, None,
               "2026-03-10", "2026-02-30", "2026-11-13T12:00:00+03:00", "2026-11-13 09:00:00", "soon",
               {"nested": 1}, ["a"]]
# Offsets that land on and around the rules' windows (1, 7, 30 days; 1, 24, 48 hours).
OFFSETS = [timedelta(0), timedelta(hours=1), timedelta(hours=1, seconds=1), timedelta(hours=24),
           timedelta(hours=24, seconds=1), timedelta(days=1), timedelta(days=7), timedelta(days=7, seconds=1),
           timedelta(days=30), timedelta(days=30, seconds=1), timedelta(days=90)]
DATES = ["2026-11-13", "2026-10-21", "2026-03-10", "2026-11-13T09:00:00", "2026-11-13T12:00:00+03:00"]
NUMBERS = [0, 1, 2, 7, 7.5, 12, 100, -3]
# Scores on and around the thresholds the prediction conditions draw (None: not scored yet).
SCORES = [None, Decimal("0"), Decimal("0.3"), Decimal("0.6999"), Decimal("0.7"), Decimal("0.7001"), Decimal("1")]
HOURS = [None, 0, 9, 20, 23]


def build_population(seed=20261120, size=45):
    rng = random.Random(seed)

    def ago():
        return NOW - rng.choice(OFFSETS)

    events, carts, consents, pushes = [], [], [], []
    for i in range(size):
        orders = rng.choice([0, 0, 1, 2, 5])
        subscriber = Subscriber.objects.create(
            external_id=f"p-{i}", first_name=rng.choice(NAMES), email=rng.choice(EMAILS),
            phone=rng.choice(["", "+966501234567"]), gender=rng.choice(["", "female", "male"]),
            locale=rng.choice(LOCALES), timezone=rng.choice(ZONES), country=rng.choice(COUNTRIES),
            city=rng.choice(CITIES), birthday=rng.choice([None, date(1990, 5, 1), date(2026, 11, 13)]),
            attributes={key: rng.choice(JSON_VALUES) for key in rng.sample(KEYS, rng.randint(0, 4))},
            tags=rng.sample(TAGS, rng.randint(0, 3)),
            subscribed_page_url=rng.choice(["", "https://shop.example/c/shoes", "https://shop.example/p/bag-1"]),
            subscribed_category=rng.choice(CATEGORIES),
            orders_count=orders, total_spent=Decimal(orders * rng.choice([50, 120])),
            average_order_value=Decimal(rng.choice([0, 50, 120])),
            last_order_at=ago() if orders else None, first_order_at=ago() if orders else None,
            lifecycle_stage=rng.choice(STAGES), created_at=ago(), last_seen_at=rng.choice([None, ago()]),
            purchase_likelihood=rng.choice(SCORES), churn_risk=rng.choice(SCORES), best_send_hour=rng.choice(HOURS),
        )
        for _n in range(rng.randint(0, 6)):
            properties = {"category": rng.choice(CATEGORIES), "value": rng.choice(JSON_VALUES)}
            if rng.random() < 0.2:
                del properties["category"]
            events.append(Event(subscriber=subscriber, name=rng.choice(["product_viewed", "order_placed"]),
                                properties=properties, occurred_at=ago()))
        for _n in range(rng.randint(0, 2)):
            status = rng.choice(["active", "abandoned", "converted"])
            carts.append(Cart(subscriber=subscriber, status=status,
                              abandoned_at=ago() if status != "active" else None))
        for channel in ("email", "sms", "whatsapp"):
            status = rng.choice([None, "granted", "revoked"])
            if status:
                consents.append(Consent(subscriber=subscriber, channel=channel, status=status, source="api"))
        push = rng.choice([None, "active", "expired"])
        if push:
            pushes.append(PushSubscription(subscriber=subscriber, endpoint=f"https://push.example/{i}",
                                           p256dh="k", auth="a", status=push))
    Event.objects.bulk_create(events)
    Cart.objects.bulk_create(carts)
    Consent.objects.bulk_create(consents)
    PushSubscription.objects.bulk_create(pushes)


# --- Rule strategies ------------------------------------------------------------------------------

def text_condition(fields, kind="attribute", key="field"):
    return st.one_of(
        st.fixed_dictionaries({"type": st.just(kind), key: st.sampled_from(fields),
                               "operator": st.sampled_from(["equals", "not_equals", "contains", "not_contains"]),
                               "value": st.sampled_from(["layla", "OMAR", "shop", "@mail.", "shoes", "Ali", "ليلى"])}),
        st.fixed_dictionaries({"type": st.just(kind), key: st.sampled_from(fields),
                               "operator": st.sampled_from(["in", "not_in"]),
                               "value": st.lists(st.sampled_from(NAMES[:-2] + EMAILS[:2] + ["shoes", "x"]).filter(
                                   bool), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"type": st.just(kind), key: st.sampled_from(fields),
                               "operator": st.sampled_from(["exists", "not_exists"])}),
    )


def time_condition(kind, fields):
    return st.one_of(
        st.fixed_dictionaries({"type": st.just(kind), "field": st.sampled_from(fields),
                               "operator": st.sampled_from(["within_last_days", "not_within_last_days"]),
                               "value": st.sampled_from([1, 7, 30])}),
        st.fixed_dictionaries({"type": st.just(kind), "field": st.sampled_from(fields),
                               "operator": st.sampled_from(["before", "after"]), "value": st.sampled_from(DATES)}),
        st.fixed_dictionaries({"type": st.just(kind), "field": st.sampled_from(fields),
                               "operator": st.sampled_from(["exists", "not_exists"])}),
    )


def json_filter(key_name, keys):
    scalar = st.sampled_from(["gold", "SILVER", "", "12", "lots", 12, 7.5, 0, True, False])
    return st.one_of(
        st.fixed_dictionaries({key_name: st.sampled_from(keys), "operator": st.sampled_from(["equals", "not_equals"]),
                               "value": scalar.filter(lambda v: v != "")}),
        st.fixed_dictionaries({key_name: st.sampled_from(keys), "operator": st.sampled_from(["in", "not_in"]),
                               "value": st.lists(st.sampled_from(["gold", "shoes", "12", 12, 7.5, -3]),
                                                 min_size=1, max_size=3)}),
        st.fixed_dictionaries({key_name: st.sampled_from(keys),
                               "operator": st.sampled_from(["contains", "not_contains"]),
                               "value": st.sampled_from(["OL", "sho", "2026", "1"])}),
        st.fixed_dictionaries({key_name: st.sampled_from(keys), "operator": st.sampled_from(["exists", "not_exists"])}),
        st.fixed_dictionaries({key_name: st.sampled_from(keys), "operator": st.sampled_from(["gt", "gte", "lt", "lte"]),
                               "value": st.sampled_from(NUMBERS)}),
        st.fixed_dictionaries({key_name: st.sampled_from(keys), "operator": st.sampled_from(["before", "after"]),
                               "value": st.sampled_from(DATES)}),
        st.fixed_dictionaries({key_name: st.sampled_from(keys),
                               "operator": st.sampled_from(["within_last_days", "not_within_last_days"]),
                               "value": st.sampled_from([1, 7, 30, 365])}),
    )


def event_condition():
    base = {"type": st.just("event"), "name": st.sampled_from(["product_viewed", "order_placed"]),
            "properties": st.lists(json_filter("property", ["category", "value"]), max_size=2)}
    window = st.sampled_from([None, 1, 7, 30])

    def with_window(node, days):
        if days:
            node["within_days"] = days
        return node

    counted = st.fixed_dictionaries({**base, "operator": st.sampled_from(["at_least", "exactly"]),
                                     "count": st.integers(1, 3)})
    at_most = st.fixed_dictionaries({**base, "operator": st.just("at_most"), "count": st.integers(0, 3)})
    did_not = st.fixed_dictionaries({**base, "operator": st.just("did_not")})
    return st.builds(with_window, st.one_of(counted, at_most, did_not), window)


def list_condition(kind, values, operators=("in", "not_in")):
    return st.fixed_dictionaries({"type": st.just(kind), "operator": st.sampled_from(operators),
                                  "value": st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True)})


conditions = st.one_of(
    text_condition(["first_name", "email", "gender"]),
    text_condition(["page", "category"], kind="subscription"),
    time_condition("attribute", ["created_at", "last_seen_at", "birthday"]),
    time_condition("commerce", ["last_order_at", "first_order_at"]),
    st.fixed_dictionaries({"type": st.just("commerce"),
                           "field": st.sampled_from(["orders_count", "total_spent", "average_order_value"]),
                           "operator": st.sampled_from(["equals", "not_equals", "gt", "gte", "lt", "lte"]),
                           "value": st.sampled_from(NUMBERS)}),
    st.builds(lambda node: {"type": "custom_attribute", **node}, json_filter("key", KEYS + ["missing"])),
    event_condition(),
    list_condition("tags", TAGS, ("has_any", "has_all", "has_none")),
    list_condition("locale", ["ar", "ar-SA", "en", "en-gb"]),
    list_condition("timezone", ZONES),
    st.fixed_dictionaries({"type": st.just("location"), "field": st.just("country"),
                           "operator": st.sampled_from(["in", "not_in"]),
                           "value": st.lists(st.sampled_from(["SA", "gb"]), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"type": st.just("location"), "field": st.just("city"),
                           "operator": st.sampled_from(["in", "not_in"]),
                           "value": st.lists(st.sampled_from(["RIYADH", "London", "Cairo"]), min_size=1, max_size=2)}),
    list_condition("lifecycle", STAGES),
    st.fixed_dictionaries({"type": st.just("reachable"), "channel": st.sampled_from(["push", "email", "sms",
                                                                                      "whatsapp"]),
                           "operator": st.sampled_from(["is", "is_not"])}),
    st.fixed_dictionaries({"type": st.just("abandoned_cart"), "operator": st.sampled_from(["has", "has_not"]),
                           "within_hours": st.sampled_from([1, 24, 48])}),
    st.fixed_dictionaries({"type": st.just("prediction"), "field": st.sampled_from(["purchase_likelihood",
                                                                                     "churn_risk"]),
                           "operator": st.sampled_from(["equals", "not_equals", "gt", "gte", "lt", "lte"]),
                           "value": st.sampled_from([0, 0.3, 0.7, 1])}),
    st.fixed_dictionaries({"type": st.just("prediction"), "field": st.just("best_send_hour"),
                           "operator": st.sampled_from(["equals", "not_equals", "gt", "gte", "lt", "lte"]),
                           "value": st.sampled_from([0, 9, 20, 23])}),
    st.fixed_dictionaries({"type": st.just("prediction"),
                           "field": st.sampled_from(["purchase_likelihood", "churn_risk", "best_send_hour"]),
                           "operator": st.sampled_from(["exists", "not_exists"])}),
    st.builds(lambda low, width, salt: {"type": "random_bucket", "salt": salt, "from": low,
                                        "to": min(100, low + width)},
              st.integers(0, 99), st.integers(1, 100), st.sampled_from(["", "a", "spring"])),
)

rule_trees = st.recursive(
    conditions,
    lambda children: st.fixed_dictionaries({"type": st.just("group"), "match": st.sampled_from(["all", "any"]),
                                            "conditions": st.lists(children, min_size=1, max_size=3)}),
    max_leaves=8,
).map(lambda node: node if node.get("type") == "group" else {"type": "group", "match": "all", "conditions": [node]})


@pytest.fixture
def population():
    build_population()
    return list(load_facts(Subscriber.objects.order_by("pk")))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rules=rule_trees)
def test_random_rules_pick_the_same_shoppers_in_sql_as_in_python(population, rules):
    validate_rules(rules)
    in_sql = set(Subscriber.objects.filter(compile_rules(rules, NOW)).values_list("pk", flat=True))
    in_python = {facts.subscriber.pk for facts in population if matches(rules, facts, NOW)}
    assert in_sql == in_python


def test_the_population_covers_both_sides_of_every_kind_of_condition(population):
    # Guards the property test against a population where every rule is trivially true or false.
    probes = [
        {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 2, "within_days": 7},
        {"type": "custom_attribute", "key": "score", "operator": "gt", "value": 7},
        {"type": "custom_attribute", "key": "renews_on", "operator": "before", "value": "2026-04-01"},
        {"type": "abandoned_cart", "within_hours": 24},
        {"type": "reachable", "channel": "sms"},
        {"type": "tags", "operator": "has_all", "value": ["vip", "newsletter"]},
        {"type": "locale", "operator": "in", "value": ["ar"]},
        {"type": "attribute", "field": "last_seen_at", "operator": "within_last_days", "value": 7},
        {"type": "prediction", "field": "churn_risk", "operator": "gt", "value": 0.7},
        {"type": "prediction", "field": "best_send_hour", "operator": "not_equals", "value": 20},
    ]
    for probe in probes:
        picked = sum(matches({"type": "group", "conditions": [probe]}, facts, NOW) for facts in population)
        assert 0 < picked < len(population), probe
