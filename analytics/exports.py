"""A report table as a CSV download that is safe to open in a spreadsheet.

Campaign names, step labels and failure reasons come from marketers and providers; a cell that starts with
= + - @ (or a tab or carriage return) would run as a formula in Excel or LibreOffice, so such text gets a
leading apostrophe (OWASP's advice). Numbers we computed are written as numbers. A UTF-8 byte-order mark lets
Excel read Arabic names correctly.
"""
import csv

from django.http import HttpResponse
from django.utils import timezone

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """The value to write: text that a spreadsheet would read as a formula is prefixed with an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(table, prefix):
    """Download `table` (analytics.tables.Table) as `<prefix>-<table>-<date>.csv`."""
    filename = f"{prefix}-{table.name}-{timezone.localdate().isoformat()}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    response.write("\ufeff")
    writer = csv.writer(response)
    for row in table.export_rows():
        writer.writerow([safe_cell(value) for value in row])
    return response
