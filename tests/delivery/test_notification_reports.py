"""POST /api/v1/notification-reports: what service workers say about the notifications they showed."""
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import NotificationReport
from subscribers import services
from tests.factories import (
    SHOP_ORIGIN,
    browser_client,
    isolated_cache,  # noqa: F401 - fixture
    make_publishable_key,
    make_secret_key,
    make_subscriber,
    push_keys,
    secret_client,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

URL = "/api/v1/notification-reports"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@pytest.fixture
def worker():
    """An APIClient acting as the service worker at the store's origin."""
    _, raw = make_publishable_key()
    return browser_client(raw)


def test_it_stores_a_display_report_with_its_message_code(worker):
    response = worker.post(URL, {"code": "msg-1024", "kind": "displayed"}, format="json", HTTP_USER_AGENT=CHROME)

    assert response.status_code == 201
    report = NotificationReport.objects.get()
    assert (report.code, report.kind, report.action) == ("msg-1024", "displayed", "")
    assert report.user_agent == CHROME
    assert response.json() == {"id": report.pk, "code": "msg-1024", "kind": "displayed", "action": ""}


def test_it_stores_a_click_on_an_action_button(worker):
    response = worker.post(URL, {"code": "msg-1024", "kind": "clicked", "action": "track"}, format="json")

    assert response.status_code == 201
    assert NotificationReport.objects.get().action == "track"


def test_it_links_the_report_to_the_push_subscription_of_its_endpoint(worker):
    endpoint = "https://fcm.googleapis.com/fcm/send/abc123"
    subscription, _ = services.register_push_subscription(
        subscriber=make_subscriber(), endpoint=endpoint, **push_keys())

    worker.post(URL, {"code": "msg-1", "kind": "closed", "endpoint": endpoint}, format="json")

    report = NotificationReport.objects.get()
    assert report.subscription == subscription
    assert report.endpoint == endpoint


def test_a_report_from_an_unknown_endpoint_is_kept_without_a_subscription(worker):
    response = worker.post(URL, {"code": "msg-1", "kind": "displayed",
                                 "endpoint": "https://fcm.googleapis.com/fcm/send/gone"}, format="json")

    assert response.status_code == 201
    assert NotificationReport.objects.get().subscription is None


def test_it_keeps_the_time_the_browser_says_it_happened(worker):
    when = timezone.now() - timedelta(minutes=3)

    worker.post(URL, {"code": "msg-1", "kind": "clicked", "occurred_at": when.isoformat()}, format="json")

    report = NotificationReport.objects.get()
    assert report.occurred_at == when
    assert report.received_at > when


def test_a_report_dated_in_the_future_is_dated_on_arrival(worker):
    worker.post(URL, {"code": "msg-1", "kind": "clicked",
                      "occurred_at": (timezone.now() + timedelta(days=2)).isoformat()}, format="json")

    report = NotificationReport.objects.get()
    assert report.occurred_at == report.received_at


@pytest.mark.parametrize("body, field", [
    ({"kind": "displayed"}, "code"),
    ({"code": "", "kind": "displayed"}, "code"),
    ({"code": "<script>", "kind": "displayed"}, "code"),
    ({"code": "x" * 65, "kind": "displayed"}, "code"),
    ({"code": "msg-1", "kind": "opened"}, "kind"),
    ({"code": "msg-1", "kind": "displayed", "action": "track"}, "action"),
    ({"code": "msg-1", "kind": "clicked", "action": "a b"}, "action"),
    ({"code": "msg-1", "kind": "clicked", "occurred_at": "yesterday"}, "occurred_at"),
    ({"code": "msg-1", "kind": "clicked", "endpoint": "not a url"}, "endpoint"),
])
def test_it_refuses_a_bad_report_naming_the_field(worker, body, field):
    response = worker.post(URL, body, format="json")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert not NotificationReport.objects.exists()


def test_it_refuses_a_report_without_a_key():
    from rest_framework.test import APIClient

    response = APIClient().post(URL, {"code": "msg-1", "kind": "displayed"}, format="json")

    assert response.status_code in (401, 403)
    assert response.json()["errors"]
    assert not NotificationReport.objects.exists()


def test_it_refuses_a_publishable_key_from_an_origin_it_does_not_allow():
    _, raw = make_publishable_key(origins=[SHOP_ORIGIN])

    response = browser_client(raw, origin="https://evil.example").post(
        URL, {"code": "msg-1", "kind": "displayed"}, format="json")

    assert response.status_code == 403
    assert not NotificationReport.objects.exists()


def test_the_stores_backend_may_report_with_its_secret_key():
    response = secret_client(make_secret_key()[1]).post(URL, {"code": "msg-1", "kind": "clicked"}, format="json")

    assert response.status_code == 201


def test_reports_from_one_browser_are_rate_limited(worker, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"publishable": "3/min", "secret": "100/min"}}

    statuses = [worker.post(URL, {"code": f"msg-{n}", "kind": "displayed"}, format="json").status_code
                for n in range(4)]

    assert statuses == [201, 201, 201, 429]
    assert NotificationReport.objects.count() == 3


def test_the_admin_lists_reports_read_only(admin_client, worker):
    worker.post(URL, {"code": "msg-77", "kind": "clicked", "action": "track"}, format="json")
    report = NotificationReport.objects.get()

    listing = admin_client.get("/admin/delivery/notificationreport/?q=msg-77")
    detail = admin_client.get(f"/admin/delivery/notificationreport/{report.pk}/change/")

    assert listing.status_code == 200
    assert "msg-77" in listing.content.decode()
    assert detail.status_code == 200
    assert admin_client.get("/admin/delivery/notificationreport/add/").status_code == 403
