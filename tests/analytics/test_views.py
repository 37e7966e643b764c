"""The dashboard and the campaign and journey reports: who may read them, what they show, in which language's
formats, and their CSV downloads."""
import csv
import io
import re
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import translation

from analytics import exports, formats, tables
from campaigns.models import Campaign
from tests.campaigns.test_campaign_engine import (  # noqa: F401 - fixtures
    campaign, messages_of, run_now, sandbox, segment, shopper, template,
)

pytestmark = pytest.mark.django_db


def read_csv(response):
    text = b"".join(response.streaming_content if response.streaming else [response.content]).decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads the Arabic names as UTF-8
    return list(csv.reader(io.StringIO(text[1:])))


def test_figures_follow_the_language_of_the_page():
    with translation.override("en"):
        english = (formats.format_count(1234567), formats.format_rate(0.1234), formats.format_money(Decimal("1234.5"), "SAR"),
                   formats.format_day(date(2026, 11, 23)))
    with translation.override("ar"):
        arabic = (formats.format_count(1234567), formats.format_rate(0.1234), formats.format_money(Decimal("1234.5"), "SAR"),
                  formats.format_day(date(2026, 11, 23)))

    assert english == ("1,234,567", "12.3%", "SAR\u00a01,234.50", "November 23")
    assert arabic == ("1.234.567", "12,3%", "1.234,50\u00a0ر.س.\u200f", "23 نوفمبر")


def test_an_undefined_rate_reads_as_a_dash_not_as_zero():
    assert formats.format_rate(None) == "—" and formats.format_rate(0) == "0.0%"


def test_text_that_a_spreadsheet_would_run_as_a_formula_is_defused_in_the_csv():
    table = tables.Table("campaigns", "Top campaigns", tables.SOURCE_COLUMNS, [
        {"id": 1, "name": '=HYPERLINK("http://evil.example","click")', "sent": 10, "clicked": -1,
         "revenue": Decimal("-5.50")},
        {"id": 2, "name": "+966 offer", "sent": 0, "clicked": 0, "revenue": Decimal("0")},
        {"id": 3, "name": "@everyone", "sent": 0, "clicked": 0, "revenue": Decimal("0")},
        {"id": 4, "name": "-20% عرض الجمعة", "sent": 0, "clicked": 0, "revenue": Decimal("0")},
        {"id": 5, "name": "White Friday", "sent": 0, "clicked": 0, "revenue": Decimal("0")},
    ], "SAR")

    rows = read_csv(exports.csv_response(table, "test"))

    assert rows[0] == ["Name", "Sent", "Clicked", "Revenue"]
    assert [row[0] for row in rows[1:]] == ["'=HYPERLINK(\"http://evil.example\",\"click\")", "'+966 offer",
                                            "'@everyone", "'-20% عرض الجمعة", "White Friday"]
    assert rows[1][1:] == ["10", "-1", "-5.50"]  # figures we computed stay numbers


def test_the_csv_has_raw_values_while_the_page_has_formatted_ones():
    table = tables.daily_table([{"day": date(2026, 11, 1), "sent": 1200, "delivered": 1100, "clicked": 90,
                                 "revenue": Decimal("15000.25")}], "SAR")

    with translation.override("ar"):
        shown = table.display_rows()[0]["cells"]
        exported = list(table.export_rows())

    assert [cell["text"] for cell in shown] == ["1 نوفمبر", "1.200", "1.100", "90", "15.000,25\u00a0ر.س.\u200f"]
    assert exported[1] == ["2026-11-01", 1200, 1100, 90, Decimal("15000.25")]


# --- The pages, on traffic that went through the real outbox ------------------------------------

@pytest.fixture
def reader(client):
    """A Viewer: may read campaigns and journeys, change nothing."""
    user = User.objects.create_user("omar", password="a-long-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_campaign", "view_journey"]))
    client.force_login(user)
    return client


@pytest.fixture
def friday(run_now):
    """A sent A/B campaign to four shoppers: one clicked their SMS and then ordered 250 SAR."""
    from analytics import attribution, rollups
    from campaigns import services
    from delivery import outbox
    from subscribers import services as subscriber_services

    shoppers = [shopper(n, sms=True) for n in range(4)]
    made = campaign([segment(shoppers)], channels=("sms",),
                    variants={"A": template("offer-a"), "B": template("offer-b", title="Other offer")})
    made.name = "White Friday <b>sale</b>"
    made.save(update_fields=["name"])
    services.schedule_campaign(made)
    if not messages_of(made).exists():  # with a live server (e2e) the scheduling's after-commit run sent it
        run_now(made)
    clicked = messages_of(made).order_by("pk").first()  # whichever variant the shopper's bucket chose
    outbox.mark_clicked(code=clicked.code)
    subscriber_services.record_event(subscriber=clicked.subscriber, name="order_placed",
                                     properties={"order_id": "o-1", "value": "250.00", "currency": "SAR"})
    attribution.sweep()
    rollups.roll_up_all()
    return made


