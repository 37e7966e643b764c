"""The marketer's segment pages: the list with live counts, the rule builder with its live count and sample,
problems shown at their path, saving, static lists, the preview, duplicate and delete, permissions, RTL."""
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from campaigns.models import Campaign
from subscribers import demo, services
from subscribers.models import Segment, SegmentKind, SegmentMembership, Subscriber

pytestmark = pytest.mark.django_db


def group(*conditions, match="all"):
    return {"type": "group", "match": match, "conditions": list(conditions)}


def posted(node, path="rules", data=None):
    """What the builder's inputs post for a rule tree (lists typed with commas, lifecycle stages ticked)."""
    data = {} if data is None else data
    data[f"{path}.type"] = node["type"]
    if node["type"] == "group":
        data[f"{path}.match"] = node.get("match", "all")
        for index, child in enumerate(node["conditions"]):
            posted(child, f"{path}.conditions[{index}]", data)
        return data
    for key, value in node.items():
        if key == "properties":
            for index, item in enumerate(value):
                for item_key, item_value in item.items():
                    data[f"{path}.properties[{index}].{item_key}"] = str(item_value)
        elif key != "type":
            if isinstance(value, list):
                value = value if node["type"] == "lifecycle" else ", ".join(value)
            data[f"{path}.{key}"] = value if isinstance(value, list) else str(value)
    return data


def user_with(client, *codenames, name="layla"):
    user = User.objects.create_user(name, password="a-long-password-1")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="subscribers", codename__in=codenames))
    client.force_login(user)
    return client


@pytest.fixture
def marketer(client):
    return user_with(client, "view_segment", "add_segment", "change_segment", "delete_segment")


@pytest.fixture
def viewer(client):
    return user_with(client, "view_segment", name="omar")


@pytest.fixture
def shoppers():
    made = {
        "layla": Subscriber.objects.create(external_id="c-1", first_name="Layla", email="layla@example.com",
                                           locale="ar", city="Riyadh", country="SA", tags=["vip"], orders_count=3,
                                           last_seen_at=datetime(2026, 11, 1, tzinfo=UTC)),
        "omar": Subscriber.objects.create(external_id="c-2", first_name="Omar", phone="+966501234567", locale="ar",
                                          city="Jeddah", country="SA", tags=["shoes"], orders_count=0),
        "emma": Subscriber.objects.create(external_id="c-3", first_name="Emma", email="emma@example.co.uk",
                                          locale="en-GB", city="London", country="GB", orders_count=5),
    }
    services.record_event(subscriber=made["layla"], name="product_viewed", properties={"category": "shoes"})
    services.record_event(subscriber=made["emma"], name="product_viewed", properties={"category": "bags"})
    return made


def count_of(response):
    found = re.search(r'id="live-count">(\d+)<', response.content.decode())
    assert found, response.content.decode()
    return int(found.group(1))


# --- Who may do what --------------------------------------------------------------------

def test_an_anonymous_visitor_is_sent_to_log_in(client):
    for url in (reverse("segments:list"), reverse("segments:new")):
        response = client.get(url)
        assert response.status_code == 302
        assert "/login/" in response["Location"]
    assert client.post(reverse("segments:count"), posted(group()))["Location"].startswith("/admin/login/")


def test_a_user_without_the_view_permission_is_refused(client):
    user_with(client, "view_subscriber")

    assert client.get(reverse("segments:list")).status_code == 403
    assert client.post(reverse("segments:count"), posted(group())).status_code == 403


def test_a_viewer_sees_the_builder_but_can_neither_save_nor_create_nor_delete(viewer, shoppers):
    segment = Segment.objects.create(name="VIPs", rules=group({"type": "tags", "operator": "has_any", "value": ["vip"]}))

    page = viewer.get(reverse("segments:edit", args=[segment.pk]))
    assert page.status_code == 200
    assert "Save segment" not in page.content.decode()
    assert "New segment" not in viewer.get(reverse("segments:list")).content.decode()

    changed = {"name": "Everyone", **posted(group())}
    assert viewer.post(reverse("segments:edit", args=[segment.pk]), changed).status_code == 403
    assert viewer.post(reverse("segments:new"), {"kind": "dynamic", **changed}).status_code == 403
    assert viewer.post(reverse("segments:delete", args=[segment.pk])).status_code == 403
    assert viewer.post(reverse("segments:duplicate", args=[segment.pk])).status_code == 403
    segment.refresh_from_db()
    assert segment.name == "VIPs" and Segment.objects.count() == 1
    # the live count needs only the view permission: it saves nothing
    assert count_of(viewer.post(reverse("segments:count"), posted(segment.rules))) == 1


