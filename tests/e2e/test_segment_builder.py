"""A marketer in Chromium builds a segment condition by condition and watches the live count follow."""
import pytest

from subscribers.models import Segment, Subscriber
from tests.e2e.helpers import log_in_as_marketer

pytestmark = pytest.mark.e2e


@pytest.fixture
def marketer_page(page, store):
    return log_in_as_marketer(page, "/app/segments/")


@pytest.fixture
def shoppers():
    for n, (locale, tags, city) in enumerate([("ar", ["vip"], "Riyadh"), ("ar-SA", [], "Jeddah"), ("ar", [], "Dammam"),
                                              ("en", ["vip"], "London"), ("en-GB", [], "Leeds")]):
        Subscriber.objects.create(external_id=f"c-{n}", first_name=f"Shopper {n}", email=f"s{n}@example.com",
                                  locale=locale, tags=tags, city=city)


def live_count_is(page, expected):
    page.wait_for_function(
        "n => document.querySelector('#live-count') && document.querySelector('#live-count').textContent === n",
        arg=str(expected))


def test_a_marketer_builds_a_segment_and_the_live_count_follows(marketer_page, shoppers):
    page = marketer_page
    page.click("text=New segment")
    page.wait_for_url("**/app/segments/new/?kind=dynamic")
    live_count_is(page, 5)  # no condition yet: every shopper

    page.click("button:has-text('Add a condition')")
    page.wait_for_selector("#f-rules-conditions-0-type")
    page.select_option("#f-rules-conditions-0-type", "locale")
    page.wait_for_selector("#f-rules-conditions-0-value[placeholder='ar, en-GB']")
    page.fill("#f-rules-conditions-0-value", "ar")
    page.press("#f-rules-conditions-0-value", "Tab")
    live_count_is(page, 3)
    assert "Shopper 0" in page.inner_text("#live") and "Shopper 3" not in page.inner_text("#live")

    page.click("#f-rules > .actions button:has-text('Add a condition')")
    page.wait_for_selector("#f-rules-conditions-1-type")
    page.select_option("#f-rules-conditions-1-type", "tags")
    page.wait_for_selector("#f-rules-conditions-1-value[placeholder='vip, shoes']")
    page.wait_for_selector("#live .problems")  # a tags condition without tags can't be counted yet
    assert "rules.conditions[1].value" in page.inner_text("#live")
    page.fill("#f-rules-conditions-1-value", "vip")
    page.press("#f-rules-conditions-1-value", "Enter")  # counts; doesn't save the half-built segment
    live_count_is(page, 1)

    page.select_option("#f-rules-match", "any")
    live_count_is(page, 4)
    assert page.url.endswith("/app/segments/new/?kind=dynamic")  # Enter did not post the form
    assert page.locator(".flash").count() == 0 and not Segment.objects.exists()

    page.fill("#id_name", "Arabic or VIP")
    page.click("button:has-text('Save segment')")
    page.wait_for_selector("#segment-count")
    assert page.inner_text("#segment-count") == "4"
    segment = Segment.objects.get()
    assert segment.rules == {"type": "group", "match": "any", "conditions": [
        {"type": "locale", "operator": "in", "value": ["ar"]},
        {"type": "tags", "operator": "has_any", "value": ["vip"]}]}


def test_the_segment_builder_mirrors_in_arabic(marketer_page, shoppers):
    page = marketer_page
    page.click("button[lang=ar]")
    page.wait_for_selector("html[dir=rtl]")
    page.goto("/app/segments/new/?kind=dynamic")
    live_count_is(page, 5)

    form = page.locator("#builder").bounding_box()
    live = page.locator(".live-panel").bounding_box()
    assert live["x"] + live["width"] <= form["x"]  # the live count sits on the left, after the rules
