"""The soft prompt reports itself (shown, accepted, declined) through the SDK's event path, and the dashboard's
push opt-in rate counts those events."""
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import reports
from subscribers.models import AnonymousId, Event

from .helpers import wait_until
from .test_storefront_sdk import RECORD_SDK_EVENTS, anonymous_id, sdk_event

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def prompt_events(page):
    """The names of the prompt events stored for this browser's shopper, oldest first."""
    subscriber = AnonymousId.objects.get(value=anonymous_id(page)).subscriber
    return list(Event.objects.filter(subscriber=subscriber, name__startswith="push_prompt_")
                .order_by("occurred_at", "pk").values_list("name", flat=True))


def test_the_prompt_reports_shown_and_declined_and_the_dashboard_counts_them(page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    page.goto("/demo/store/")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    sdk_event(page, "prompt")
    wait_until(lambda: AnonymousId.objects.filter(value=anonymous_id(page)).exists()
               and prompt_events(page) == ["push_prompt_shown"], "the prompt's shown event")

    dialog.get_by_role("button", name=store["prompt"].decline_en).click()

    wait_until(lambda: prompt_events(page) == ["push_prompt_shown", "push_prompt_declined"],
               "the prompt's declined event")
    shown = Event.objects.get(name="push_prompt_shown")
    assert shown.properties == {"lang": "en", "page": "/demo/store/"}
    now = timezone.now()
    assert reports.dashboard(now - timedelta(days=1), now)["push_optin"] == {
        "prompts_shown": 1, "accepted": 0, "rate": 0.0}


def test_accepting_the_prompt_is_reported_as_accepted(context, page, store):
    page.add_init_script(RECORD_SDK_EVENTS)
    page.goto("/demo/store/")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    context.grant_permissions(["notifications"], origin=store["url"])

    dialog.get_by_role("button", name=store["prompt"].accept_en).click()

    sdk_event(page, "accepted")
    wait_until(lambda: AnonymousId.objects.filter(value=anonymous_id(page)).exists()
               and prompt_events(page) == ["push_prompt_shown", "push_prompt_accepted"],
               "the prompt's shown and accepted events")
    now = timezone.now()
    assert reports.dashboard(now - timedelta(days=1), now)["push_optin"] == {
        "prompts_shown": 1, "accepted": 1, "rate": 1.0}
