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
