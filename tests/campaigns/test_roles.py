"""Roles: marketers build and send, viewers only read (the groups exist after migrate)."""
import pytest
from django.contrib.auth.models import Group, User

from campaigns.models import Campaign, Variant
from campaigns.roles import MARKETERS, VIEWERS, ensure_roles
from tests.campaigns.test_campaign_engine import sandbox, template  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def person(client, group):
    user = User.objects.create_user(group.lower(), password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return user


def test_the_groups_exist_after_migrate_and_ensuring_them_again_changes_nothing():
    before = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    ensure_roles()
    after = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}

    assert before == after
    assert {"add_campaign", "change_campaign", "change_segment", "change_messagetemplate"} <= after[MARKETERS]
    assert after[VIEWERS] and all(codename.startswith("view_") for codename in after[VIEWERS])


def test_a_marketer_may_create_a_campaign(client):
    person(client, MARKETERS)

    response = client.post("/app/campaigns/new/", {"name": "Eid"})

    assert response.status_code == 302 and Campaign.objects.filter(name="Eid").exists()


def test_a_viewer_reads_campaigns_but_cannot_send_one(client):
    person(client, VIEWERS)
    campaign = Campaign.objects.create(name="Eid", channels=["sms"])
    Variant.objects.create(campaign=campaign, template=template("offer"))

    assert client.get(f"/app/campaigns/{campaign.pk}/edit/").status_code == 200
    assert client.post(f"/app/campaigns/{campaign.pk}/schedule/").status_code == 403
    assert client.post("/app/campaigns/new/", {"name": "x"}).status_code == 403


def test_ops_pause_resume_and_cancel_campaigns_from_the_admin(admin_client):
    campaign = Campaign.objects.create(name="Eid", channels=["sms"], status="sending")
    Variant.objects.create(campaign=campaign, template=template("offer"))
    url = "/admin/campaigns/campaign/"

    admin_client.post(url, {"action": "pause_selected", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == "paused"
    admin_client.post(url, {"action": "resume_selected", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == "sending"
    admin_client.post(url, {"action": "cancel_selected", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == "cancelled"


def test_scheduling_a_draft_that_is_not_ready_from_the_admin_says_why(admin_client):
    campaign = Campaign.objects.create(name="Eid", channels=["sms"])
    Variant.objects.create(campaign=campaign, template=template("offer"))

    response = admin_client.post("/admin/campaigns/campaign/", {
        "action": "schedule_selected", "_selected_action": [campaign.pk]}, follow=True)

    assert "Choose at least one segment to send to." in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "draft"