def test_the_nav_marks_the_segments_page_as_current(viewer):
    html = viewer.get(reverse("segments:list")).content.decode()
    assert f'<a href="{reverse("segments:list")}" aria-current="page">Segments</a>' in html


# --- The list ------------------------------------------------------------------------------

def test_the_list_shows_each_segment_with_its_live_count_and_the_campaigns_using_it(viewer, shoppers):
    vips = Segment.objects.create(name="VIPs", description="Our best",
                                  rules=group({"type": "tags", "operator": "has_any", "value": ["vip"]}))
    saudis = Segment.objects.create(name="Saudis", rules=group(
        {"type": "location", "field": "country", "operator": "in", "value": ["SA"]}))
    listed = Segment.objects.create(name="Press list", kind=SegmentKind.STATIC)
    SegmentMembership.objects.create(segment=listed, subscriber=shoppers["emma"])
    Campaign.objects.create(name="White Friday").include_segments.set([vips])

    html = viewer.get(reverse("segments:list")).content.decode()

    rows = dict(re.findall(r'<tr data-segment="(\d+)">(.*?)</tr>', html, re.S))
    assert re.search(r'class="segment-count">1<', rows[str(vips.pk)])
    assert "Our best" in rows[str(vips.pk)] and "White Friday" in rows[str(vips.pk)]
    assert re.search(r'class="segment-count">2<', rows[str(saudis.pk)])
    assert re.search(r'class="segment-count">1<', rows[str(listed.pk)])
    assert "White Friday" not in rows[str(saudis.pk)]


def test_the_list_counts_every_segment_in_one_query(viewer, shoppers, django_assert_max_num_queries):
    for n in range(3):
        Segment.objects.create(name=f"Tagged {n}", rules=group({"type": "tags", "operator": "has_any", "value": ["vip"]}))
    with CaptureQueriesContext(connection) as three:
        viewer.get(reverse("segments:list"))
    for n in range(3, 8):
        Segment.objects.create(name=f"Tagged {n}", rules=group(
            {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 1}))

    with CaptureQueriesContext(connection) as eight:
        viewer.get(reverse("segments:list"))

    assert len(eight.captured_queries) == len(three.captured_queries)


# --- The live count -------------------------------------------------------------------------

def test_the_live_count_and_sample_follow_the_rules_being_edited(viewer, shoppers):
    shoes = group({"type": "event", "name": "product_viewed", "operator": "at_least", "count": "1",
                   "properties": [{"property": "category", "operator": "equals", "value": "shoes"}]})
    response = viewer.post(reverse("segments:count"), posted(shoes))
    assert count_of(response) == 1
    html = response.content.decode()
    assert "Layla" in html and "Emma" not in html
    assert "l•••@example.com" in html and "layla@example.com" not in html  # contacts are masked
    assert "Riyadh" in html

    either = group({"type": "tags", "operator": "has_any", "value": ["vip", "shoes"]},
                   {"type": "commerce", "field": "orders_count", "operator": "gte", "value": "5"}, match="any")
    html = viewer.post(reverse("segments:count"), posted(either)).content.decode()
    assert re.search(r'id="live-count">3<', html)
    assert "+966•••••••67" in html  # Omar has only a phone


