"""SQL functions the segment engine calls, for both databases Tanbih runs on.

On PostgreSQL they are created by migration 0004_segments (SQL / PL/pgSQL);
on SQLite (the no-configuration default) the same names are registered on
every new connection as Python functions with the same results. Each one turns
a value a shopper's data may hold in any shape into a number, a time or a
bucket, or NULL: a custom attribute that is not a date must make one condition
false, never fail the query for everyone.
"""
import hashlib
import re
from datetime import UTC, date, datetime

NUMBER = re.compile(r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$")
DATE_START = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")


def bucket_of(subscriber_id, salt=""):
    """The random bucket (0–99) of a shopper for a salt: md5("salt:id"), first 32 bits, mod 100."""
    digest = hashlib.md5(f"{salt}:{subscriber_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 100


def json_number(value):
    """A JSON number or numeric text as a float; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and NUMBER.match(value):
        return float(value)
    return None


def json_timestamp(value):
    """An ISO 8601 text as Django stores times in SQLite (UTC, 'YYYY-MM-DD HH:MM:SS[.ffffff]'); None otherwise."""
    if not isinstance(value, str) or not DATE_START.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return str(parsed.astimezone(UTC).replace(tzinfo=None))


def register_sqlite_functions(sender, connection, **kwargs):
    """connection_created receiver: give a SQLite connection the functions PostgreSQL has from the migration."""
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    raw.create_function("tanbih_jsonb_numeric", 1, json_number, deterministic=True)
    raw.create_function("tanbih_jsonb_timestamptz", 1, json_timestamp, deterministic=True)
    raw.create_function("tanbih_bucket", 2, lambda salt, pk: bucket_of(pk, salt), deterministic=True)
