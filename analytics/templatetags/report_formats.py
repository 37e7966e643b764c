"""Template filters for the report pages: the formats of analytics.formats, so cards and tables agree."""
from django import template

from analytics import formats

register = template.Library()

register.filter("count", formats.format_count)
register.filter("rate", formats.format_rate)
register.filter("money", formats.format_money)
register.filter("day", formats.format_day)
