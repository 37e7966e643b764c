"""`make run`'s demo analytics: after the demo store and its history, the dashboard and reports have figures."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from analytics import reports
from analytics.models import Attribution, AttributionKind
from campaigns.models import Campaign
from delivery.models import Message
from journeys.models import Journey
from journeys.recipes import create_from_recipe

pytestmark = pytest.mark.django_db


def test_the_demo_history_gives_the_dashboard_and_the_reports_figures():
    from subscribers.demo import load_demo_store

    load_demo_store(subscribers=400, seed=5)
    call_command("load_starter_templates", stdout=StringIO())
    journey = create_from_recipe("abandoned-cart")
    out = StringIO()

    call_command("load_demo_analytics", "--if-empty", stdout=out)

    now = timezone.now()
    dashboard = reports.dashboard(now - timedelta(days=90), now)
    assert dashboard["revenue"]["click"] > 0
    assert len(dashboard["top_campaigns"]) == 4 and dashboard["top_journeys"][0]["id"] == journey.pk
    assert dashboard["recovery"]["recovered"] > 0 and dashboard["push_optin"]["accepted"] > 0
    assert sum(day["sent"] for day in dashboard["daily"]) > 1000
    assert dashboard["failures_by_reason"]
    # Reachable shoppers per channel come from the demo's consent history, on SQLite as on PostgreSQL.
    assert any(day["push"] > 0 and day["email"] > 0 for day in dashboard["subscribers_by_channel"])
    white_friday = Campaign.objects.get(name__startswith="White Friday")
    report = reports.campaign_report(white_friday)
    assert [row["label"] for row in report["variants"]] == ["A", "B"] and report["lift"]["control"] > 0
    assert reports.journey_report(Journey.objects.get(pk=journey.pk))["totals"]["sent"] > 0
    # Each click-attributed order was clicked before it was placed, within the window.
    for row in Attribution.objects.filter(kind=AttributionKind.CLICK):
        assert row.touched_at <= row.placed_at <= row.touched_at + timedelta(hours=24)
    assert "Demo analytics: messages:" in out.getvalue()

    messages = Message.objects.count()
    again = StringIO()
    call_command("load_demo_analytics", "--if-empty", stdout=again)
    assert Message.objects.count() == messages and "already there" in again.getvalue()
