"""Chart data for static/tanbih/charts.js, built from the same tables the page shows.

A chart is a plain dict that the template embeds with `json_script` (never JavaScript built from strings):
labels already formatted for the active language, one series per column, and what the browser needs to label
its axis the same way the tables do (the locale's separators, the currency). The table under each chart is its
accessible fallback (the canvas's aria-describedby points at it).
"""
from django.utils.translation import get_language_bidi

from . import formats
from .tables import MONEY


def _spec(kind, table, labels, series_keys, title):
    columns = [table.column(key) for key in series_keys]
    return {
        "kind": kind, "title": str(title), "labels": labels, "rtl": get_language_bidi(),
        "separators": formats.separators(),
        "currency": formats.currency_symbol(table.currency) if table.currency else None,
        "series": [{"key": column.key, "label": str(column.title), "money": column.kind == MONEY,
                    "data": [_number(row.get(column.key)) for row in table.rows]} for column in columns],
    }


def _number(value):
    return None if value is None else float(value)


def trend_chart(table, series_keys, title, kind="line"):
    """Days along the x axis (a table with a `day` column), one line or bar group per series."""
    labels = [formats.format_day(row["day"]) for row in table.rows]
    return _spec(kind, table, labels, series_keys, title)


def funnel_chart(table, title):
    """analytics.tables.funnel_table as horizontal bars, widest first."""
    return _spec("funnel", table, [row["stage"] for row in table.rows], ["count"], title)


def distribution_chart(table, label_key, title):
    """Categories in row order (score bins, hours of the day) as vertical bars, one per remaining column."""
    labels = [str(row[label_key]) for row in table.rows]
    return _spec("bar", table, labels, [column.key for column in table.columns if column.key != label_key], title)
