"""The marketer's campaign pages: the builder, the live count, the review, sending, and the live page."""
import pytest
from django.contrib.auth.models import Permission, User

from campaigns.models import Campaign, CampaignStatus, Variant
from delivery.models import Message
from tests.campaigns.test_campaign_engine import sandbox, segment, shopper, template  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client):
    user = User.objects.create_user("layla", password="a-long-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="campaigns"))
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("omar", password="a-long-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_campaign"))
    client.force_login(user)
    return client


def builder_data(campaign, segments, made_template, **changes):
    data = {
        "name": campaign.name, "description": "", "include_segments": [s.pk for s in segments],
        "channel_0": "sms", "channel_1": "", "channel_2": "", "channel_3": "", "channel_4": "",
        "schedule_kind": "now", "missed_local_time": "next_day", "throttle_per_minute": "0",
        "holdout_percent": "0", "test_percent": "100", "winner_metric": "click_rate", "winner_wait_hours": "4",
        "conversion_event": "order_placed", "conversion_window_hours": "24",
        "variants-TOTAL_FORMS": "1", "variants-INITIAL_FORMS": "0", "variants-MIN_NUM_FORMS": "1",
        "variants-MAX_NUM_FORMS": "4", "variants-0-template": made_template.pk, "variants-0-channel": "",
        "variants-0-discount_code": "",
    }
    data.update(changes)
    return data


def test_a_marketer_builds_reviews_and_sends_a_campaign(marketer, django_capture_on_commit_callbacks):
    shoppers = [shopper(n, sms=True) for n in range(3)]
    audience = segment(shoppers, name="Repeat customers")
    offer = template("offer", channels=("sms",), title="White Friday: 20% off")

    created = marketer.post("/app/campaigns/new/", {"name": "White Friday"})
    campaign = Campaign.objects.get()
    assert created.status_code == 302 and created["Location"] == f"/app/campaigns/{campaign.pk}/edit/"

    saved = marketer.post(f"/app/campaigns/{campaign.pk}/edit/", builder_data(campaign, [audience], offer))
    assert saved.status_code == 302
    campaign.refresh_from_db()
    assert campaign.channels == ["sms"] and list(campaign.variants.values_list("label", "template")) == [
        ("A", offer.pk)]

    review = marketer.get(f"/app/campaigns/{campaign.pk}/edit/").content.decode()
    assert "White Friday: 20% off!" in review  # the preview
    assert "Send now" in review
    count = marketer.post(f"/app/campaigns/{campaign.pk}/audience-count/",
                          {"include_segments": [audience.pk]}).content.decode()
    assert '<span class="count">3</span>' in count

    with django_capture_on_commit_callbacks(execute=True):
        sent = marketer.post(f"/app/campaigns/{campaign.pk}/schedule/")
    assert sent.status_code == 302 and sent["Location"] == f"/app/campaigns/{campaign.pk}/"
    assert Message.objects.filter(source_type="campaign", status="sent").count() == 3
    page = marketer.get(f"/app/campaigns/{campaign.pk}/").content.decode()
    assert 'role="progressbar"' in page and 'data-status="sent"' in page


def test_the_live_count_excludes_the_excluded_segments(marketer):
    first, second = shopper(1), shopper(2)
    everyone, recent = segment([first, second]), segment([second], name="recent")
    campaign = Campaign.objects.create(name="x")

    response = marketer.post(f"/app/campaigns/{campaign.pk}/audience-count/",
                             {"include_segments": [everyone.pk], "exclude_segments": [recent.pk]})

    assert '<span class="count">1</span>' in response.content.decode()


