"""The report tables: one definition per table, drawn as HTML, exported as CSV and fed to its chart.

A `Table` holds the plain rows that analytics.reports returns and the columns to show. The page formats each
cell for the active language (analytics.formats); the CSV export writes the raw values (ISO days, decimals) so a
spreadsheet can compute with them. Keeping both on one definition means a column added to a table appears in
its export too.
"""
from dataclasses import dataclass, field
from decimal import Decimal

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from delivery.models import DeliveryChannel

from . import formats

COUNT, RATE, MONEY, DAY, TEXT, CHANNEL, WINNER = "count", "rate", "money", "day", "text", "channel", "winner"
NUMERIC_KINDS = {COUNT, RATE, MONEY}
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str = COUNT


@dataclass
class Table:
    name: str
    title: str
    columns: tuple
    rows: list
    currency: str = ""
    link: object = None  # row -> URL of the first cell's page, or None
    empty: str = field(default_factory=lambda: _("Nothing in this period."))

    def column(self, key):
        return next(column for column in self.columns if column.key == key)

    def display_rows(self):
        """Each row as formatted cells ({text, numeric}) and an optional link for the first cell."""
        return [{"href": self.link(row) if self.link else None,
                 "cells": [{"text": self.display(column, row.get(column.key)), "numeric": column.kind in NUMERIC_KINDS}
                           for column in self.columns]}
                for row in self.rows]

    def display(self, column, value):
        """One cell as the page shows it, in the active language."""
        if column.kind == COUNT:
            return formats.format_count(value)
        if column.kind == RATE:
            return formats.format_rate(value)
        if column.kind == MONEY:
            return formats.format_money(value, self.currency)
        if column.kind == DAY:
            return formats.format_day(value)
        if column.kind == CHANNEL:
            return channel_label(value)
        if column.kind == WINNER:
            return str(_("Winner")) if value else ""
        return "" if value is None else str(value)

    def export_rows(self):
        """The header and the raw values, for analytics.exports."""
        yield [str(column.title) for column in self.columns]
        for row in self.rows:
            yield [export_value(column, row.get(column.key)) for column in self.columns]


def export_value(column, value):
    if value is None:
        return ""
    if column.kind == DAY:
        return value.isoformat()
    if column.kind == WINNER:
        return "yes" if value else ""
    if column.kind == MONEY:
        # Two places whatever the database kept (SQLite's sums lose the scale: 250 for 250.00).
        return Decimal(value).quantize(CENTS)
    return value


def channel_label(value):
    try:
        return str(DeliveryChannel(value).label)
    except ValueError:
        return "" if value is None else str(value)


METRIC_COLUMNS = (
    Column("targeted", _("Targeted")), Column("suppressed", _("Suppressed")), Column("sent", _("Sent")),
    Column("delivered", _("Delivered")), Column("failed", _("Failed")), Column("displayed", _("Displayed")),
    Column("clicked", _("Clicked")),
    Column("ctr", _("Click-through rate"), RATE), Column("converted", _("Converted")),
    Column("conversion_rate", _("Conversion rate"), RATE), Column("revenue", _("Revenue"), MONEY),
    Column("unsubscribed", _("Unsubscribed")),
)
FUNNEL_STAGES = ("targeted", "sent", "delivered", "displayed", "clicked", "converted")
DAILY_COLUMNS = (Column("day", _("Day"), DAY), Column("sent", _("Sent")), Column("delivered", _("Delivered")),
                 Column("clicked", _("Clicked")), Column("revenue", _("Revenue"), MONEY))
SOURCE_COLUMNS = (Column("name", _("Name"), TEXT), Column("sent", _("Sent")), Column("clicked", _("Clicked")),
                  Column("revenue", _("Revenue"), MONEY))


def _campaign_link(row):
    return reverse("analytics:campaign-report", args=[row["id"]])


def _journey_link(row):
    return reverse("analytics:journey-report", args=[row["id"]])


def daily_table(rows, currency):
    return Table("daily", _("Messages and revenue by day"), DAILY_COLUMNS, rows, currency)