def page_text(response):
    assert response.status_code == 200
    return response.content.decode()


def test_an_anonymous_visitor_is_sent_to_the_login_page_from_every_report(client):
    from journeys.models import Journey

    made, journey = Campaign.objects.create(name="x"), Journey.objects.create(name="y")
    for url in ("/app/", f"/app/campaigns/{made.pk}/report/", f"/app/journeys/{journey.pk}/report/",
                "/app/?format=csv&table=daily"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=/app/")


def test_the_root_address_leads_to_the_dashboard(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/app/"


def test_a_staff_member_without_a_role_is_refused_the_reports(client):
    from journeys.models import Journey

    made, journey = Campaign.objects.create(name="x"), Journey.objects.create(name="y")
    client.force_login(User.objects.create_user("sami", password="a-long-password-1", is_staff=True))

    for url in ("/app/", f"/app/campaigns/{made.pk}/report/", f"/app/journeys/{journey.pk}/report/"):
        assert client.get(url).status_code == 403


def test_a_viewer_of_campaigns_only_is_refused_the_journey_report(client):
    from journeys.models import Journey

    journey = Journey.objects.create(name="y")
    user = User.objects.create_user("omar", password="a-long-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_campaign"))
    client.force_login(user)

    assert client.get("/app/").status_code == 200
    assert client.get(f"/app/journeys/{journey.pk}/report/").status_code == 403


def test_the_viewers_group_reads_every_report(client):
    from django.contrib.auth.models import Group

    from campaigns.roles import VIEWERS
    from journeys.models import Journey

    made, journey = Campaign.objects.create(name="x", status="completed"), Journey.objects.create(name="y")
    user = User.objects.create_user("omar", password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=VIEWERS))
    client.force_login(user)

    for url in ("/app/", f"/app/campaigns/{made.pk}/report/", f"/app/journeys/{journey.pk}/report/"):
        assert client.get(url).status_code == 200


def test_the_dashboard_shows_the_attributed_revenue_and_the_campaign_that_earned_it(reader, friday):
    html = page_text(reader.get("/app/"))

    assert 'id="stat-click-revenue"><div class="value">SAR\u00a0250.00<' in html
    assert 'id="stat-view-revenue"><div class="value">SAR\u00a00.00<' in html
    assert "within 24 h before it" in html and "within 1 h before it" in html  # both attribution windows
    assert f'<a href="/app/campaigns/{friday.pk}/report/">White Friday &lt;b&gt;sale&lt;/b&gt;</a>' in html
    assert "<b>sale</b>" not in html
    assert 'id="chart-daily" type="application/json"' in html and 'data-chart="chart-daily"' in html


def test_the_dashboard_in_arabic_is_right_to_left_with_arabic_formats(reader, friday):
    reader.cookies["django_language"] = "ar"
    html = page_text(reader.get("/app/"))

    assert '<html lang="ar" dir="rtl">' in html
    assert 'id="stat-click-revenue"><div class="value">250,00\u00a0ر.س.\u200f<' in html


def test_the_dashboard_period_is_7_30_or_90_days(reader):
    assert 'href="?days=7" aria-current="page"' in page_text(reader.get("/app/?days=7"))
    for asked in ("abc", "365", ""):
        assert 'href="?days=30" aria-current="page"' in page_text(reader.get(f"/app/?days={asked}"))


def test_every_dashboard_table_downloads_as_csv(reader, friday):
    for name in ("daily", "subscribers", "campaigns", "journeys", "failures"):
        response = reader.get(f"/app/?days=7&format=csv&table={name}")
        assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"].startswith(f'attachment; filename="tanbih-7d-{name}-')

    rows = read_csv(reader.get("/app/?format=csv&table=campaigns"))
    assert rows == [["Name", "Sent", "Clicked", "Revenue"], ["White Friday <b>sale</b>", "4", "1", "250.00"]]
    assert reader.get("/app/?format=csv&table=secrets").status_code == 404


