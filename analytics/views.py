"""The marketer's reports: the home dashboard, a campaign's report and a journey's report.

Thin: analytics.reports computes the figures (from the rollup tables), analytics.tables lays them out,
analytics.charts draws from the same tables, and `?format=csv&table=<name>` downloads any table.
Reading a report needs the permission to view what it reports on, so Viewers read them too.
"""
from datetime import timedelta

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe

from campaigns.models import Campaign
from journeys.models import Journey

from . import charts, reports, tables
from .exports import csv_response

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
DAILY_SERIES = ("sent", "delivered", "clicked", "revenue")


def _period(request):
    """The dashboard's period in days: one of PERIODS, the default for anything else."""
    try:
        days = int(request.GET.get("days", DEFAULT_PERIOD))
    except ValueError:
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def _page_or_csv(request, report_tables, prefix, template, context):
    """The page, or with ?format=csv one of its tables (by name) as a download."""
    if request.GET.get("format") == "csv":
        table = report_tables.get(request.GET.get("table", ""))
        if table is None:
            raise Http404("No such table.")
        return csv_response(table, prefix)
    return render(request, template, {"tables": report_tables, **context})


def _daily_chart(report_tables):
    return charts.trend_chart(report_tables["daily"], DAILY_SERIES, _("Messages and revenue by day"), kind="bar")


@require_safe
@login_required
@permission_required("campaigns.view_campaign", raise_exception=True)
def dashboard(request):
    days = _period(request)
    end = timezone.now()
    report = reports.dashboard(end - timedelta(days=days), end)
    report_tables = tables.dashboard_tables(report)
    return _page_or_csv(request, report_tables, f"tanbih-{days}d", "analytics/dashboard.html", {
        "section": "dashboard", "report": report, "days": days, "periods": PERIODS,
        "currency": report["revenue"]["currency"],
        "charts": {"daily": _daily_chart(report_tables),
                   "subscribers": charts.trend_chart(report_tables["subscribers"], ("push", "sms", "whatsapp", "email"),
                                                     _("Reachable subscribers by channel"))},
    })


def _source_report(request, kind, subject, report, report_tables):
    """The report page of a campaign or a journey (`kind`), or one of its tables as CSV."""
    return _page_or_csv(request, report_tables, f"{kind}-{subject.pk}", f"analytics/{kind}_report.html", {
        "section": f"{kind}s", "subject": subject, "report": report, "currency": reports.currency(),
        "charts": {"funnel": charts.funnel_chart(report_tables["funnel"], _("Funnel")),
                   "daily": _daily_chart(report_tables)},
    })


@require_safe
@login_required
@permission_required("campaigns.view_campaign", raise_exception=True)
def campaign_report(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    report = reports.campaign_report(campaign)
    return _source_report(request, "campaign", campaign, report, tables.campaign_tables(report, reports.currency()))


@require_safe
@login_required
@permission_required("journeys.view_journey", raise_exception=True)
def journey_report(request, pk):
    journey = get_object_or_404(Journey, pk=pk)
    report = reports.journey_report(journey)
    return _source_report(request, "journey", journey, report, tables.journey_tables(report, reports.currency()))
