"""A marketer in Chromium builds a campaign, watches the live count, reviews, sends, and sees the progress bar."""
import pytest

from campaigns.models import Campaign
from delivery.channels import reset_backends
from delivery.models import Message
from subscribers.models import Segment, SegmentMembership
from tests.campaigns.test_campaign_engine import shopper, template
from tests.e2e.helpers import log_in_as_marketer

pytestmark = pytest.mark.e2e

CHANNELS = ("push", "sms", "whatsapp", "email", "inapp")


@pytest.fixture
def marketer_page(page, store, settings):
    settings.DELIVERY_BACKENDS = {channel: "delivery.channels.sandbox.SandboxBackend" for channel in CHANNELS}
    settings.QUIET_HOURS = {channel: "off" for channel in CHANNELS}
    settings.FREQUENCY_CAPS = {channel: {"day": 0, "week": 0} for channel in (*CHANNELS, "all")}
    reset_backends()
    yield log_in_as_marketer(page, "/app/campaigns/")
    reset_backends()


def test_a_marketer_builds_and_sends_a_campaign_and_watches_it_go_out(marketer_page):
    page = marketer_page
    fans = [shopper(n, sms=True) for n in range(3)]
    segment = Segment.objects.create(name="Shoe fans", kind="static")
    SegmentMembership.objects.bulk_create([SegmentMembership(segment=segment, subscriber=s) for s in fans])
    template("white-friday", channels=("sms",), title="White Friday: 20% off shoes")

    page.fill("#new-name", "White Friday")
    page.click("text=New campaign")
    page.wait_for_url("**/edit/")
    page.get_by_label("Shoe fans").first.check()
    page.wait_for_selector("#audience-count .count")
    assert page.inner_text("#audience-count .count") == "3"

    page.select_option("#id_channel_0", "sms")
    page.select_option("#id_variants-0-template", label="white-friday")
    page.click("text=Save and review")
    page.wait_for_selector(".preview")
    assert "White Friday: 20% off shoes!" in page.inner_text("#review")

    page.click("button:has-text('Send now')")
    page.wait_for_url("**/app/campaigns/*/")
    page.wait_for_selector("li[data-status=sent] strong")
    page.wait_for_function("document.querySelector('li[data-status=sent] strong').textContent === '3'")
    campaign = Campaign.objects.get()
    assert Message.objects.filter(source_type="campaign", source_id=f"{campaign.pk}:A", status="sent").count() == 3


def test_the_campaign_pages_mirror_in_arabic(marketer_page):
    page = marketer_page

    page.click("button[lang=ar]")
    page.wait_for_selector("html[dir=rtl]")

    assert page.get_attribute("html", "lang") == "ar"
    header = page.locator(".app-header").bounding_box()
    brand = page.locator(".brand").bounding_box()
    assert brand["x"] + brand["width"] > header["x"] + header["width"] / 2  # the brand sits on the right


def test_a_push_campaign_reaches_100_percent_and_every_browser_decrypts_its_message(
        marketer_page, settings, web_push_service):
    import json

    from subscribers import services as subscriber_services
    from subscribers.management.commands.generate_vapid_keys import generate_vapid_keypair

    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = generate_vapid_keypair()
    settings.PUSH_ALLOWED_ENDPOINTS = [web_push_service.origin]
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS, "push": "delivery.channels.webpush.WebPushBackend"}
    reset_backends()
    page = marketer_page
    browsers = []
    fans = []
    for n in range(4):
        fan = shopper(100 + n)
        subscribed = web_push_service.subscribe(settings.VAPID_PUBLIC_KEY)
        subscriber_services.register_push_subscription(subscriber=fan, endpoint=subscribed["endpoint"],
                                                       **subscribed["keys"])
        browsers.append(subscribed["clientHash"])
        fans.append(fan)
    segment = Segment.objects.create(name="Browsers", kind="static")
    SegmentMembership.objects.bulk_create([SegmentMembership(segment=segment, subscriber=s) for s in fans])
    template("flash-sale", channels=("push",), title="Flash sale")

    page.fill("#new-name", "Flash sale")
    page.click("text=New campaign")
    page.wait_for_url("**/edit/")
    page.get_by_label("Browsers").first.check()
    page.select_option("#id_channel_0", "push")
    page.select_option("#id_variants-0-template", label="flash-sale")
    page.click("text=Save and review")
    page.click("button:has-text('Send now')")
    page.wait_for_url("**/app/campaigns/*/")
    page.wait_for_function(
        "document.querySelector('[role=progressbar]').getAttribute('aria-valuenow') === '100'")

    campaign = Campaign.objects.get()
    codes = set(Message.objects.filter(source_type="campaign", source_id=f"{campaign.pk}:A", status="sent")
                .values_list("code", flat=True))
    assert len(codes) == 4
    received = [json.loads(body) for client_hash in browsers for body in web_push_service.messages(client_hash)]
    assert {payload["code"] for payload in received} == codes
    assert {payload["title"] for payload in received} == {"Flash sale"}


def test_a_marketer_sends_a_test_to_their_own_browser(marketer_page, context, store, settings, web_push_service):
    import json

    from tests.e2e.test_storefront_sdk import PUSH_MANAGER_ON_EMULATOR

    settings.PUSH_ALLOWED_ENDPOINTS = [web_push_service.origin]
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS, "push": "delivery.channels.webpush.WebPushBackend"}
    reset_backends()
    page = marketer_page
    page.expose_function("__pushServiceSubscribe", web_push_service.subscribe)
    page.add_init_script(PUSH_MANAGER_ON_EMULATOR)
    context.grant_permissions(["notifications"], origin=store["url"])
    campaign = Campaign.objects.create(name="Eid", channels=["sms"])
    from campaigns.models import Variant
    Variant.objects.create(campaign=campaign, template=template("eid", channels=("sms", "push"), title="Eid Mubarak"))

    page.goto(f"/app/campaigns/{campaign.pk}/edit/")
    page.click("text=Use this browser for tests")
    page.wait_for_selector("#to-my-browser:not([hidden])")
    page.click("#to-my-browser")
    page.wait_for_selector(".flash li")

    from subscribers.models import PushSubscription
    device = PushSubscription.objects.get(subscriber__external_id__startswith="staff:")
    client_hash = device.endpoint.rsplit("/", 1)[1]
    [received] = [json.loads(body) for body in web_push_service.messages(client_hash)]
    assert received["title"] == "Eid Mubarak"
    assert Message.objects.get(code=received["code"]).source_type == "campaign_test"
    assert not Message.objects.filter(source_type="campaign").exists()


def test_the_schedule_shows_only_the_fields_the_chosen_time_uses(marketer_page):
    page = marketer_page
    page.fill("#new-name", "Eid")
    page.click("text=New campaign")
    page.wait_for_url("**/edit/")

    assert not page.is_visible("#id_local_time") and not page.is_visible("#id_recurrence")
    page.check("input[name=schedule_kind][value=local_time]")
    assert page.is_visible("#id_local_date") and page.is_visible("#id_local_time")
    assert not page.is_visible("#id_send_at_local")
    page.check("input[name=schedule_kind][value=recurring]")
    assert page.is_visible("#id_recurrence") and not page.is_visible("#id_local_date")