def test_the_dashboard_runs_the_same_queries_for_one_campaign_or_many(reader, friday, run_now,
                                                                    django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        page_text(reader.get("/app/"))
    from analytics import rollups
    from campaigns import services

    for n in range(3):
        more = campaign([segment([shopper(10 + n, sms=True)], name=f"l{n}")], channels=("sms",),
                        variants={"A": template(f"t{n}")})
        services.schedule_campaign(more)
        run_now(more)
    rollups.roll_up_all()

    with django_assert_num_queries(len(one.captured_queries)):
        html = page_text(reader.get("/app/"))
    assert len(re.findall(r'href="/app/campaigns/\d+/report/"', html)) == 4


def test_the_campaign_report_shows_the_funnel_variants_and_channels(reader, friday):
    html = page_text(reader.get(f"/app/campaigns/{friday.pk}/report/"))

    assert "White Friday &lt;b&gt;sale&lt;/b&gt;" in html and "<b>sale</b>" not in html
    assert 'data-chart="chart-funnel"' in html and 'id="data-funnel"' in html
    assert 'id="table-variants"' in html and 'id="table-channels"' in html
    funnel = read_csv(reader.get(f"/app/campaigns/{friday.pk}/report/?format=csv&table=funnel"))
    assert funnel == [["Stage", "Count"], ["Targeted", "4"], ["Sent", "4"], ["Delivered", "1"], ["Displayed", "0"],
                      ["Clicked", "1"], ["Converted", "1"]]
    variants = read_csv(reader.get(f"/app/campaigns/{friday.pk}/report/?format=csv&table=variants"))
    assert [row[0] for row in variants] == ["Variant", "A", "B"]
    assert variants[0][-1] == "Result" and variants[1][-1] == variants[2][-1] == ""  # one click: no winner


def test_a_winner_is_named_only_when_the_report_says_it_is_significant():
    report = {"totals": {}, "channels": [], "suppressed_by_reason": [], "lift": None, "daily": [], "variants": [
        {"label": "A", "is_winner_label": False, "significant": False},
        {"label": "B", "is_winner_label": True, "significant": True},
        {"label": "C", "is_winner_label": True, "significant": False}]}

    variants = tables.campaign_tables(report, "SAR")["variants"]

    with translation.override("en"):
        assert [row["cells"][-1]["text"] for row in variants.display_rows()] == ["", "Winner", ""]


def test_a_campaign_with_a_hold_out_shows_its_lift(reader, run_now):
    from campaigns import services

    shoppers = [shopper(n, sms=True) for n in range(20)]
    made = campaign([segment(shoppers)], channels=("sms",), holdout_percent=50)
    services.schedule_campaign(made)
    run_now(made)

    html = page_text(reader.get(f"/app/campaigns/{made.pk}/report/"))

    assert 'id="lift"' in html and "of the hold-out group" in html
    lift = read_csv(reader.get(f"/app/campaigns/{made.pk}/report/?format=csv&table=lift"))
    assert lift[0][:4] == ["Messaged", "Messaged and converted", "Messaged conversion", "Hold-out group"]
    assert int(lift[1][0]) + int(lift[1][3]) == 20


def test_a_campaign_without_a_hold_out_has_no_lift_section(reader, friday):
    assert 'id="lift"' not in page_text(reader.get(f"/app/campaigns/{friday.pk}/report/"))
    assert reader.get(f"/app/campaigns/{friday.pk}/report/?format=csv&table=lift").status_code == 404


def test_the_journey_report_lists_its_send_steps_and_its_cart_recovery(reader):
    from journeys import engine
    from journeys.models import Journey
    from tests.journeys.test_journey_engine import ABANDONED_CART

    template("cart", channels=("push", "sms", "whatsapp"))
    made = Journey.objects.create(name="Abandoned cart", trigger_event="cart_abandoned", goal_event="order_placed")
    engine.publish(made, ABANDONED_CART)

    html = page_text(reader.get(f"/app/journeys/{made.pk}/report/"))

    assert 'id="recovery"' in html and 'id="enrolments"' in html
    steps = read_csv(reader.get(f"/app/journeys/{made.pk}/report/?format=csv&table=steps"))
    assert steps[0][:2] == ["Step", "Does"] and sorted(row[0] for row in steps[1:]) == ["push", "sms"]


def test_the_campaign_and_journey_pages_link_to_their_reports(reader, friday):
    from journeys.models import Journey

    journey = Journey.objects.create(name="Welcome")

    assert f'href="/app/campaigns/{friday.pk}/report/"' in page_text(reader.get(f"/app/campaigns/{friday.pk}/"))
    assert f'href="/app/journeys/{journey.pk}/report/"' in page_text(reader.get(f"/app/journeys/{journey.pk}/"))