def test_the_live_count_makes_the_same_number_of_queries_whatever_the_rules(viewer, shoppers,
                                                                           django_assert_num_queries):
    simple = posted(group({"type": "locale", "operator": "in", "value": ["ar"]}))
    with CaptureQueriesContext(connection) as baseline:
        viewer.post(reverse("segments:count"), simple)
    complex_rules = posted(group(
        {"type": "attribute", "field": "first_name", "operator": "contains", "value": "a"},
        {"type": "group", "match": "any", "conditions": [
            {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 1, "within_days": 30,
             "properties": [{"property": "category", "operator": "in", "value": "shoes, bags"}]},
            {"type": "abandoned_cart", "operator": "has", "within_hours": 24},
            {"type": "reachable", "channel": "push", "operator": "is"},
            {"type": "commerce", "field": "total_spent", "operator": "gt", "value": 100}]},
        {"type": "random_bucket", "salt": "x", "from": 0, "to": 100},
        {"type": "lifecycle", "operator": "not_in", "value": ["lapsed"]}))

    with django_assert_num_queries(len(baseline.captured_queries)):
        response = viewer.post(reverse("segments:count"), complex_rules)
    assert count_of(response) == 2  # Layla and Emma: an "a" in the name and a product viewed


def test_bad_rules_are_listed_with_their_path_instead_of_a_count(viewer, shoppers):
    rules = posted(group({"type": "event", "name": "viewed a product!", "operator": "at_least", "count": "two"},
                         {"type": "location", "field": "country", "operator": "in", "value": "Saudi"}))

    html = viewer.post(reverse("segments:count"), rules).content.decode()

    assert 'id="live-count"' not in html
    assert "Fix these 3 problems" in html
    assert '<code dir="ltr">rules.conditions[0].name</code> expected an event name' in html
    assert '<code dir="ltr">rules.conditions[0].count</code> expected a number of times' in html
    assert '<code dir="ltr">rules.conditions[1].value[0]</code> expected a two-letter country code' in html


# --- The tree -------------------------------------------------------------------------------

def test_each_problem_is_shown_next_to_the_input_it_is_about(viewer):
    rules = posted(group({"type": "commerce", "field": "total_spent", "operator": "gt", "value": "lots"}))

    html = viewer.post(reverse("segments:tree"), rules).content.decode()

    field = re.search(r'<span class="rule-field invalid">.*?</span>\s*$', html, re.S | re.M).group(0)
    assert 'name="rules.conditions[0].value" value="lots"' in field
    assert 'aria-invalid="true"' in field
    assert "expected a number." in field


def test_add_and_remove_buttons_change_the_tree(viewer):
    rules = posted(group({"type": "tags", "operator": "has_any", "value": ["vip"]}))

    html = viewer.post(reverse("segments:tree"), {**rules, "action": "add-group:rules"}).content.decode()
    assert 'name="rules.conditions[1].type" value="group"' in html
    assert 'name="rules.conditions[1].conditions[0].type"' in html  # a new group starts with a condition
    assert 'value="vip"' in html  # the first condition is kept

    html = viewer.post(reverse("segments:tree"), {**rules, "action": "add-condition:rules"}).content.decode()
    assert 'name="rules.conditions[1].type"' in html

    two = posted(group({"type": "tags", "operator": "has_any", "value": ["vip"]},
                       {"type": "locale", "operator": "in", "value": ["ar"]}))
    html = viewer.post(reverse("segments:tree"), {**two, "action": "remove:rules.conditions[0]"}).content.decode()
    assert 'name="rules.conditions[1].type"' not in html
    assert 'name="rules.conditions[0].value" value="ar"' in html
    assert 'value="vip"' not in html


def test_changing_a_conditions_type_shows_that_types_own_fields(viewer):
    rules = posted(group({"type": "tags", "operator": "has_any", "value": ["vip"]}))
    rules["rules.conditions[0].type"] = "event"

    html = viewer.post(reverse("segments:tree"), rules).content.decode()

    for key in ("name", "operator", "count", "within_days"):
        assert f'name="rules.conditions[0].{key}"' in html
    assert '<option value="at_least" selected>' in html
    html = viewer.post(reverse("segments:tree"), {**rules, "action": "add-property:rules.conditions[0]"}).content
    assert b'name="rules.conditions[0].properties[0].property"' in html


def test_a_date_field_offers_date_operators_once_it_is_picked(viewer):
    rules = posted(group({"type": "attribute", "field": "first_name", "operator": "contains", "value": "a"}))
    rules["rules.conditions[0].field"] = "last_seen_at"

    html = viewer.post(reverse("segments:tree"), rules).content.decode()

    assert '<option value="before" selected>' in html
    assert '<option value="within_last_days">' in html
    assert '<option value="contains"' not in html


