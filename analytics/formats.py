"""Numbers, money, rates and days formatted for the active language, one way for every report.

Django's l10n decides the separators (its `ar` and `en` formats), so a figure reads the same in a report
table, a chart's axis (the separators travel with the chart's data, see `separators`) and the rest of the
marketer UI. Babel (pinned in requirements.txt) only supplies what Django lacks: a currency's local symbol and
whether the locale writes it before or after the amount.
"""
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.numbers import get_currency_symbol
from django.utils import dateformat, formats
from django.utils.numberformat import format as number_format
from django.utils.translation import get_language, to_locale


def _locale():
    try:
        return Locale.parse(to_locale(get_language() or "en"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def _grouped(value, decimal_pos=None):
    return number_format(value, formats.get_format("DECIMAL_SEPARATOR"), decimal_pos,
                         3, formats.get_format("THOUSAND_SEPARATOR"), force_grouping=True)


def format_count(value):
    """A whole number with the locale's thousands separator; an em dash for a missing figure."""
    if value is None:
        return "—"
    return _grouped(int(value))


def format_rate(value, decimal_pos=1):
    """A ratio in [0, 1] (or a lift, which may be negative) as a percentage; an em dash when undefined."""
    if value is None:
        return "—"
    return f"{_grouped(Decimal(str(value)) * 100, decimal_pos)}%"


def format_money(value, currency):
    """An amount with the currency's local symbol on the side the locale writes it (ر.س. after, SAR before)."""
    if value is None:
        return "—"
    amount = _grouped(Decimal(str(value)), 2)
    if not currency:
        return amount
    symbol = currency_symbol(currency)
    return f"{symbol['symbol']}\u00a0{amount}" if symbol["before"] else f"{amount}\u00a0{symbol['symbol']}"


def currency_symbol(currency):
    """The currency's symbol in the active language and whether it is written before the amount."""
    locale = _locale()
    pattern = locale.currency_formats["standard"].pattern.split(";")[0].strip("\u200e\u200f ")
    return {"symbol": get_currency_symbol(currency, locale=locale), "before": pattern.startswith("¤")}


def format_day(day):
    """A calendar day as the locale writes a month and day (23 November / 23 نوفمبر)."""
    if day is None:
        return "—"
    return dateformat.format(day, formats.get_format("MONTH_DAY_FORMAT"))


def separators():
    """The active locale's decimal and thousands separators, for a chart's axis labels drawn in the browser."""
    return {"decimal": formats.get_format("DECIMAL_SEPARATOR"),
            "thousands": formats.get_format("THOUSAND_SEPARATOR")}