def funnel_table(totals):
    """The totals as the funnel's stages: targeted → sent → delivered → displayed → clicked → converted."""
    metric = {column.key: column for column in METRIC_COLUMNS}
    rows = [{"stage": str(metric[stage].title), "count": totals.get(stage)} for stage in FUNNEL_STAGES]
    return Table("funnel", _("Funnel"), (Column("stage", _("Stage"), TEXT), Column("count", _("Count"))), rows)


def dashboard_tables(report):
    """The dashboard's tables, by name (the name is also the CSV export's `table` parameter)."""
    currency = report["revenue"]["currency"]
    tables = [
        daily_table(report["daily"], currency),
        Table("subscribers", _("Reachable subscribers by channel"),
              (Column("day", _("Day"), DAY),) + tuple(
                  Column(channel, DeliveryChannel(channel).label) for channel in ("push", "sms", "whatsapp", "email")),
              report["subscribers_by_channel"]),
        Table("campaigns", _("Top campaigns"), SOURCE_COLUMNS, report["top_campaigns"], currency, _campaign_link,
              _("No campaign sent messages in this period.")),
        Table("journeys", _("Top journeys"), SOURCE_COLUMNS, report["top_journeys"], currency, _journey_link,
              _("No journey sent messages in this period.")),
        Table("failures", _("Deliverability problems"),
              (Column("channel", _("Channel"), CHANNEL), Column("reason", _("Reason"), TEXT),
               Column("count", _("Messages"))),
              report["failures_by_reason"], empty=_("No failed messages in this period.")),
    ]
    return {table.name: table for table in tables}


def campaign_tables(report, currency):
    # The winner is named only when its difference is significant, whatever else marked it.
    variant_rows = [{**row, "winner": row["is_winner_label"] and row["significant"]} for row in report["variants"]]
    variants = Table("variants", _("Variants"), (Column("label", _("Variant"), TEXT),) + METRIC_COLUMNS + (
        Column("confidence", _("Confidence"), RATE), Column("probability_to_beat", _("Chance to beat A"), RATE),
        Column("winner", _("Result"), WINNER)), variant_rows, currency)
    tables = [
        funnel_table(report["totals"]),
        variants,
        Table("channels", _("By channel"), (Column("channel", _("Channel"), CHANNEL),) + METRIC_COLUMNS,
              report["channels"], currency),
        Table("suppressed", _("Suppressed by reason"), (Column("reason", _("Reason"), TEXT),
                                                       Column("count", _("Messages"))),
              report["suppressed_by_reason"], empty=_("Nobody was suppressed.")),
        daily_table(report["daily"], currency),
    ]
    if report["lift"]:
        tables.append(Table("lift", _("Lift over the hold-out group"), (
            Column("messaged", _("Messaged")), Column("messaged_converted", _("Messaged and converted")),
            Column("messaged_rate", _("Messaged conversion"), RATE), Column("control", _("Hold-out group")),
            Column("control_converted", _("Hold-out converted")), Column("control_rate", _("Hold-out conversion"), RATE),
            Column("lift", _("Lift (difference)"), RATE),
            # A literal per cent sign, never interpolated: without this xgettext flags the string python-format
            # and msgfmt then rejects any translation that does not carry a "% i" directive.
            # xgettext:no-python-format
            Column("ci_low", _("95% interval from"), RATE),
            # xgettext:no-python-format
            Column("ci_high", _("95% interval to"), RATE), Column("relative_lift", _("Relative lift"), RATE)),
            [report["lift"]]))
    return {table.name: table for table in tables}


def journey_tables(report, currency):
    tables = [
        funnel_table(report["totals"]),
        Table("steps", _("By step"), (Column("key", _("Step"), TEXT), Column("label", _("Does"), TEXT))
              + METRIC_COLUMNS, report["steps"], currency, empty=_("The journey has no step that sends a message.")),
        daily_table(report["daily"], currency),
    ]
    return {table.name: table for table in tables}