def test_what_the_marketer_typed_is_escaped_in_the_tree(viewer):
    rules = posted(group({"type": "attribute", "field": "first_name", "operator": "equals",
                          "value": '"><script>alert(1)</script>'}))

    html = viewer.post(reverse("segments:tree"), rules).content.decode()

    assert "<script>alert(1)" not in html
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- Saving ----------------------------------------------------------------------------------

def test_a_marketer_saves_a_new_segment_with_the_rules_typed_in(marketer, shoppers):
    rules = group(
        {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 2, "within_days": 30,
         "properties": [{"property": "category", "operator": "equals", "value": "shoes"}]},
        {"type": "group", "match": "any", "conditions": [
            {"type": "commerce", "field": "total_spent", "operator": "gte", "value": 99.5},
            {"type": "tags", "operator": "has_any", "value": ["vip", "gold"]},
            {"type": "lifecycle", "operator": "in", "value": ["active", "loyal"]}]})

    response = marketer.post(reverse("segments:new"), {"kind": "dynamic", "name": "Shoe lovers",
                                                       "description": "Looked at shoes twice", **posted(rules)})

    segment = Segment.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("segments:detail", args=[segment.pk])
    assert segment.name == "Shoe lovers" and segment.kind == SegmentKind.DYNAMIC
    assert segment.rules == rules
    assert segment.created_by.username == "layla"


def test_a_segment_with_bad_rules_is_not_saved_and_the_problem_shows_at_its_path(marketer, shoppers):
    segment = Segment.objects.create(name="VIPs", rules=group({"type": "tags", "operator": "has_any", "value": ["vip"]}))
    bad = posted(group({"type": "timezone", "operator": "in", "value": ["Mars/Olympus"]}))

    response = marketer.post(reverse("segments:edit", args=[segment.pk]), {"name": "VIPs", **bad})

    assert response.status_code == 200
    html = response.content.decode()
    assert "The segment was not saved" in html
    assert "&#x27;Mars/Olympus&#x27; is not an IANA timezone name" in html
    assert 'aria-describedby="f-rules-conditions-0-value-errors"' in html
    segment.refresh_from_db()
    assert segment.rules["conditions"][0]["type"] == "tags"


def test_a_segment_cannot_include_itself(marketer):
    segment = Segment.objects.create(name="Loop")
    rules = posted(group({"type": "segment", "operator": "in", "segment": segment.pk}))

    html = marketer.post(reverse("segments:edit", args=[segment.pk]), {"name": "Loop", **rules}).content.decode()

    assert "a segment can&#x27;t include itself" in html
    assert Segment.objects.get().rules["conditions"] == []


def test_a_segment_needs_a_name(marketer):
    html = marketer.post(reverse("segments:new"), {"kind": "dynamic", "name": "", **posted(group())}).content.decode()

    assert "This field is required." in html
    assert not Segment.objects.exists()


def test_the_builder_opens_with_the_saved_rules(viewer):
    other = Segment.objects.create(name="Buyers")
    segment = Segment.objects.create(name="Arabic buyers", rules=group(
        {"type": "locale", "operator": "in", "value": ["ar", "ar-SA"]},
        {"type": "segment", "operator": "in", "segment": other.pk}))

    html = viewer.get(reverse("segments:edit", args=[segment.pk])).content.decode()

    assert 'name="rules.conditions[0].value" value="ar, ar-SA"' in html
    assert f'<option value="{other.pk}" selected>Buyers</option>' in html
    assert f'<option value="{segment.pk}"' not in html  # it can't pick itself


# --- Static lists ----------------------------------------------------------------------------

def test_a_marketer_uploads_a_list_and_sees_each_row_left_out(marketer, shoppers):
    csv = ("email,phone\nlayla@example.com,\n,+966501234567\nnobody@example.com,\nnot-an-email,\n"
           ",<b>05</b>\n").encode()

    response = marketer.post(reverse("segments:new"), {
        "kind": "static", "name": "Press list", "description": "",
        "members_file": SimpleUploadedFile("press.csv", csv, content_type="text/csv")})

    segment = Segment.objects.get()
    assert segment.kind == SegmentKind.STATIC
    assert set(segment.memberships.values_list("subscriber__first_name", flat=True)) == {"Layla", "Omar"}
    html = response.content.decode()
    problems = re.findall(r"<tr><td>(\d+)</td><td>(\w+)</td>", html)
    assert problems == [("3", "email"), ("4", "email"), ("5", "phone")]
    assert "No shopper has the email &#x27;nobody@example.com&#x27;" in html
    assert "&lt;b&gt;05&lt;/b&gt;" in html and "<b>05</b>" not in html


