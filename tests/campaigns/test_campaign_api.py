"""Campaigns from the store's backend: create, send, read progress, pause, resume, cancel (secret key)."""
import pytest

from campaigns.models import Campaign, CampaignStatus
from delivery.models import Message
from tests.campaigns.test_campaign_engine import sandbox, segment, shopper, template  # noqa: F401 - fixture
from tests.factories import browser_client, isolated_cache, make_publishable_key, secret_client  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

URL = "/api/v1/campaigns"


@pytest.fixture
def api():
    return secret_client()


def errors_of(response):
    return {error["field"]: error for error in response.json()["errors"]}


def body(**changes):
    data = {"name": "White Friday", "segments": ["Repeat customers"], "channels": ["sms"],
            "variants": [{"template": "offer"}]}
    data.update(changes)
    return data


@pytest.fixture
def store():
    template("offer", channels=("sms", "push"))
    return segment([shopper(n, sms=True) for n in range(3)], name="Repeat customers")


def test_the_store_creates_and_sends_a_campaign_and_reads_its_progress(api, store,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(URL, body(send=True), format="json")

    assert created.status_code == 201
    campaign = created.json()
    assert campaign["status"] in ("scheduled", "sending", "completed")
    assert campaign["segments"] == [{"id": store.pk, "name": "Repeat customers"}]
    assert Message.objects.filter(source_type="campaign", status="sent").count() == 3

    read = api.get(f"{URL}/{campaign['id']}").json()
    assert read["progress"]["counts"]["sent"] == 3 and read["progress"]["percent"] == 100
    assert read["variants"][0]["template"] == "offer"


def test_a_draft_is_sent_later_by_its_own_call_and_only_once(api, store, django_capture_on_commit_callbacks):
    draft = api.post(URL, body(), format="json").json()
    assert draft["status"] == "draft" and not Message.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(f"{URL}/{draft['id']}/send")
    again = api.post(f"{URL}/{draft['id']}/send")

    assert sent.status_code == 200
    assert again.status_code == 409 and errors_of(again)["status"]["code"] == "not_a_draft"
    assert Message.objects.count() == 3


def test_a_campaign_that_is_not_ready_is_refused_with_each_problem_and_nothing_is_kept(api, store):
    response = api.post(URL, body(channels=["whatsapp"], schedule="at", send=True), format="json")

    assert response.status_code == 400
    errors = errors_of(response)
    assert "variants" in errors and "send_at" in errors
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("change, field", [
    ({"segments": ["Nobody by that name"]}, "segments[0]"),
    ({"segments": []}, "segments"),
    ({"channels": ["fax"]}, "channels[0]"),
    ({"variants": [{"template": "no-such-template"}]}, "variants[0].template"),
    ({"variants": [{"template": "offer"}] * 5}, "variants"),
    ({"recurrence": "every friday", "schedule": "recurring"}, "recurrence"),
    ({"holdout_percent": 80}, "holdout_percent"),
])
def test_bad_input_names_the_field(api, store, change, field):
    response = api.post(URL, body(**change), format="json")

    assert response.status_code == 400
    assert field in errors_of(response)
    assert not Campaign.objects.exists()


def test_pause_resume_and_cancel(api, store):
    made = api.post(URL, body(schedule="local_time", local_date="2030-01-01", local_time="10:00", send=True),
                    format="json").json()

    assert api.post(f"{URL}/{made['id']}/pause").json()["status"] == "paused"
    assert api.post(f"{URL}/{made['id']}/pause").status_code == 409
    assert api.post(f"{URL}/{made['id']}/resume").json()["status"] == "scheduled"
    assert api.post(f"{URL}/{made['id']}/cancel").json()["status"] == "cancelled"
    assert api.post(f"{URL}/{made['id']}/cancel").status_code == 409
    assert Campaign.objects.get().status == CampaignStatus.CANCELLED


def test_an_unknown_campaign_is_a_404(api):
    response = api.get(f"{URL}/999")

    assert response.status_code == 404 and errors_of(response)["id"]["code"] == "not_found"


def test_a_publishable_key_cannot_touch_campaigns(store):
    _key, raw = make_publishable_key()

    response = browser_client(raw).post(URL, body(send=True), format="json")

    assert response.status_code == 403 and not Campaign.objects.exists()
