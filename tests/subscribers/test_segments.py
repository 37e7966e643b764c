"""Segments: every condition against hand-built shoppers, compiled to one query on PostgreSQL."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from subscribers import demo, services
from subscribers.imports import ImportFileError
from subscribers.models import (
    ApiKey,
    Cart,
    CartStatus,
    Channel,
    PushSubscription,
    PushSubscriptionStatus,
    Segment,
    SegmentKind,
    SegmentMembership,
    Source,
    Subscriber,
)
from subscribers.segments import (
    RulesError,
    add_static_members,
    bucket_of,
    compile_rules,
    count_and_sample,
    count_segments,
    validate_rules,
)
from tests.factories import push_keys

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def shopper(external_id, **fields):
    return Subscriber.objects.create(external_id=external_id, **fields)


def group(*conditions, match="all"):
    return {"type": "group", "match": match, "conditions": list(conditions)}


def members(*conditions, match="all", now=NOW):
    rules = group(*conditions, match=match)
    return set(Subscriber.objects.filter(compile_rules(rules, now)).values_list("external_id", flat=True))


def event(subscriber, name, at, **properties):
    services.record_event(subscriber=subscriber, name=name, properties=properties, occurred_at=at)


def problems(rules, **kwargs):
    with pytest.raises(RulesError) as caught:
        validate_rules(rules, **kwargs)
    return caught.value.messages


# --- Profile attributes -----------------------------------------------------------------

def test_a_text_attribute_matches_equals_contains_and_lists_ignoring_case():
    shopper("layla", first_name="Layla", email="layla@shop.example")
    shopper("omar", first_name="Omar", email="OMAR@mail.example")
    shopper("blank", first_name="")

    assert members({"type": "attribute", "field": "first_name", "operator": "equals", "value": "layla"}) == {"layla"}
    assert members({"type": "attribute", "field": "first_name", "operator": "not_equals", "value": "Layla"}) == {
        "omar", "blank"}
    assert members({"type": "attribute", "field": "email", "operator": "contains", "value": "@MAIL."}) == {"omar"}
    assert members({"type": "attribute", "field": "email", "operator": "not_contains", "value": "mail"}) == {
        "layla", "blank"}
    assert members({"type": "attribute", "field": "email", "operator": "in",
                    "value": ["omar@mail.example", "nobody@x.example"]}) == {"omar"}
    assert members({"type": "attribute", "field": "email", "operator": "not_in",
                    "value": ["omar@mail.example"]}) == {"layla", "blank"}
    assert members({"type": "attribute", "field": "first_name", "operator": "exists"}) == {"layla", "omar"}
    assert members({"type": "attribute", "field": "first_name", "operator": "not_exists"}) == {"blank"}


def test_an_anonymous_visitor_has_no_store_id_and_is_not_lost_by_not_in():
    shopper("c-1")
    Subscriber.objects.create(external_id=None, email="anon@x.example")

    assert Subscriber.objects.filter(compile_rules(group(
        {"type": "attribute", "field": "external_id", "operator": "not_in", "value": ["c-1"]}), NOW)).count() == 1
    assert members({"type": "attribute", "field": "external_id", "operator": "exists"}) == {"c-1"}


def test_date_attributes_compare_before_after_and_within_the_last_days():
    shopper("young", birthday=date(2000, 5, 1), created_at=NOW - timedelta(days=3), last_seen_at=NOW)
    shopper("old", birthday=date(1970, 1, 1), created_at=NOW - timedelta(days=40),
            last_seen_at=NOW - timedelta(days=31))
    shopper("unknown", created_at=NOW - timedelta(days=10))

    assert members({"type": "attribute", "field": "birthday", "operator": "before", "value": "1990-01-01"}) == {"old"}
    assert members({"type": "attribute", "field": "birthday", "operator": "after", "value": "2000-04-30"}) == {"young"}
    # "after May 1" starts on May 2.
    assert members({"type": "attribute", "field": "birthday", "operator": "after", "value": "2000-05-01"}) == set()
    assert members({"type": "attribute", "field": "birthday", "operator": "not_exists"}) == {"unknown"}
    assert members({"type": "attribute", "field": "created_at", "operator": "within_last_days", "value": 7}) == {
        "young"}
    assert members({"type": "attribute", "field": "created_at", "operator": "not_within_last_days",
                    "value": 7}) == {"old", "unknown"}
    assert members({"type": "attribute", "field": "last_seen_at", "operator": "not_within_last_days",
                    "value": 30}) == {"old"}
    assert members({"type": "attribute", "field": "created_at", "operator": "after",
                    "value": "2026-11-15T00:00:00+03:00"}) == {"young"}


# --- Custom attributes ---------------------------------------------------------------------

@pytest.fixture
def custom():
    shopper("gold", attributes={"plan": "Gold", "score": 12, "renews_on": "2026-03-10", "beta": True})
    shopper("silver", attributes={"plan": "silver", "score": "7.5", "renews_on": "2026-02-30", "beta": False})
    shopper("odd", attributes={"plan": "", "score": "lots", "renews_on": "soon", "beta": None})
    shopper("none", attributes={})


def test_a_custom_attribute_equals_a_text_a_number_or_a_flag(custom):
    assert members({"type": "custom_attribute", "key": "plan", "operator": "equals", "value": "gold"}) == {"gold"}
    assert members({"type": "custom_attribute", "key": "score", "operator": "equals", "value": 7.5}) == {"silver"}
    assert members({"type": "custom_attribute", "key": "beta", "operator": "equals", "value": True}) == {"gold"}
    assert members({"type": "custom_attribute", "key": "plan", "operator": "in", "value": ["SILVER", 12]}) == {
        "silver"}
    assert members({"type": "custom_attribute", "key": "score", "operator": "in", "value": ["x", 12]}) == {"gold"}


def test_not_equals_on_a_custom_attribute_includes_shoppers_without_it(custom):
    assert members({"type": "custom_attribute", "key": "plan", "operator": "not_equals", "value": "gold"}) == {
        "silver", "odd", "none"}
    assert members({"type": "custom_attribute", "key": "plan", "operator": "not_in", "value": ["gold", "silver"]}) == {
        "odd", "none"}


def test_a_custom_attribute_exists_only_with_a_value_that_is_not_empty_or_null(custom):
    assert members({"type": "custom_attribute", "key": "plan", "operator": "exists"}) == {"gold", "silver"}
    assert members({"type": "custom_attribute", "key": "beta", "operator": "not_exists"}) == {"odd", "none"}
    assert members({"type": "custom_attribute", "key": "plan", "operator": "contains", "value": "IL"}) == {"silver"}


def test_greater_and_less_than_read_numbers_and_numeric_text_and_skip_the_rest(custom):
    assert members({"type": "custom_attribute", "key": "score", "operator": "gt", "value": 7}) == {"gold", "silver"}
    assert members({"type": "custom_attribute", "key": "score", "operator": "lt", "value": 10}) == {"silver"}
    assert members({"type": "custom_attribute", "key": "score", "operator": "gte", "value": 12}) == {"gold"}
    assert members({"type": "custom_attribute", "key": "score", "operator": "lte", "value": 7.5}) == {"silver"}


def test_date_comparisons_on_a_custom_attribute_skip_values_that_are_not_dates_without_failing(custom):
    assert members({"type": "custom_attribute", "key": "renews_on", "operator": "before", "value": "2026-04-01"}) == {
        "gold"}
    assert members({"type": "custom_attribute", "key": "renews_on", "operator": "after", "value": "2026-03-09"}) == {
        "gold"}
    assert members({"type": "custom_attribute", "key": "renews_on", "operator": "within_last_days", "value": 365},
                   now=datetime(2026, 6, 1, tzinfo=UTC)) == {"gold"}
    assert members({"type": "custom_attribute", "key": "renews_on", "operator": "not_within_last_days",
                    "value": 30}, now=datetime(2026, 6, 1, tzinfo=UTC)) == {"gold"}


# --- Tags, locale, timezone, place, subscription -----------------------------------------------

def test_tags_match_any_all_or_none_of_a_list():
    shopper("vip", tags=["vip", "newsletter"])
    shopper("news", tags=["newsletter"])
    shopper("plain", tags=[])

    assert members({"type": "tags", "operator": "has_any", "value": ["vip", "wholesale"]}) == {"vip"}
    assert members({"type": "tags", "operator": "has_all", "value": ["vip", "newsletter"]}) == {"vip"}
    assert members({"type": "tags", "operator": "has_none", "value": ["vip"]}) == {"news", "plain"}


def test_a_language_matches_its_regional_variants_and_a_region_only_itself():
    shopper("ar", locale="ar")
    shopper("ar-sa", locale="ar-SA")
    shopper("ar-eg", locale="ar-EG")
    shopper("en", locale="en")
    shopper("arn", locale="arn")

    assert members({"type": "locale", "operator": "in", "value": ["ar"]}) == {"ar", "ar-sa", "ar-eg"}
    assert members({"type": "locale", "operator": "in", "value": ["ar-SA"]}) == {"ar-sa"}
    assert members({"type": "locale", "operator": "not_in", "value": ["ar"]}) == {"en", "arn"}


def test_timezone_country_and_city_conditions():
    shopper("riyadh", timezone="Asia/Riyadh", country="SA", city="Riyadh")
    shopper("jeddah", timezone="Asia/Riyadh", country="SA", city="Jeddah")
    shopper("london", timezone="Europe/London", country="GB", city="London")

    assert members({"type": "timezone", "operator": "in", "value": ["Asia/Riyadh"]}) == {"riyadh", "jeddah"}
    assert members({"type": "timezone", "operator": "not_in", "value": ["Asia/Riyadh"]}) == {"london"}
    assert members({"type": "location", "field": "country", "operator": "in", "value": ["gb"]}) == {"london"}
    assert members({"type": "location", "field": "city", "operator": "in", "value": ["riyadh", "LONDON"]}) == {
        "riyadh", "london"}
    assert members({"type": "location", "field": "city", "operator": "not_in", "value": ["Riyadh"]}) == {
        "jeddah", "london"}


def test_the_page_or_category_a_shopper_subscribed_on():
    shopper("shoes", subscribed_page_url="https://shop.example/c/shoes?utm=x", subscribed_category="Shoes")
    shopper("phones", subscribed_page_url="https://shop.example/c/phones", subscribed_category="electronics")
    shopper("never")

    assert members({"type": "subscription", "field": "page", "operator": "contains", "value": "/c/shoes"}) == {
        "shoes"}
    assert members({"type": "subscription", "field": "category", "operator": "equals", "value": "shoes"}) == {
        "shoes"}
    assert members({"type": "subscription", "field": "category", "operator": "not_exists"}) == {"never"}


# --- Reachability ----------------------------------------------------------------------------

def test_reachable_on_a_channel_needs_an_active_push_subscription_or_consent_and_a_contact():
    pushed = shopper("push")
    expired = shopper("expired-push")
    for subscriber, status in ((pushed, PushSubscriptionStatus.ACTIVE), (expired, PushSubscriptionStatus.EXPIRED)):
        PushSubscription.objects.create(subscriber=subscriber, endpoint=f"https://push.example/{subscriber.pk}",
                                        status=status, **push_keys())
    texted = shopper("sms", phone="+966501234567")
    services.grant_consent(subscriber=texted, channel=Channel.SMS, source=Source.API)
    revoked = shopper("revoked", phone="+966501234568")
    services.grant_consent(subscriber=revoked, channel=Channel.SMS, source=Source.API)
    services.revoke_consent(subscriber=revoked, channel=Channel.SMS, source=Source.API)
    no_address = shopper("no-email", email="gone@shop.example")
    services.grant_consent(subscriber=no_address, channel=Channel.EMAIL, source=Source.API)
    Subscriber.objects.filter(pk=no_address.pk).update(email="")  # the address was erased later
    mailed = shopper("email", email="a@shop.example")
    services.grant_consent(subscriber=mailed, channel=Channel.EMAIL, source=Source.API)

    assert members({"type": "reachable", "channel": "push"}) == {"push"}
    assert members({"type": "reachable", "channel": "sms"}) == {"sms"}
    assert members({"type": "reachable", "channel": "whatsapp"}) == set()
    assert members({"type": "reachable", "channel": "email"}) == {"email"}
    assert members({"type": "reachable", "channel": "sms", "operator": "is_not"}) == {
        "push", "expired-push", "revoked", "no-email", "email"}


# --- Events -----------------------------------------------------------------------------------

@pytest.fixture
def viewers():
    """Views of shoes in the last week: none, one, two, three; and one view seven days ago to the second."""
    people = {name: shopper(name) for name in ("zero", "one", "two", "three", "edge", "old")}
    for name, times in (("one", 1), ("two", 2), ("three", 3)):
        for i in range(times):
            event(people[name], "product_viewed", NOW - timedelta(days=1, minutes=i), category="shoes")
    event(people["edge"], "product_viewed", NOW - timedelta(days=7), category="shoes")
    event(people["old"], "product_viewed", NOW - timedelta(days=7, seconds=1), category="shoes")
    event(people["zero"], "product_viewed", NOW - timedelta(hours=1), category="bags")
    event(people["zero"], "cart_updated", NOW - timedelta(hours=1), category="shoes")
    return people


def views(operator, count=None, days=7, **extra):
    node = {"type": "event", "name": "product_viewed", "operator": operator, "within_days": days,
            "properties": [{"property": "category", "operator": "equals", "value": "shoes"}], **extra}
    if count is not None:
        node["count"] = count
    return node


def test_an_event_counts_within_the_last_n_days_including_the_first_second_of_the_window(viewers):
    assert members(views("at_least", 1)) == {"one", "two", "three", "edge"}
    assert members(views("at_least")) == {"one", "two", "three", "edge"}
    assert members(views("at_least", 2)) == {"two", "three"}
    assert members(views("at_least", 1, days=8)) == {"one", "two", "three", "edge", "old"}


def test_at_most_and_exactly_count_the_events_in_the_window(viewers):
    assert members(views("exactly", 2)) == {"two"}
    assert members(views("exactly", 1)) == {"one", "edge"}
    assert members(views("at_most", 1)) == {"zero", "one", "edge", "old"}
    assert members(views("at_most", 0)) == {"zero", "old"}
    assert members(views("exactly", 3)) == {"three"}


def test_did_not_perform_an_event_includes_shoppers_who_never_did_anything(viewers):
    assert members(views("did_not")) == {"zero", "old"}
    assert members({"type": "event", "name": "order_placed", "operator": "did_not"}) == set(viewers)


def test_an_event_category_matches_whatever_its_case_length_or_type():
    """The category filter reads the column the database keeps (lower-cased, cut at 200 characters) when that
    says the same as the JSON, and the JSON otherwise: long categories, numbers and missing ones included."""
    long_name = "shoes " * 40  # 240 characters: the stored copy is cut at 200
    people = {name: shopper(name) for name in ("upper", "long", "prefix", "number", "none")}
    event(people["upper"], "product_viewed", NOW - timedelta(hours=1), category="SHOES")
    event(people["long"], "product_viewed", NOW - timedelta(hours=1), category=long_name)
    event(people["prefix"], "product_viewed", NOW - timedelta(hours=1), category=long_name[:200] + "boots")
    event(people["number"], "product_viewed", NOW - timedelta(hours=1), category=42)
    event(people["none"], "product_viewed", NOW - timedelta(hours=1))

    def viewed(operator, value):
        return members({"type": "event", "name": "product_viewed", "within_days": 1,
                        "properties": [{"property": "category", "operator": operator, "value": value}]})

    assert viewed("equals", "Shoes") == {"upper"}
    assert viewed("in", ["boots", "shoes"]) == {"upper"}
    assert viewed("equals", long_name.upper()) == {"long"}
    assert viewed("equals", long_name[:200]) == set()
    assert viewed("equals", 42) == {"number"}
    assert viewed("equals", "42") == {"number"}
    # "is not" holds for an event without a category, as everywhere in segments.
    assert viewed("not_equals", "shoes") == {"long", "prefix", "number", "none"}
    assert viewed("not_in", ["shoes", long_name]) == {"prefix", "number", "none"}


def test_event_property_filters_read_numbers_and_text(viewers):
    event(viewers["zero"], "order_placed", NOW - timedelta(days=2), value=250, currency="SAR")
    event(viewers["one"], "order_placed", NOW - timedelta(days=2), value="80.50", currency="SAR")
    node = {"type": "event", "name": "order_placed", "properties": [
        {"property": "value", "operator": "gt", "value": 100}, {"property": "currency", "operator": "equals",
                                                                 "value": "sar"}]}
    assert members(node) == {"zero"}
    assert members({**node, "properties": [{"property": "value", "operator": "exists"}]}) == {"zero", "one"}


def test_a_segment_on_events_is_one_query_with_exists_subqueries_on_the_event_index(viewers):
    sql = str(Subscriber.objects.filter(compile_rules(group(views("exactly", 2)), NOW)).query)
    assert sql.count("SELECT") == 3 and sql.count("EXISTS") == 2
    assert "OFFSET 1" in sql and "OFFSET 2" in sql


# --- Commerce ---------------------------------------------------------------------------------

def test_commerce_figures_and_the_last_order_date():
    shopper("once", orders_count=1, total_spent=Decimal("80"), average_order_value=Decimal("80"),
            last_order_at=NOW - timedelta(days=3))
    shopper("often", orders_count=5, total_spent=Decimal("2500"), average_order_value=Decimal("500"),
            last_order_at=NOW - timedelta(days=90))
    shopper("never")

    assert members({"type": "commerce", "field": "orders_count", "operator": "gte", "value": 2}) == {"often"}
    assert members({"type": "commerce", "field": "orders_count", "operator": "equals", "value": 0}) == {"never"}
    assert members({"type": "commerce", "field": "orders_count", "operator": "not_equals", "value": 1}) == {
        "often", "never"}
    assert members({"type": "commerce", "field": "total_spent", "operator": "gt", "value": 1000}) == {"often"}
    assert members({"type": "commerce", "field": "average_order_value", "operator": "lt", "value": 100.5}) == {
        "once", "never"}
    assert members({"type": "commerce", "field": "last_order_at", "operator": "before", "value": "2026-09-01"}) == {
        "often"}
    assert members({"type": "commerce", "field": "last_order_at", "operator": "after",
                    "value": "2026-11-16T00:00:00Z"}) == {"once"}
    assert members({"type": "commerce", "field": "last_order_at", "operator": "not_exists"}) == {"never"}


def test_an_abandoned_cart_counts_within_the_last_n_hours_and_only_while_abandoned():
    recent, edge, stale, converted, active = (shopper(n) for n in ("recent", "edge", "stale", "converted", "active"))
    Cart.objects.create(subscriber=recent, status=CartStatus.ABANDONED, abandoned_at=NOW - timedelta(hours=2))
    Cart.objects.create(subscriber=edge, status=CartStatus.ABANDONED, abandoned_at=NOW - timedelta(hours=24))
    Cart.objects.create(subscriber=stale, status=CartStatus.ABANDONED,
                        abandoned_at=NOW - timedelta(hours=24, seconds=1))
    Cart.objects.create(subscriber=converted, status=CartStatus.CONVERTED, abandoned_at=NOW - timedelta(hours=3))
    Cart.objects.create(subscriber=active, status=CartStatus.ACTIVE)

    assert members({"type": "abandoned_cart", "within_hours": 24}) == {"recent", "edge"}
    assert members({"type": "abandoned_cart", "operator": "has_not", "within_hours": 24}) == {
        "stale", "converted", "active"}


def test_lifecycle_stage_in_and_not_in():
    shopper("new")
    shopper("loyal", lifecycle_stage="loyal")
    shopper("risk", lifecycle_stage="at_risk")

    assert members({"type": "lifecycle", "operator": "in", "value": ["loyal", "at_risk"]}) == {"loyal", "risk"}
    assert members({"type": "lifecycle", "operator": "not_in", "value": ["new"]}) == {"loyal", "risk"}


# --- Random buckets ---------------------------------------------------------------------------

def test_the_random_bucket_is_stable_per_shopper_matches_python_and_splits_evenly():
    Subscriber.objects.bulk_create([Subscriber(external_id=f"b-{i}") for i in range(2000)])
    ids = list(Subscriber.objects.values_list("pk", flat=True))

    def bucket(low, high, salt="spring-sale"):
        return set(Subscriber.objects.filter(compile_rules(group(
            {"type": "random_bucket", "salt": salt, "from": low, "to": high}), NOW)).values_list("pk", flat=True))

    first_half = bucket(0, 50)
    assert first_half == {pk for pk in ids if bucket_of(pk, "spring-sale") < 50}
    assert first_half == bucket(0, 50)  # stable
    assert first_half.isdisjoint(bucket(50, 100)) and first_half | bucket(50, 100) == set(ids)
    assert 900 <= len(first_half) <= 1100
    assert 300 <= len(bucket(0, 20)) <= 500
    assert bucket(0, 50, salt="other-test") != first_half


# --- Groups and other segments -------------------------------------------------------------------

def test_nested_and_or_groups():
    shopper("riyadh-vip", city="Riyadh", tags=["vip"], orders_count=1)
    shopper("riyadh-repeat", city="Riyadh", orders_count=3)
    shopper("riyadh-new", city="Riyadh")
    shopper("london-vip", city="London", tags=["vip"], orders_count=4)

    in_riyadh = {"type": "location", "field": "city", "operator": "in", "value": ["Riyadh"]}
    vip = {"type": "tags", "operator": "has_any", "value": ["vip"]}
    repeat = {"type": "commerce", "field": "orders_count", "operator": "gte", "value": 2}

    assert members(in_riyadh, group(vip, repeat, match="any")) == {"riyadh-vip", "riyadh-repeat"}
    # (in Riyadh and VIP) or (a repeat customer and VIP)
    assert members(group(in_riyadh, vip), group(repeat, group(vip, match="any")), match="any") == {
        "riyadh-vip", "london-vip"}
    assert members() == {"riyadh-vip", "riyadh-repeat", "riyadh-new", "london-vip"}  # no conditions: everyone


def test_a_segment_can_include_or_exclude_another_static_or_dynamic_segment():
    a, b, c = shopper("a", tags=["vip"]), shopper("b"), shopper("c", tags=["vip"])
    listed = Segment.objects.create(name="Listed", kind=SegmentKind.STATIC)
    SegmentMembership.objects.create(segment=listed, subscriber=a)
    SegmentMembership.objects.create(segment=listed, subscriber=b)
    vips = Segment.objects.create(name="VIPs", rules=group({"type": "tags", "operator": "has_any", "value": ["vip"]}))

    assert members({"type": "segment", "segment": listed.pk}) == {"a", "b"}
    assert members({"type": "segment", "segment": listed.pk, "operator": "not_in"}) == {"c"}
    assert members({"type": "segment", "segment": vips.pk}, {"type": "segment", "segment": listed.pk}) == {"a"}
    assert members({"type": "segment", "segment": vips.pk, "operator": "not_in"}) == {"b"}
    assert set(listed.subscribers()) == {a, b} and set(vips.subscribers()) == {a, c}


def test_a_segment_cannot_include_itself_even_through_another():
    first = Segment.objects.create(name="First")
    second = Segment.objects.create(name="Second", rules=group({"type": "segment", "segment": first.pk}))
    first.rules = group({"type": "segment", "segment": second.pk})

    with pytest.raises(ValidationError) as caught:
        first.full_clean()
    assert caught.value.message_dict["rules"] == [
        "rules.conditions[0].segment: segment 'Second' can't be used: rules.conditions[0].segment: a segment "
        "can't include itself, even through other segments."]
    assert problems(group({"type": "segment", "segment": 999999})) == [
        "rules.conditions[0].segment: there is no segment 999999."]


# --- Validation ----------------------------------------------------------------------------------

def test_validation_names_the_path_of_every_bad_node():
    rules = group(
        {"type": "attribute", "field": "email", "operator": "equals", "value": "a@b.example"},
        {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 2, "within_days": "7"},
        {"type": "attribute", "field": "created_at", "operator": "within_last_days", "value": 0},
        group({"type": "commerce", "field": "total_spent", "operator": "gt", "value": "lots"},
              {"type": "teleport"}, match="either"),
        {"type": "event", "name": "Order Placed", "properties": [{"property": "value", "operator": "gt"}]},
        {"type": "tags", "operator": "has_any", "value": ["vip", 3]},
        {"type": "custom_attribute", "key": "plan", "operator": "equals", "valeu": "gold"},
        {"type": "timezone", "operator": "in", "value": ["Mars/Olympus"]},
        {"type": "random_bucket", "from": 60, "to": 40},
    )
    assert problems(rules) == [
        "rules.conditions[1].within_days: expected a number of days (a whole number from 1 to 3650).",
        "rules.conditions[2].value: expected a number of days (a whole number from 1 to 3650).",
        "rules.conditions[3].match: expected one of all, any.",
        "rules.conditions[3].conditions[0].value: expected a number.",
        "rules.conditions[3].conditions[1].type: 'teleport' is not a condition type; use one of group, attribute, "
        "custom_attribute, tags, locale, timezone, location, subscription, reachable, event, commerce, "
        "abandoned_cart, lifecycle, random_bucket, segment, prediction.",
        "rules.conditions[4].name: expected an event name such as product_viewed.",
        "rules.conditions[4].properties[0].value: expected a number.",
        "rules.conditions[5].value[1]: expected a text",
        "rules.conditions[6].valeu: unknown key; this node reads key, operator, value.",
        "rules.conditions[6].value: expected a text, a number, true or false.",
        "rules.conditions[7].value[0]: 'Mars/Olympus' is not an IANA timezone name (for example Asia/Riyadh or "
        "Europe/London).",
        "rules.conditions[8].to: expected a bucket after \"from\" (the range is from ≤ bucket < to).",
    ]


def test_operators_that_do_not_fit_the_field_are_refused():
    assert problems(group({"type": "attribute", "field": "email", "operator": "gt", "value": 3})) == [
        "rules.conditions[0].operator: expected one of equals, not_equals, contains, not_contains, in, not_in, "
        "exists, not_exists."]
    assert problems(group({"type": "commerce", "field": "bitcoin", "operator": "gt", "value": 3})) == [
        "rules.conditions[0].field: expected one of orders_count, total_spent, average_order_value, "
        "first_order_at, last_order_at."]
    assert problems(group({"type": "event", "name": "x", "operator": "did_not", "count": 2})) == [
        "rules.conditions[0].count: \"did not\" takes no count."]
    assert problems(group({"type": "attribute", "field": "birthday", "operator": "before", "value": "01/02/1990"})) == [
        "rules.conditions[0].value: expected a date such as 2026-03-01 or a date and time such as "
        "2026-03-01T18:00:00+03:00."]


def test_predicted_scores_pick_high_value_shoppers_at_risk_and_leave_out_the_unscored():
    shopper("at-risk-big", churn_risk=Decimal("0.8100"), total_spent=Decimal("1500"), best_send_hour=20)
    shopper("at-risk-small", churn_risk=Decimal("0.9000"), total_spent=Decimal("80"), best_send_hour=9)
    shopper("edge", churn_risk=Decimal("0.7000"), total_spent=Decimal("2000"))
    shopper("unscored", total_spent=Decimal("5000"))

    high_value_at_risk = ({"type": "prediction", "field": "churn_risk", "operator": "gt", "value": 0.7},
                          {"type": "commerce", "field": "total_spent", "operator": "gte", "value": 1000})
    assert members(*high_value_at_risk) == {"at-risk-big"}
    assert members({"type": "prediction", "field": "churn_risk", "operator": "gte", "value": 0.7}) == {
        "at-risk-big", "at-risk-small", "edge"}
    assert members({"type": "prediction", "field": "churn_risk", "operator": "not_exists"}) == {"unscored"}
    assert members({"type": "prediction", "field": "best_send_hour", "operator": "not_equals", "value": 20}) == {
        "at-risk-small", "edge", "unscored"}


def test_predicted_scores_are_checked_against_their_ranges():
    assert problems(group({"type": "prediction", "field": "churn_risk", "operator": "gt", "value": 70},
                          {"type": "prediction", "field": "best_send_hour", "operator": "equals", "value": 24},
                          {"type": "prediction", "field": "lifetime_value", "operator": "gt", "value": 1},
                          {"type": "prediction", "field": "purchase_likelihood", "operator": "before",
                           "value": "2026-01-01"})) == [
        "rules.conditions[0].value: expected a number from 0 to 1.",
        "rules.conditions[1].value: expected a number from 0 to 23.",
        "rules.conditions[2].field: expected one of purchase_likelihood, churn_risk, best_send_hour.",
        "rules.conditions[3].operator: expected one of equals, not_equals, gt, gte, lt, lte, exists, not_exists."]


def test_the_shape_of_the_tree_is_checked_empty_groups_depth_and_size():
    assert problems([]) == ["rules: expected a group: an object with \"match\" and \"conditions\"."]
    assert problems(group(group())) == ["rules.conditions[0].conditions: a group needs at least one condition."]
    tag = {"type": "tags", "operator": "has_any", "value": ["vip"]}
    deep = tag
    for _level in range(7):
        deep = group(deep)
    assert problems(deep) == ["rules.conditions[0].conditions[0].conditions[0].conditions[0].conditions[0]"
                              ".conditions[0]: groups can be nested 5 levels deep at most."]
    assert problems(group(*[tag] * 101)) == ["rules.conditions[100]: a segment can have 100 conditions at most."]


def test_saving_a_segment_with_bad_rules_is_refused_on_the_rules_field():
    segment = Segment(name="Broken", rules=group({"type": "lifecycle", "operator": "in", "value": ["vip"]}))
    with pytest.raises(ValidationError) as caught:
        segment.full_clean()
    assert caught.value.message_dict == {
        "rules": ["rules.conditions[0].value[0]: expected one of new, active, at_risk, lapsed, loyal."]}


# --- Query count ---------------------------------------------------------------------------------

def test_count_and_sample_take_two_queries_whatever_the_rules(viewers, django_assert_num_queries):
    simple = group({"type": "attribute", "field": "first_name", "operator": "not_exists"})
    busy = group(views("exactly", 2), group(
        {"type": "reachable", "channel": "push"}, {"type": "abandoned_cart", "within_hours": 24},
        {"type": "custom_attribute", "key": "score", "operator": "gt", "value": 3},
        {"type": "random_bucket", "from": 0, "to": 100}, views("did_not"), match="any"),
        {"type": "lifecycle", "operator": "in", "value": ["new"]})
    for rules, expected in ((simple, 6), (busy, 1)):
        with django_assert_num_queries(2):
            count, sample = count_and_sample(rules, n=3, now=NOW)
        assert count == expected
        assert len(sample) == min(3, expected)
    with django_assert_num_queries(2):
        _count, sample = count_and_sample(group(views("exactly", 2)), now=NOW)
    assert [s.external_id for s in sample] == ["two"]


def test_every_segment_on_a_page_is_counted_in_one_query(viewers, django_assert_num_queries):
    listed = Segment.objects.create(name="Listed", kind=SegmentKind.STATIC)
    SegmentMembership.objects.create(segment=listed, subscriber=viewers["one"])
    segments = [listed, Segment.objects.create(name="Everyone"),
                Segment.objects.create(name="Twice", rules=group(views("at_least", 2)))]
    with django_assert_num_queries(1):
        counts = count_segments(segments, now=NOW)
    assert counts == {listed.pk: 1, segments[1].pk: 6, segments[2].pk: 2}


# --- Static segments -----------------------------------------------------------------------------

def csv_file(text, name="list.csv"):
    return SimpleUploadedFile(name, text.encode())


def test_a_static_list_adds_the_shoppers_it_names_and_reports_each_row_it_could_not_use():
    layla = shopper("c-1", email="Layla@Shop.example")
    omar = shopper("c-2", phone="+966501234567")
    sara = shopper("c-3")
    segment = Segment.objects.create(name="Imported VIPs", kind=SegmentKind.STATIC)
    SegmentMembership.objects.create(segment=segment, subscriber=sara)

    report = add_static_members(segment=segment, file=csv_file(
        "external_id,email,phone\n"
        "c-3,,\n"
        ",layla@shop.example,\n"
        ",,+966 50 123 4567\n"
        "c-404,,\n"
        ",not-an-email,\n"
        ",,12\n"
        ",,\n"
        ",nobody@shop.example,\n"))

    assert set(segment.subscribers()) == {layla, omar, sara}
    assert (report.rows, report.added, report.already) == (7, 2, 1)
    assert [(p["row"], p["field"]) for p in report.problems] == [
        (4, "external_id"), (5, "email"), (6, "phone"), (8, "email")]
    assert report.problems[0]["message"] == "No shopper has the external_id 'c-404'."
    assert "not a phone number" in report.problems[2]["message"]


def test_a_static_list_can_replace_the_members_and_needs_a_known_column():
    first, second = shopper("c-1"), shopper("c-2")
    segment = Segment.objects.create(name="List", kind=SegmentKind.STATIC)
    add_static_members(segment=segment, file=csv_file("external_id\nc-1\n"))
    add_static_members(segment=segment, file=csv_file("external_id\nc-2\n"), replace=True)
    assert list(segment.subscribers()) == [second]

    with pytest.raises(ImportFileError, match="external_id, email or phone column"):
        add_static_members(segment=segment, file=csv_file("customer\nc-1\n"))
    dynamic = Segment.objects.create(name="Rules")
    with pytest.raises(ValidationError):
        add_static_members(segment=dynamic, file=csv_file("external_id\nc-1\n"))
    assert first not in set(segment.subscribers())


# --- Admin ---------------------------------------------------------------------------------------

def test_the_admin_lists_segments_with_their_live_count(admin_client, viewers):
    Segment.objects.create(name="Saw shoes twice", rules=group(views("at_least", 2)))
    page = admin_client.get(reverse("admin:subscribers_segment_changelist"))
    assert page.status_code == 200
    row = next(r for r in page.content.decode().split("<tr") if "Saw shoes twice" in r)
    assert "<td class=\"field-live_count_column\">2</td>" in row


def test_the_admin_refuses_bad_rules_and_uploads_a_static_list(admin_client):
    shopper("c-1")
    url = reverse("admin:subscribers_segment_add")
    page = admin_client.post(url, {"name": "Broken", "kind": "dynamic", "description": "",
                                   "rules": '{"type": "group", "conditions": [{"type": "tags"}]}'})
    assert page.status_code == 200
    assert "rules.conditions[0].operator: expected one of has_any, has_all, has_none." in page.content.decode()
    assert not Segment.objects.filter(name="Broken").exists()

    page = admin_client.post(url, {
        "name": "Uploaded", "kind": "static", "description": "", "rules": '{"type": "group", "conditions": []}',
        "members_file": csv_file("external_id\nc-1\nc-2\n")}, follow=True)
    assert page.status_code == 200
    segment = Segment.objects.get(name="Uploaded")
    assert [s.external_id for s in segment.subscribers()] == ["c-1"]
    text = page.content.decode()
    assert "2 rows read: 1 shoppers added, 0 already in the segment." in text
    assert "Row 2 left out: No shopper has the external_id &#x27;c-2&#x27;." in text


# --- Starter segments ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_store(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        demo.load_demo_store(subscribers=300, seed=7)
        yield
        demo.flush_store()
        Segment.objects.all().delete()
        ApiKey.objects.all().delete()


def test_the_demo_store_comes_with_the_six_starter_segments_each_with_shoppers_in_it(demo_store):
    starters = {s.starter: s for s in Segment.objects.exclude(starter="")}
    assert set(starters) == {spec["starter"] for spec in demo.STARTER_SEGMENTS}
    counts = count_segments(starters.values())
    total = Subscriber.objects.count()
    for key, segment in starters.items():
        assert 0 < counts[segment.pk] < total, key
    assert demo.load_starter_segments() == 0  # loading again changes nothing


def test_the_abandoned_cart_starter_matches_the_carts_abandoned_in_the_last_day(demo_store):
    segment = Segment.objects.get(starter="abandoned-carts-24h")
    from django.utils import timezone
    expected = set(Cart.objects.filter(status=CartStatus.ABANDONED,
                                       abandoned_at__gte=timezone.now() - timedelta(hours=24))
                   .values_list("subscriber_id", flat=True))
    assert set(segment.subscribers().values_list("pk", flat=True)) == expected
