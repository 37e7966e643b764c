"""Many rows in one query parameter: a JSON array that PostgreSQL turns back into rows of a table's type.

A statement with a placeholder per value (Django's bulk_update, a VALUES list) or an array per column
(bulk_create) makes psycopg parse the query and quote every value in Python: profiled in bench/journeys, that
was most of the CPU a batch of 500 enrolments spent writing its messages and its new state. json.dumps is C,
and `json_populate_recordset(NULL::<table>, %s)` casts each key to its column's type on the server.
"""
import json
from datetime import datetime

from django.db import connection


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_rows(instances, fields):
    """The instances' values of `fields` as a JSON array of {column: value} (datetimes in ISO 8601)."""
    return json.dumps([{field.column: getattr(instance, field.attname) for field in fields} for instance in instances],
                      default=_json_value)


def rows_of(model):
    """The FROM item that reads a json_rows() parameter as rows of the model's table (PostgreSQL)."""
    return f"json_populate_recordset(NULL::{connection.ops.quote_name(model._meta.db_table)}, %s)"
