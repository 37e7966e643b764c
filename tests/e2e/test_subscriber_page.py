"""A marketer in Chromium reads a shopper's 360° page in English, loads more of the timeline, switches to Arabic
on the same page and sees it laid out right to left."""
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import Message, MessageStatus, MessageTemplate
from subscribers import services
from subscribers.models import Channel, Event, Source
from tests.e2e.helpers import log_in_as_marketer
from tests.factories import make_subscriber

pytestmark = pytest.mark.e2e

READER = [("subscribers", "view_subscriber"), ("delivery", "view_message"), ("journeys", "view_enrolment")]
EVENTS = 30


@pytest.fixture
def shopper(store):
    now = timezone.now()
    layla = make_subscriber("cust-42", first_name="Layla", last_name="Haddad", email="layla@example.com",
                            phone="+966500000042", locale="ar", timezone="Asia/Riyadh", city="Riyadh")
    services.grant_consent(subscriber=layla, channel=Channel.SMS, source=Source.API, at=now - timedelta(days=3))
    services.update_cart(subscriber_id=layla.pk, cart_id="cart-7", at=now - timedelta(days=2),
                         items=[{"product_id": "p1", "title": "Red sandals", "price": "1234.50", "quantity": 2}])
    for n in range(EVENTS):
        services.record_event(subscriber=layla, name="product_viewed", properties={"product_id": f"p{n}"},
                              occurred_at=now - timedelta(hours=n + 1))
    Message.objects.create(
        idempotency_key=f"e2e:{layla.pk}", code="e2e000001", subscriber=layla, channel="sms",
        template=MessageTemplate.objects.create(name="Cart reminder", slug="cart-reminder"), source_type="api",
        to=layla.phone, status=MessageStatus.DELIVERED, queued_at=now - timedelta(minutes=90),
        sent_at=now - timedelta(minutes=90), delivered_at=now - timedelta(minutes=89),
        clicked_at=now - timedelta(minutes=80))
    return layla


def timeline_rows(page):
    return page.locator(".s360-timeline > li.s360-entry")


def test_the_360_page_reads_in_english_and_loads_the_rest_of_the_timeline(page, shopper):
    url = f"/app/subscribers/{shopper.pk}/"
    log_in_as_marketer(page, url, permissions=READER)

    assert page.locator("html").get_attribute("dir") == "ltr"
    assert "Layla Haddad" in page.locator("h1").inner_text()
    assert page.locator("text=l•••@example.com").count() == 1  # a reader sees contact details masked
    assert "Red sandals" in page.locator(".s360-carts").inner_text()
    message = page.locator(".s360-timeline > li[data-kind=message]")
    assert "Cart reminder" in message.inner_text() and message.locator(".s360-clicked").count() == 1
    assert timeline_rows(page).count() == 25

    page.click("text=Load more")
    page.wait_for_function("n => document.querySelectorAll('.s360-timeline > li.s360-entry').length === n",
                           arg=Event.objects.filter(subscriber=shopper).count() + 1)  # every event and the message
    assert page.locator("text=Load more").count() == 0
    facts = page.locator(".s360-facts dt").first.bounding_box(), page.locator(".s360-facts dd").first.bounding_box()
    assert facts[0]["x"] < facts[1]["x"]  # the label on the left, its value to its right


def test_the_language_switcher_keeps_the_360_page_and_mirrors_it_in_arabic(page, shopper):
    url = f"/app/subscribers/{shopper.pk}/"
    log_in_as_marketer(page, url, permissions=READER)

    page.click("button[lang=ar]")
    page.wait_for_selector("html[dir=rtl]")

    assert page.url.endswith(url)
    assert page.locator("html").get_attribute("lang") == "ar"
    label, value = page.locator(".s360-facts dt").first.bounding_box(), page.locator(".s360-facts dd").first.bounding_box()
    assert label["x"] > value["x"]  # right to left: the label on the right
    entry = page.locator(".s360-timeline > li.s360-entry").first
    border = entry.evaluate("e => [getComputedStyle(e).borderRightWidth, getComputedStyle(e).borderLeftWidth]")
    assert border == ["3px", "0px"]  # the timeline's rule runs down the right edge
    assert "2.469,00" in page.locator(".s360-carts").inner_text()  # two sandals, Arabic separators
    assert page.locator("text=Red sandals").count() == 1

    page.click("button[lang=en]")
    page.wait_for_selector("html[dir=ltr]")
    assert page.url.endswith(url)