def test_a_list_file_that_cannot_be_read_is_reported_and_nothing_is_created(marketer):
    response = marketer.post(reverse("segments:new"), {
        "kind": "static", "name": "Press list",
        "members_file": SimpleUploadedFile("press.csv", b"name,city\nLayla,Riyadh\n", content_type="text/csv")})

    assert "The list needs a header row with an external_id, email or phone column" in response.content.decode()
    assert not Segment.objects.exists()


# --- Preview, duplicate, delete ----------------------------------------------------------------

def test_the_preview_shows_the_count_and_a_sample_of_the_shoppers(viewer, shoppers):
    segment = Segment.objects.create(name="Arabic", rules=group({"type": "locale", "operator": "in", "value": ["ar"]}))

    html = viewer.get(reverse("segments:detail", args=[segment.pk])).content.decode()

    assert re.search(r'id="segment-count">2<', html)
    assert "Layla" in html and "Omar" in html and "Emma" not in html
    assert "Nothing uses this segment." in html


def test_a_segment_a_campaign_uses_is_not_deleted(marketer):
    segment = Segment.objects.create(name="VIPs")
    Campaign.objects.create(name="White Friday").exclude_segments.set([segment])

    response = marketer.post(reverse("segments:delete", args=[segment.pk]), follow=True)

    assert Segment.objects.filter(pk=segment.pk).exists()
    assert "“VIPs” was not deleted: it is used by White Friday." in response.content.decode()


def test_a_segment_another_segment_names_is_not_deleted(marketer):
    segment = Segment.objects.create(name="Buyers")
    Segment.objects.create(name="Not buyers", rules=group({"type": "segment", "operator": "not_in",
                                                           "segment": segment.pk}))

    response = marketer.post(reverse("segments:delete", args=[segment.pk]), follow=True)

    assert Segment.objects.filter(pk=segment.pk).exists()
    assert "it is used by Not buyers" in response.content.decode()


def test_an_unused_segment_is_deleted(marketer):
    segment = Segment.objects.create(name="Old")

    response = marketer.post(reverse("segments:delete", args=[segment.pk]), follow=True)

    assert not Segment.objects.exists()
    assert "Segment “Old” deleted." in response.content.decode()


def test_duplicating_copies_the_rules_or_the_list(marketer, shoppers):
    dynamic = Segment.objects.create(name="VIPs", rules=group({"type": "tags", "operator": "has_any", "value": ["vip"]}))
    listed = Segment.objects.create(name="Press", kind=SegmentKind.STATIC)
    SegmentMembership.objects.create(segment=listed, subscriber=shoppers["omar"])

    response = marketer.post(reverse("segments:duplicate", args=[dynamic.pk]))
    marketer.post(reverse("segments:duplicate", args=[listed.pk]))

    copy = Segment.objects.get(name="Copy of VIPs")
    assert response["Location"] == reverse("segments:edit", args=[copy.pk])
    assert copy.rules == dynamic.rules
    press_copy = Segment.objects.get(name="Copy of Press")
    assert list(press_copy.memberships.values_list("subscriber__first_name", flat=True)) == ["Omar"]


# --- Escaping and right-to-left ---------------------------------------------------------------

def test_names_and_descriptions_are_escaped_on_every_page(viewer):
    segment = Segment.objects.create(name="<script>alert(1)</script>", description="<img src=x onerror=alert(2)>")

    for url in (reverse("segments:list"), reverse("segments:detail", args=[segment.pk]),
                reverse("segments:edit", args=[segment.pk])):
        html = viewer.get(url).content.decode()
        assert "<script>alert(1)" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


def test_the_builder_is_right_to_left_in_arabic(viewer):
    viewer.cookies["django_language"] = "ar"

    with translation.override("en"):  # the request switches the thread to Arabic; switch it back after
        html = viewer.get(reverse("segments:new")).content.decode()

    assert '<html lang="ar" dir="rtl">' in html