def test_the_builder_says_what_is_wrong_and_keeps_the_draft(marketer):
    campaign = Campaign.objects.create(name="Draft")
    offer = template("offer")
    everyone = segment([shopper(1)])

    response = marketer.post(f"/app/campaigns/{campaign.pk}/edit/", builder_data(
        campaign, [everyone], offer, channel_0="", schedule_kind="at", include_segments=[]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Choose at least one channel." in page and "Choose the date and time to send." in page
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT and not campaign.variants.exists()


def test_a_campaign_that_is_not_ready_is_not_scheduled_and_the_problem_is_shown(marketer):
    campaign = Campaign.objects.create(name="No audience", channels=["sms"])
    Variant.objects.create(campaign=campaign, template=template("offer"))

    response = marketer.post(f"/app/campaigns/{campaign.pk}/schedule/", follow=True)

    assert "Choose at least one segment to send to." in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_template_text_is_escaped_in_the_preview(marketer):
    campaign = Campaign.objects.create(name="x", channels=["sms"])
    campaign.include_segments.set([segment([shopper(1, sms=True)])])
    Variant.objects.create(campaign=campaign, template=template("evil", channels=("sms",),
                                                                title="<script>alert(1)</script>"))

    page = marketer.get(f"/app/campaigns/{campaign.pk}/edit/").content.decode()

    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_pause_resume_and_cancel_from_the_campaign_page(marketer):
    campaign = Campaign.objects.create(name="x", channels=["sms"], status=CampaignStatus.SENDING)
    Variant.objects.create(campaign=campaign, template=template("offer"))

    marketer.post(f"/app/campaigns/{campaign.pk}/pause/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    marketer.post(f"/app/campaigns/{campaign.pk}/resume/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    marketer.post(f"/app/campaigns/{campaign.pk}/cancel/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED


def test_the_progress_block_is_polled_only_while_the_campaign_is_live(marketer):
    campaign = Campaign.objects.create(name="x", channels=["sms"], status=CampaignStatus.SENDING)
    Variant.objects.create(campaign=campaign, template=template("offer"))

    live = marketer.get(f"/app/campaigns/{campaign.pk}/progress/").content.decode()
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.COMPLETED)
    done = marketer.get(f"/app/campaigns/{campaign.pk}/progress/").content.decode()

    assert 'hx-trigger="every 2s"' in live and 'hx-trigger="every 2s"' not in done


def test_someone_who_may_only_view_cannot_send_or_change(viewer):
    campaign = Campaign.objects.create(name="x", channels=["sms"])
    Variant.objects.create(campaign=campaign, template=template("offer"))

    assert viewer.get("/app/campaigns/").status_code == 200
    assert viewer.post("/app/campaigns/new/", {"name": "y"}).status_code == 403
    assert viewer.post(f"/app/campaigns/{campaign.pk}/schedule/").status_code == 403
    assert viewer.post(f"/app/campaigns/{campaign.pk}/cancel/").status_code == 403
    assert Campaign.objects.count() == 1


def test_the_pages_need_a_login(client):
    response = client.get("/app/campaigns/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_campaign_pages_speak_arabic_right_to_left(marketer):
    marketer.cookies["django_language"] = "ar"

    page = marketer.get("/app/campaigns/").content.decode()

    assert '<html lang="ar" dir="rtl">' in page


def test_a_test_device_must_be_a_push_service_on_the_allow_list(marketer):
    refused = marketer.post("/app/campaigns/test-device/", {"endpoint": "https://127.0.0.1/steal",
                                                            "keys": {"p256dh": "x", "auth": "y"}},
                            content_type="application/json")
    malformed = marketer.post("/app/campaigns/test-device/", "not json", content_type="application/json")

    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "endpoint"
    assert malformed.status_code == 400
    from subscribers.models import PushSubscription
    assert not PushSubscription.objects.exists()


def test_only_people_who_may_send_can_register_a_test_device(viewer):
    response = viewer.post("/app/campaigns/test-device/", {}, content_type="application/json")

    assert response.status_code == 403


def test_sending_to_my_browser_without_one_says_how_to_set_it_up(marketer):
    campaign = Campaign.objects.create(name="x", channels=["sms"])
    Variant.objects.create(campaign=campaign, template=template("offer"))

    response = marketer.post(f"/app/campaigns/{campaign.pk}/test-send/", {"to_my_browser": "1"}, follow=True)

    assert "allow notifications first" in response.content.decode()
    assert not Message.objects.exists()
