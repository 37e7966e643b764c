"""The dashboard and the campaign and journey reports: who may read them, what they show, in which language's
formats, and their CSV downloads."""
import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import translation

from analytics import exports, formats, tables

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