# --- Opening and saving again keeps the rules ----------------------------------------------------

class FormValues(HTMLParser):
    """What a browser would post for the builder form: inputs, ticked boxes and selected options."""

    def __init__(self):
        super().__init__()
        self.values, self.select = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs.get("type") not in ("checkbox", "file"):
            self.values.append((attrs["name"], attrs.get("value", "")))
        elif tag == "input" and attrs.get("type") == "checkbox" and "checked" in attrs:
            self.values.append((attrs["name"], attrs["value"]))
        elif tag == "select":
            self.select = attrs.get("name")
        elif tag == "option" and self.select and "selected" in attrs:
            self.values.append((self.select, attrs["value"]))

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None


def resubmitted(client, segment):
    parser = FormValues()
    parser.feed(client.get(reverse("segments:edit", args=[segment.pk])).content.decode())
    data = {}
    for name, value in parser.values:
        data.setdefault(name, []).append(value)
    data.pop("csrfmiddlewaretoken", None)
    response = client.post(reverse("segments:edit", args=[segment.pk]), data)
    assert response.status_code == 302, response.content.decode()
    segment.refresh_from_db()
    return segment.rules


def test_opening_and_saving_each_starter_segment_keeps_its_rules(marketer):
    demo.load_starter_segments()
    assert Segment.objects.count() == len(demo.STARTER_SEGMENTS)

    for segment in Segment.objects.all():
        original = segment.rules
        assert resubmitted(marketer, segment) == original, segment.starter


def test_opening_and_saving_keeps_every_kind_of_condition(marketer):
    other = Segment.objects.create(name="Buyers")
    rules = group(
        {"type": "attribute", "field": "birthday", "operator": "before", "value": "2000-01-01"},
        {"type": "attribute", "field": "email", "operator": "not_exists"},
        {"type": "custom_attribute", "key": "plan", "operator": "in", "value": ["gold", "silver"]},
        {"type": "custom_attribute", "key": "age", "operator": "gte", "value": 18},
        {"type": "custom_attribute", "key": "newsletter", "operator": "equals", "value": True},
        {"type": "tags", "operator": "has_none", "value": ["blocked"]},
        {"type": "locale", "operator": "not_in", "value": ["fr"]},
        {"type": "timezone", "operator": "in", "value": ["Asia/Riyadh", "Europe/London"]},
        {"type": "location", "field": "city", "operator": "in", "value": ["Riyadh", "Jeddah"]},
        {"type": "subscription", "field": "page", "operator": "contains", "value": "/shoes"},
        {"type": "reachable", "channel": "whatsapp", "operator": "is_not"},
        {"type": "group", "match": "any", "conditions": [
            {"type": "event", "name": "order_placed", "operator": "did_not", "within_days": 90},
            {"type": "event", "name": "product_viewed", "operator": "exactly", "count": 3,
             "properties": [{"property": "price", "operator": "lt", "value": 49.5},
                            {"property": "brand", "operator": "exists"}]}]},
        {"type": "commerce", "field": "last_order_at", "operator": "after", "value": "2026-03-01T18:00:00+03:00"},
        {"type": "abandoned_cart", "operator": "has_not", "within_hours": 48},
        {"type": "lifecycle", "operator": "not_in", "value": ["new", "lapsed"]},
        {"type": "random_bucket", "salt": "holdout", "from": 0, "to": 10},
        {"type": "segment", "operator": "not_in", "segment": other.pk},
        {"type": "prediction", "field": "churn_risk", "operator": "gt", "value": 0.7},
        {"type": "prediction", "field": "best_send_hour", "operator": "exists"},
        match="all")
    segment = Segment.objects.create(name="Everything", rules=rules)

    assert resubmitted(marketer, segment) == rules


def test_a_tree_nested_too_deep_is_refused_with_its_path_not_an_error_page(viewer):
    path, data = "rules", {"rules.type": "group"}
    for _level in range(300):
        path += ".conditions[0]"
        data[f"{path}.type"] = "group"
    data[f"{path}.conditions[0].type"] = "tags"

    for endpoint in ("segments:count", "segments:tree"):
        response = viewer.post(reverse(endpoint), urlencode(data), content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200
        assert "groups can be nested 5 levels deep at most." in response.content.decode()
