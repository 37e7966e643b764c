"""A marketer in Chromium creates the abandoned-cart journey from its recipe, edits a wait, activates it,
and runs a test enrolment step by step until it reaches the exit."""
import pytest

from delivery.models import Message
from journeys.models import Enrolment, Journey
from subscribers import services as subscriber_services
from tests.e2e.test_campaign_builder import marketer_page  # noqa: F401 - fixture: a logged-in marketer
from tests.journeys.test_journey_engine import shopper

pytestmark = pytest.mark.e2e


@pytest.fixture
def journeys_page(marketer_page):
    """Layla, logged in (sandbox channels, no quiet hours or caps), on the journeys list."""
    marketer_page.goto("/app/journeys/")
    return marketer_page


def test_a_marketer_makes_the_abandoned_cart_journey_edits_a_wait_activates_it_and_tests_it(journeys_page):
    page = journeys_page
    fatima = shopper(7, push=True, sms=True)
    subscriber_services.record_event(subscriber=fatima, name="cart_updated", properties={
        "cart_id": "sc-7", "items": [{"product_id": "p1", "title": "Running shoes", "price": "249.00", "quantity": 1,
                                      "image": "https://shop.example/shoes.jpg"}], "value": "249.00", "currency": "SAR"})

    page.click("button[data-recipe=abandoned-cart]")
    page.wait_for_selector(".jr-diagram")
    journey = Journey.objects.get()
    steps = journey.current_version.steps["steps"]
    for key in steps:
        assert page.locator(f'.jr-step[data-step="{key}"]').count() == 1
    assert "Wait 15 min" in page.inner_text('.jr-step[data-step="wait-15m"]')

    page.click('.jr-step[data-step="wait-15m"] .jr-edit')
    page.fill("#id_minutes", "20")
    page.click("text=Save as a new version")
    page.wait_for_selector('.jr-step[data-step="wait-15m"]')
    assert "Wait 20 min" in page.inner_text('.jr-step[data-step="wait-15m"]')
    assert "Saved as version 2." in page.inner_text(".flash")

    page.click("button:has-text('Activate')")
    page.wait_for_selector("#journey-status:has-text('Active')")
    journey.refresh_from_db()
    assert journey.status == "active" and journey.current_version.number == 2

    page.fill("#id_who", fatima.external_id)
    page.click("text=Start a test run")
    page.wait_for_selector("#test-run-panel")
    assert page.inner_text("#test-step") == "wait-15m"
    seen = ["wait-15m"]
    for _click in range(len(steps)):
        if page.locator("#test-next").count() == 0:
            break
        before = page.locator(".jr-runs li").count()
        page.click("#test-next")
        page.wait_for_function(f"document.querySelectorAll('.jr-runs li').length > {before}")
        if page.locator("#test-step").count():
            seen.append(page.inner_text("#test-step"))
    assert page.get_attribute("#test-status", "data-status") == "completed"
    assert seen == ["wait-15m", "wait-1h", "wait-4h"]
    outcomes = page.eval_on_selector_all(".jr-runs li", "items => items.map(i => [i.dataset.step, i.dataset.outcome])")
    assert ["push-cart-saved", "sent"] in outcomes and ["end", "exit"] in outcomes
    enrolment = Enrolment.objects.get(journey=journey)
    assert enrolment.is_test and enrolment.status == "completed"
    push = Message.objects.get(subscriber=fatima, source_type="journey_step", source_id=f"{journey.pk}:push-cart-saved")
    assert push.status == "sent" and "Running shoes" in push.content["body"]
    assert page.locator(f'.jr-message[data-message="{push.code}"]').count() == 1
    sent = Message.objects.filter(subscriber=fatima, source_type="journey_step")
    assert sorted(sent.values_list("channel", flat=True)) == ["push", "push", "sms"]  # saved, reminder, trust
    assert set(sent.values_list("status", flat=True)) == {"sent"}


def test_the_journey_diagram_mirrors_in_arabic(journeys_page):
    from journeys import engine
    from tests.journeys.test_journey_engine import template
    from tests.journeys.test_journey_pages import BRANCHING

    page = journeys_page
    template("cart")
    made = Journey.objects.create(name="Clicked or not", trigger_event="cart_abandoned")
    engine.publish(made, BRANCHING)
    page.goto(f"/app/journeys/{made.pk}/")
    page.wait_for_selector(".jr-paths")
    yes = page.locator('.jr-step[data-step="thanks"]').bounding_box()
    no = page.locator('.jr-step[data-step="sms"]').bounding_box()
    assert yes["x"] < no["x"] and abs(yes["y"] - no["y"]) < 1  # side by side, the first path on the left

    page.click("button[lang=ar]")
    page.wait_for_selector("html[dir=rtl]")
    page.wait_for_selector(".jr-paths")

    yes = page.locator('.jr-step[data-step="thanks"]').bounding_box()
    no = page.locator('.jr-step[data-step="sms"]').bounding_box()
    assert yes["x"] > no["x"] and abs(yes["y"] - no["y"]) < 1  # mirrored: the first path on the right
    end = page.locator('.jr-step[data-step="end"]').bounding_box()
    assert end["y"] > max(yes["y"] + yes["height"], no["y"] + no["height"])  # the paths meet below
