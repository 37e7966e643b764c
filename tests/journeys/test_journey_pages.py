"""The journey builder pages: the list, the flow drawn with live figures, step forms that publish new
versions, activation, the settings, the test run, permissions, escaping and right-to-left."""
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from delivery.models import Message, MessageTemplate
from journeys import builder, engine
from journeys.models import Enrolment, Journey, JourneyVersion, StepRun
from tests.journeys.test_journey_engine import ABANDONED_CART, on_commit, sandbox, shopper, template  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client):
    user = User.objects.create_user("layla", password="a-long-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="journeys"))
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("omar", password="a-long-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_journey"))
    client.force_login(user)
    return client


def journey(steps=ABANDONED_CART, *, status="active", name="Abandoned cart"):
    made = Journey.objects.create(name=name, trigger_event="cart_abandoned", goal_event="order_placed", status=status)
    engine.publish(made, steps)
    return made


def text(response):
    return response.content.decode()


def flashes(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- Permissions ---------------------------------------------------------------------------------

def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    made = Journey.objects.create(name="Welcome")

    for url in ("/app/journeys/", f"/app/journeys/{made.pk}/", f"/app/journeys/{made.pk}/figures/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_staff_member_without_the_journey_permission_is_refused(client):
    user = User.objects.create_user("sami", password="a-long-password-1", is_staff=True)
    client.force_login(user)

    assert client.get("/app/journeys/").status_code == 403


def test_a_viewer_reads_the_journey_but_cannot_edit_activate_or_test_it(viewer):
    template("cart")
    made = journey(status="draft")
    layla = shopper()

    page = viewer.get(f"/app/journeys/{made.pk}/")
    assert page.status_code == 200 and "Activate" not in text(page) and "Start a test run" not in text(page)
    assert viewer.post(f"/app/journeys/{made.pk}/activate/").status_code == 403
    assert viewer.post(f"/app/journeys/{made.pk}/steps/wait-15m/", {"minutes": 5, "next": "push"}).status_code == 403
    assert viewer.post(f"/app/journeys/{made.pk}/test/", {"who": layla.external_id}).status_code == 403
    assert viewer.post(f"/app/journeys/{made.pk}/settings/", {"name": "x"}).status_code == 403
    assert viewer.post("/app/journeys/new/", {"name": "Mine"}).status_code == 403
    made.refresh_from_db()
    assert made.status == "draft" and made.current_version.number == 1
    assert not Enrolment.objects.exists()


def test_marketers_get_the_journey_permissions_from_their_group():
    from campaigns.roles import MARKETERS, VIEWERS, ensure_roles
    from django.contrib.auth.models import Group

    ensure_roles()

    marketers = set(Group.objects.get(name=MARKETERS).permissions.values_list("codename", flat=True))
    viewers = set(Group.objects.get(name=VIEWERS).permissions.values_list("codename", flat=True))
    assert {"view_journey", "change_journey", "add_journey"} <= marketers
    assert "view_journey" in viewers and "change_journey" not in viewers


# --- The list ------------------------------------------------------------------------------------

def test_the_list_shows_each_journey_with_its_entered_active_and_converted_counts(
        marketer, django_assert_num_queries):
    template("cart")
    made = journey()
    quiet = Journey.objects.create(name="Win-back", trigger_kind="inactivity", trigger={"days": 30})
    people = [shopper(n) for n in range(4)]
    enrolments = [engine.enroll(made, person) for person in people]
    Enrolment.objects.filter(pk=enrolments[0].pk).update(status="converted")
    Enrolment.objects.filter(pk=enrolments[1].pk).update(status="exited")
    engine.enroll(made, shopper(9), test=True)  # a test run is not counted

    with django_assert_num_queries(1):
        rows = {j.name: (j.entered, j.active, j.converted) for j in builder.journeys_with_counts()}
    assert rows == {"Abandoned cart": (4, 2, 1), "Win-back": (0, 0, 0)}

    page = text(marketer.get("/app/journeys/"))
    row = re.search(rf'<tr data-journey="{made.pk}">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r'<td class="jr-num">(\d+)</td>', row) == ["4", "2", "1"]
    assert "cart_abandoned" in row and "Active" in row
    assert f'data-journey="{quiet.pk}"' in page and "Inactivity for N days" in page
    assert 'aria-current="page">Journeys' in page


def test_a_blank_journey_starts_with_a_valid_first_version(marketer):
    response = marketer.post("/app/journeys/new/", {"name": "Welcome series"})

    made = Journey.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/app/journeys/{made.pk}/"
    assert made.name == "Welcome series" and made.status == "draft" and made.current_version.number == 1
    engine.validate_steps(made.current_version.steps)


def test_a_recipe_that_does_not_exist_creates_nothing(marketer):
    response = marketer.post("/app/journeys/new/", {"recipe": "no-such-recipe"}, follow=True)

    assert not Journey.objects.exists()
    assert "there is no recipe no-such-recipe." in flashes(response)


def test_a_recipe_makes_a_draft_journey_with_its_steps_drawn(marketer):
    listed = text(marketer.get("/app/journeys/"))
    assert 'data-recipe="abandoned-cart"' in listed and 'data-recipe="welcome"' in listed

    response = marketer.post("/app/journeys/new/", {"recipe": "abandoned-cart", "discount_code": "SAVE10"})

    made = Journey.objects.get()
    assert response["Location"] == f"/app/journeys/{made.pk}/"
    assert made.status == "draft" and made.recipe == "abandoned-cart"
    page = text(marketer.get(response["Location"]))
    for key in made.current_version.steps["steps"]:
        assert f'data-step="{key}"' in page
    assert "save10" in page


def test_a_recipe_with_a_bad_discount_code_says_why_and_creates_nothing(marketer):
    response = marketer.post("/app/journeys/new/", {"recipe": "abandoned-cart", "discount_code": "10% off!"},
                             follow=True)

    assert not Journey.objects.exists()
    assert any("a code is 1–30 letters" in m for m in flashes(response))


# --- The diagram and the figures --------------------------------------------------------------------

BRANCHING = {"start": "wait-15m", "steps": {
    "wait-15m": {"type": "wait", "minutes": 15, "next": "push"},
    "push": {"type": "send", "template": "cart", "channels": ["push", "sms"], "next": "clicked?"},
    "clicked?": {"type": "branch", "condition": {"clicked_last": True}, "yes": "thanks", "no": "sms"},
    "thanks": {"type": "update", "add_tags": ["engaged"], "next": "end"},
    "sms": {"type": "send", "template": "cart", "channels": ["sms"], "unless_clicked": True, "next": "end"},
    "end": {"type": "exit"},
}}


def test_the_diagram_draws_every_step_with_its_summary_and_the_branches_side_by_side(marketer):
    template("cart")
    made = journey(BRANCHING)

    page = text(marketer.get(f"/app/journeys/{made.pk}/"))

    for key in BRANCHING["steps"]:
        assert f'data-step="{key}"' in page
    assert "Wait 15 min" in page
    assert "Send “cart” by Web push → SMS" in page
    assert "Clicked the last message?" in page
    paths = re.search(r'<div class="jr-paths">(.*)', page, re.S).group(1)
    assert paths.index(">yes<") < paths.index('data-step="thanks"') < paths.index(">no<") \
        < paths.index('data-step="sms"')
    # Both paths meet again at the exit, drawn once below them.
    assert page.count('data-step="end"') == 1
    assert page.index('data-step="sms"') < page.index('data-step="end"')


def test_a_loop_is_drawn_as_a_go_to_box_rather_than_forever():
    graph = {"start": "a", "steps": {
        "a": {"type": "wait", "minutes": 5, "next": "b"},
        "b": {"type": "branch", "condition": {"clicked_last": True}, "yes": "end", "no": "a"},
        "end": {"type": "exit"}}}

    drawn = builder.layout(graph)

    [first, branch, end] = drawn["items"]
    assert (first["key"], branch["key"], end["key"]) == ("a", "b", "end")
    yes, no = branch["paths"]
    assert yes["items"] == []  # straight on to the exit below
    assert no["items"] == [{"kind": "goto", "key": "a"}]


def test_nested_paths_meet_where_they_join_and_every_step_is_drawn_once():
    drawn = builder.layout(EVERY_TYPE)

    def keys(items):
        found = []
        for item in items:
            if item["kind"] == "step":
                found.append(item["key"])
                for path in item.get("paths", []):
                    found += keys(path["items"])
        return found

    assert sorted(keys(drawn["items"])) == sorted(EVERY_TYPE["steps"]) and drawn["orphans"] == []
    top = [(item["kind"], item["key"]) for item in drawn["items"]]
    # Both ways out of the wait for the event meet at tag; the exit was drawn on a path already.
    assert top == [("step", "wait"), ("step", "morning"), ("step", "ordered?"), ("step", "tag"), ("goto", "end")]
    came, timed_out = drawn["items"][2]["paths"]
    assert came["items"] == [] and came["target"] == "tag"
    assert [i["key"] for i in timed_out["items"]] == ["visited?", "send"]  # the branch's paths meet at send
    yes, no = timed_out["items"][0]["paths"]
    split = yes["items"][0]
    assert split["key"] == "ab" and split["paths"][0] == {"label": "30%", "target": "send", "items": []}
    assert [i["key"] for i in split["paths"][1]["items"]] == ["end"]
    assert no["items"][0]["key"] == "vip?"


def test_each_step_shows_entered_waiting_sent_clicked_converted_and_exited(
        marketer, django_assert_max_num_queries, on_commit):
    template("cart")
    made = journey(BRANCHING)
    people = [shopper(n, push=True) for n in range(3)]
    now = timezone.now()
    for person in people:
        enrolment = engine.enroll(made, person, now=now)
        on_commit(engine.advance, enrolment.pk, now)
    later = now + timezone.timedelta(minutes=16)
    first, second, third = Enrolment.objects.filter(journey=made).order_by("pk")
    on_commit(engine.advance, first.pk, later)
    on_commit(engine.advance, second.pk, later)
    clicked = Message.objects.get(subscriber=people[0], source_type="journey_step")
    Message.objects.filter(pk=clicked.pk).update(clicked_at=later)
    Enrolment.objects.filter(pk=third.pk).update(status="converted")

    with django_assert_max_num_queries(4):
        figures = builder.step_figures(made)
    assert figures["wait-15m"] == {"entered": 2, "waiting": 0, "sent": 0, "clicked": 0, "converted": 1, "exited": 0}
    assert figures["push"]["sent"] == 2 and figures["push"]["clicked"] == 1
    assert figures["end"]["exited"] == 2  # both went through the branch to the end

    partial = text(marketer.get(f"/app/journeys/{made.pk}/figures/"))
    assert 'hx-trigger="every 4s"' in partial
    push = re.search(r'data-step="push".*?</dl>', partial, re.S).group(0)
    assert re.search(r'data-figure="sent"><dt>sent</dt><dd>2</dd>', push)
    assert re.search(r'data-figure="clicked"><dt>clicked</dt><dd>1</dd>', push)
    assert re.search(r'data-total="converted"><div class="value">1</div>', partial)


# --- Editing -------------------------------------------------------------------------------------

def test_saving_a_step_publishes_a_new_version_and_keeps_the_old_one(marketer):
    template("cart")
    made = journey()

    response = marketer.post(f"/app/journeys/{made.pk}/steps/wait-15m/", {"minutes": "20", "next": "push"})

    made.refresh_from_db()
    assert response.status_code == 302
    assert made.current_version.number == 2
    assert made.current_version.steps["steps"]["wait-15m"] == {"type": "wait", "minutes": 20, "next": "push"}
    assert JourneyVersion.objects.get(journey=made, number=1).steps["steps"]["wait-15m"]["minutes"] == 15
    assert "Wait 20 min" in text(marketer.get(f"/app/journeys/{made.pk}/"))


def test_a_send_step_keeps_its_channel_order_and_unless_clicked(marketer):
    template("cart")
    template("reminder")
    made = journey()

    marketer.post(f"/app/journeys/{made.pk}/steps/sms/", {
        "template": "reminder", "channel_1": "whatsapp", "channel_2": "sms", "channel_3": "email",
        "channel_4": "", "unless_clicked": "on", "next": "end"})

    made.refresh_from_db()
    assert made.current_version.steps["steps"]["sms"] == {
        "type": "send", "template": "reminder", "channels": ["whatsapp", "sms", "email"], "unless_clicked": True,
        "next": "end"}


def test_an_invalid_step_shows_the_engines_error_with_its_path_and_publishes_nothing(marketer):
    template("cart")
    made = journey()
    MessageTemplate.objects.filter(slug="cart").delete()
    template("other")

    response = marketer.post(f"/app/journeys/{made.pk}/steps/sms/", {
        "template": "other", "channel_1": "sms", "next": "end"})

    assert response.status_code == 200
    assert "steps.push.template: no template has this slug." in flashes(response)
    made.refresh_from_db()
    assert made.current_version.number == 1


def test_a_wait_without_a_duration_is_refused_by_the_form(marketer):
    template("cart")
    made = journey()

    response = marketer.post(f"/app/journeys/{made.pk}/steps/wait-15m/", {"minutes": "0", "next": "push"})

    assert response.status_code == 200 and "A wait needs minutes, hours or days." in text(response)
    made.refresh_from_db()
    assert made.current_version.number == 1


def test_the_steps_as_json_show_every_problem_with_its_path(marketer):
    template("cart")
    made = journey()
    broken = {"start": "a", "steps": {"a": {"type": "wait", "next": "nowhere"}, "b": {"type": "teleport"}}}
    import json

    response = marketer.post(f"/app/journeys/{made.pk}/steps/", {"steps": json.dumps(broken)})

    problems = flashes(response)
    assert "steps.a: a wait needs minutes, hours or days." in problems
    assert "steps.a.next: there is no step nowhere." in problems
    assert any(p.startswith("steps.b.type: expected one of: wait,") for p in problems)
    made.refresh_from_db()
    assert made.current_version.number == 1


def test_adding_a_step_after_another_links_it_in_and_opens_its_form(marketer):
    template("cart")
    made = journey()

    response = marketer.post(f"/app/journeys/{made.pk}/steps/add/", {"kind": "update", "after": "push"})

    made.refresh_from_db()
    steps = made.current_version.steps["steps"]
    assert response["Location"] == f"/app/journeys/{made.pk}/steps/update-1/"
    assert steps["push"]["next"] == "update-1" and steps["update-1"]["next"] == "wait-45m"


def test_a_wait_added_after_the_last_send_leads_to_an_exit(marketer):
    template("cart")
    made = journey({"start": "push", "steps": {"push": {"type": "send", "template": "cart", "channels": ["push"]}}})

    marketer.post(f"/app/journeys/{made.pk}/steps/add/", {"kind": "wait", "after": "push"})

    made.refresh_from_db()
    steps = made.current_version.steps["steps"]
    assert steps["push"]["next"] == "wait-1" and steps["wait-1"]["next"] == "end"
    assert steps["end"] == {"type": "exit"}


def test_removing_a_step_joins_what_led_to_it_with_where_it_led(marketer):
    template("cart")
    made = journey()

    marketer.post(f"/app/journeys/{made.pk}/steps/wait-45m/remove/")

    made.refresh_from_db()
    steps = made.current_version.steps["steps"]
    assert "wait-45m" not in steps and steps["push"]["next"] == "sms"


def test_the_settings_form_saves_the_trigger_goal_and_time_limit(marketer):
    made = Journey.objects.create(name="Browse")

    response = marketer.post(f"/app/journeys/{made.pk}/settings/", {
        "name": "Browse abandonment", "description": "", "trigger_kind": "event", "trigger_event": "product_viewed",
        "trigger": '{"properties": [{"property": "category", "operator": "equals", "value": "shoes"}]}',
        "entry_rule": "once_per_period", "entry_period_days": "7", "daily_cap": "100", "goal_event": "cart_updated",
        "time_limit_days": "3"})

    assert response.status_code == 302
    made.refresh_from_db()
    assert (made.name, made.trigger_event, made.entry_rule, made.daily_cap, made.goal_event, made.time_limit_days) \
        == ("Browse abandonment", "product_viewed", "once_per_period", 100, "cart_updated", 3)
    assert made.trigger["properties"][0]["value"] == "shoes"
    assert "product_viewed · category equals shoes" in text(marketer.get(f"/app/journeys/{made.pk}/"))


def test_an_event_trigger_without_an_event_is_refused(marketer):
    made = Journey.objects.create(name="Browse", trigger_event="product_viewed")

    response = marketer.post(f"/app/journeys/{made.pk}/settings/", {
        "name": "Browse", "trigger_kind": "event", "trigger_event": "", "trigger": "", "entry_rule": "every_time",
        "entry_period_days": "30", "daily_cap": "0", "time_limit_days": "30"})

    assert response.status_code == 200 and "Name the event that starts the journey" in text(response)
    made.refresh_from_db()
    assert made.trigger_event == "product_viewed"


# --- Status --------------------------------------------------------------------------------------

def test_activating_a_valid_journey_makes_it_active_and_pause_and_archive_follow(marketer):
    template("cart")
    made = journey(status="draft")

    marketer.post(f"/app/journeys/{made.pk}/activate/")
    made.refresh_from_db()
    assert made.status == "active"
    marketer.post(f"/app/journeys/{made.pk}/pause/")
    made.refresh_from_db()
    assert made.status == "paused"
    marketer.post(f"/app/journeys/{made.pk}/archive/")
    made.refresh_from_db()
    assert made.status == "archived"


def test_a_blank_journey_is_not_activated_before_its_trigger_is_chosen(marketer):
    marketer.post("/app/journeys/new/", {"name": "Welcome series"})
    made = Journey.objects.get()

    response = marketer.post(f"/app/journeys/{made.pk}/activate/", follow=True)

    made.refresh_from_db()
    assert made.status == "draft"
    assert "trigger: choose what starts the journey (Trigger, entry and goal)." in flashes(response)


def test_activation_is_refused_when_the_current_steps_are_no_longer_valid(marketer):
    template("cart")
    made = journey(status="draft")
    MessageTemplate.objects.filter(slug="cart").delete()

    response = marketer.post(f"/app/journeys/{made.pk}/activate/", follow=True)

    made.refresh_from_db()
    assert made.status == "draft"
    problems = flashes(response)
    assert "Not activated: the steps are not valid." in problems
    assert "steps.push.template: no template has this slug." in problems


# --- The test run --------------------------------------------------------------------------------

def test_a_test_run_enrols_the_shopper_and_moves_one_step_at_a_time_to_the_exit(marketer, on_commit):
    template("cart")
    made = journey(status="draft")
    layla = shopper(push=True, sms=True)

    started = on_commit(marketer.post, f"/app/journeys/{made.pk}/test/", {"who": layla.phone})
    enrolment = Enrolment.objects.get()
    assert started["Location"] == f"/app/journeys/{made.pk}/test/{enrolment.pk}/"
    assert enrolment.is_test and enrolment.step == "wait-15m" and enrolment.is_waiting

    page = text(marketer.get(started["Location"]))
    assert '<code id="test-step" dir="ltr">wait-15m</code>' in page and "Wait 15 min" in page

    on_commit(marketer.post, f"/app/journeys/{made.pk}/test/{enrolment.pk}/next/")
    enrolment.refresh_from_db()
    assert enrolment.step == "wait-45m" and enrolment.is_waiting
    [push] = Message.objects.filter(subscriber=layla, source_type="journey_step")
    assert push.channel == "push" and push.status == "sent"
    page = text(marketer.get(started["Location"]))
    assert f'data-message="{push.code}"' in page and "Running shoes" not in page  # no cart: the fallback copy
    assert [r.step for r in StepRun.objects.filter(enrolment=enrolment)] == ["wait-15m", "push"]

    partial = on_commit(marketer.post, f"/app/journeys/{made.pk}/test/{enrolment.pk}/next/", HTTP_HX_REQUEST="true")
    enrolment.refresh_from_db()
    assert enrolment.status == "completed"
    body = text(partial)
    assert 'id="test-run-panel"' in body and "<html" not in body
    assert 'data-step="sms" data-outcome="sent"' in body and 'data-step="end" data-outcome="exit"' in body
    assert "Next step" not in body
    assert Message.objects.filter(subscriber=layla, source_type="journey_step", channel="whatsapp").exists() is False
    assert Message.objects.get(subscriber=layla, source_type="journey_step", channel="sms").status == "sent"


def test_a_test_run_is_refused_for_an_unknown_shopper_or_one_already_in_it(marketer):
    template("cart")
    made = journey()
    layla = shopper()
    engine.enroll(made, layla)

    unknown = marketer.post(f"/app/journeys/{made.pk}/test/", {"who": "nobody@example.com"}, follow=True)
    busy = marketer.post(f"/app/journeys/{made.pk}/test/", {"who": layla.external_id}, follow=True)

    assert "No shopper has this external id, email or phone." in flashes(unknown)
    assert "This shopper is in the journey already: stop that run first." in flashes(busy)
    assert not Enrolment.objects.filter(is_test=True).exists()


def test_a_journey_made_in_the_admin_without_steps_can_be_built_from_its_page(marketer):
    from subscribers.models import Segment

    fans = Segment.objects.create(name="Shoe fans", kind="static")
    made = Journey.objects.create(name="From the admin", trigger_kind="segment_entered", trigger={"segment": fans.pk})
    layla = shopper()

    page = text(marketer.get(f"/app/journeys/{made.pk}/"))
    assert "No steps yet." in page and "enters the segment Shoe fans" in page
    tested = marketer.post(f"/app/journeys/{made.pk}/test/", {"who": layla.external_id}, follow=True)
    assert "The journey has no steps yet: add one first." in flashes(tested)
    marketer.post(f"/app/journeys/{made.pk}/steps/add/", {"kind": "wait", "after": ""})

    made.refresh_from_db()
    assert made.current_version.steps == {"start": "wait-1", "steps": {
        "wait-1": {"type": "wait", "minutes": 15, "next": "end"}, "end": {"type": "exit"}}}


def test_stopping_a_test_run_lets_the_shopper_be_tested_again(marketer, on_commit):
    template("cart")
    made = journey()
    layla = shopper()
    first = builder.start_test(made, layla)

    marketer.post(f"/app/journeys/{made.pk}/test/{first.pk}/stop/")
    again = marketer.post(f"/app/journeys/{made.pk}/test/", {"who": layla.external_id})

    first.refresh_from_db()
    assert first.status == "exited" and first.exit_reason == "test stopped"
    assert again.status_code == 302 and Enrolment.objects.filter(is_test=True, status="active").count() == 1


# --- Escaping and right-to-left --------------------------------------------------------------------

def test_names_keys_and_summaries_are_escaped(marketer):
    template("cart")
    made = journey(name="<script>alert(1)</script>")
    evil = {"start": "<b>x</b>", "steps": {
        "<b>x</b>": {"type": "wait_for_event", "event": "<img src=x onerror=alert(2)>", "timeout_minutes": 5,
                     "yes": "end", "no": "end"},
        "end": {"type": "exit"}}}
    engine.publish(made, evil)

    for url in ("/app/journeys/", f"/app/journeys/{made.pk}/"):
        page = text(marketer.get(url))
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    page = text(marketer.get(f"/app/journeys/{made.pk}/"))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<b>x</b>" not in page


def test_the_journey_pages_are_right_to_left_in_arabic(marketer):
    template("cart")
    made = journey()
    marketer.cookies["django_language"] = "ar"

    for url in ("/app/journeys/", f"/app/journeys/{made.pk}/", f"/app/journeys/{made.pk}/steps/push/"):
        page = text(marketer.get(url))
        assert '<html lang="ar" dir="rtl">' in page


EVERY_TYPE = {"start": "wait", "steps": {
    "wait": {"type": "wait", "hours": 1, "minutes": 30, "next": "morning"},
    "morning": {"type": "wait_until", "time": "10:00", "weekdays": [0, 2, 4], "next": "ordered?"},
    "ordered?": {"type": "wait_for_event", "event": "order_placed", "timeout_minutes": 120, "yes": "tag",
                 "no": "visited?"},
    "visited?": {"type": "branch", "condition": {"event": "product_viewed", "within_minutes": 60}, "yes": "ab",
                 "no": "vip?"},
    "vip?": {"type": "branch", "condition": {"rules": {"type": "group", "match": "all", "conditions": [
        {"type": "tags", "operator": "has_any", "value": ["vip"]}]}}, "yes": "send", "no": "end"},
    "ab": {"type": "split", "paths": [{"percent": 30, "next": "send"}, {"percent": 70, "next": "end"}]},
    "send": {"type": "send", "template": "cart", "channels": ["push", "whatsapp", "sms"], "unless_clicked": True,
             "next": "tag"},
    "tag": {"type": "update", "attributes": {"vip": True}, "add_tags": ["engaged"], "remove_tags": ["cold"],
            "next": "end"},
    "end": {"type": "exit"},
}}


def form_data(form):
    """What the browser would post for the form as it is shown."""
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        if value is True:
            data[name] = "on"
        elif isinstance(value, (list, tuple)):
            data[name] = [str(v) for v in value]
        elif isinstance(value, dict):
            import json
            data[name] = json.dumps(value)
        else:
            data[name] = str(value)
    return data


def test_every_step_type_has_a_form_that_saves_it_back_unchanged(marketer):
    from journeys.forms import step_form

    template("cart")
    made = journey(EVERY_TYPE)

    for key, step in EVERY_TYPE["steps"].items():
        url = reverse("journeys:step", args=[made.pk, key])
        page = marketer.get(url)
        assert page.status_code == 200
        form = page.context["form"]
        assert form.__class__ is step_form(step, EVERY_TYPE).__class__
        saved = marketer.post(url, form_data(form))
        assert saved.status_code == 302, (key, flashes(saved), form.errors)
        made.refresh_from_db()
        assert made.current_version.steps["steps"][key] == step, key
    assert made.current_version.number == 1 + len(EVERY_TYPE["steps"])
