"""The analytics tables for the bench store, set-based, when the product's backfill would take hours.

The product attributes one order at a time (analytics.attribution.sweep, ~60 ms
an order on this machine) and its rollup rebuild marks every message event
rolled up (an UPDATE of each of them, ~0.2 ms a row here): fine for a day of
traffic, hours for 300,000 orders and 33,000,000 events. The benchmark times the
product paths on a slice (and on a small store, whole), and writes the rest
with the statements below, which follow the same rules:

- Attribution: the shopper's last click within the click window before the
  order, else the last display or delivery within the view window (ties: the
  later event id), campaign_test messages left out; a cart order is a recovery
  when the cart had a cart_abandoned event before the order and a journey
  message naming the cart was sent between the two (the latest).
- DailyRollup / ReasonRollup: message events by store-timezone day, source and
  channel, without marking them; the generated history has one event per
  message and kind, so "the first event of its kind" is every event.
  Conversions come from the product's own `_conversions_from_attributions`,
  subscribers per channel from its `refresh_subscriber_daily`.

`check_against_product` compares these rows with the product's on the same
database (run it on a small store the product backfilled: `--check-fill`).
"""
from django.conf import settings
from django.db import connection, transaction

from analytics import rollups
from analytics.attribution import EXCLUDED_SOURCE_TYPES, click_window_hours, view_window_hours

ATTRIBUTIONS_SQL = """
INSERT INTO analytics_attribution (order_id, message_id, kind, value, currency, source_type, source_id, channel,
    touched_at, placed_at, attributed_at, recovered_cart_id, cart_abandoned_at, recovery_message_id,
    recovery_source_id)
SELECT o.id, t.message_id, coalesce(t.kind, 'none'), o.value, o.currency, coalesce(m.source_type, ''),
       coalesce(m.source_id, ''), coalesce(m.channel, ''), t.occurred_at, o.placed_at, now(),
       CASE WHEN r.id IS NOT NULL THEN o.cart_id END, CASE WHEN r.id IS NOT NULL THEN a.occurred_at END,
       r.id, coalesce(r.source_id, '')
FROM subscribers_order o
LEFT JOIN LATERAL (
    SELECT * FROM (
        (SELECT 'click' AS kind, e.message_id, e.occurred_at, 1 AS rank
         FROM delivery_messageevent e JOIN delivery_message mm ON mm.id = e.message_id
         WHERE mm.subscriber_id = o.subscriber_id AND e.kind = 'clicked' AND mm.source_type <> ALL(%(excluded)s)
               AND e.occurred_at BETWEEN o.placed_at - %(click)s * interval '1 hour' AND o.placed_at
         ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)
        UNION ALL
        (SELECT 'view', e.message_id, e.occurred_at, 2
         FROM delivery_messageevent e JOIN delivery_message mm ON mm.id = e.message_id
         WHERE mm.subscriber_id = o.subscriber_id AND e.kind IN ('displayed', 'delivered')
               AND mm.source_type <> ALL(%(excluded)s)
               AND e.occurred_at BETWEEN o.placed_at - %(view)s * interval '1 hour' AND o.placed_at
         ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)) touches
    ORDER BY rank LIMIT 1) t ON true
LEFT JOIN delivery_message m ON m.id = t.message_id
LEFT JOIN subscribers_cart c ON c.id = o.cart_id
LEFT JOIN LATERAL (
    SELECT ev.occurred_at FROM subscribers_event ev
    WHERE ev.subscriber_id = o.subscriber_id AND ev.name = 'cart_abandoned' AND ev.occurred_at <= o.placed_at
          AND ev.properties->>'cart_id' IN (c.external_id, c.id::text)
    ORDER BY ev.occurred_at DESC LIMIT 1) a ON c.id IS NOT NULL
LEFT JOIN LATERAL (
    SELECT rm.id, rm.source_id FROM delivery_message rm
    WHERE rm.subscriber_id = o.subscriber_id AND rm.source_type = 'journey_step'
          AND rm.sent_at BETWEEN a.occurred_at AND o.placed_at
          AND (rm.context->>'cart_id' IN (c.external_id, c.id::text)
               OR rm.context->'cart'->>'id' IN (c.external_id, c.id::text))
    ORDER BY rm.sent_at DESC, rm.id DESC LIMIT 1) r ON a.occurred_at IS NOT NULL
WHERE NOT EXISTS (SELECT 1 FROM analytics_attribution x WHERE x.order_id = o.id)
"""

DAILY_SQL = """
INSERT INTO {table} (day, source_type, source_id, channel, targeted, sent, delivered, displayed, clicked, failed,
    suppressed, unsubscribed, converted_click, converted_view, revenue_click, revenue_view)
SELECT (e.occurred_at AT TIME ZONE %(zone)s)::date, m.source_type, m.source_id, m.channel,
       count(*) FILTER (WHERE e.kind = 'queued'), count(*) FILTER (WHERE e.kind = 'sent'),
       count(*) FILTER (WHERE e.kind = 'delivered'), count(*) FILTER (WHERE e.kind = 'displayed'),
       count(*) FILTER (WHERE e.kind = 'clicked'), count(*) FILTER (WHERE e.kind = 'failed'),
       count(*) FILTER (WHERE e.kind = 'suppressed'), count(*) FILTER (WHERE e.kind = 'unsubscribed'), 0, 0, 0, 0
FROM delivery_messageevent e JOIN delivery_message m ON m.id = e.message_id
WHERE e.kind IN ('queued', 'sent', 'delivered', 'displayed', 'clicked', 'failed', 'suppressed', 'unsubscribed')
GROUP BY 1, 2, 3, 4
"""

REASONS_SQL = """
INSERT INTO {table} (day, source_type, source_id, channel, outcome, reason, count)
SELECT (e.occurred_at AT TIME ZONE %(zone)s)::date, m.source_type, m.source_id, m.channel, e.kind,
       left(coalesce(nullif(e.detail->>'reason', ''), nullif(e.detail->>'code', ''), e.detail->>'status', ''), 300),
       count(*)
FROM delivery_messageevent e JOIN delivery_message m ON m.id = e.message_id
WHERE e.kind IN ('failed', 'suppressed')
GROUP BY 1, 2, 3, 4, 5, 6
"""


def _params():
    return {"zone": settings.STORE_TIMEZONE, "excluded": list(EXCLUDED_SOURCE_TYPES),
            "click": click_window_hours(), "view": view_window_hours()}


def attribute_rest():
    """Attribution rows for every order that has none: -> rows written."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(ATTRIBUTIONS_SQL, _params())
        return cursor.rowcount


def roll_up_everything(daily="analytics_dailyrollup", reasons="analytics_reasonrollup"):
    """The rollups from scratch: every event, the attributed orders, subscribers per channel (product code)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")  # one hash of the messages, not dozens of batches on disk
        cursor.execute(f"DELETE FROM {daily}")
        cursor.execute(f"DELETE FROM {reasons}")
        cursor.execute(DAILY_SQL.format(table=daily), _params())
        cursor.execute(REASONS_SQL.format(table=reasons), _params())
        if daily == "analytics_dailyrollup":
            rollups.add_daily(rollups._conversions_from_attributions())
            cursor.execute("DELETE FROM analytics_subscriberdaily")
            rollups.refresh_subscriber_daily()


def check_against_product():
    """Differences between the product's rollups and attributions and this module's, on the same database."""
    columns = "targeted, sent, delivered, displayed, clicked, failed, suppressed, unsubscribed"
    problems = []
    with connection.cursor() as cursor:
        for table in ("analytics_dailyrollup", "analytics_reasonrollup"):
            cursor.execute(f"CREATE TEMP TABLE bench_{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY)")
        roll_up_everything("bench_analytics_dailyrollup", "bench_analytics_reasonrollup")
        key = "day, source_type, source_id, channel"
        for left, right in (("analytics_dailyrollup", "bench_analytics_dailyrollup"),
                            ("bench_analytics_dailyrollup", "analytics_dailyrollup")):
            # Rows holding only conversions (orders on a day the source had no events) are not event rows.
            cursor.execute(f"SELECT count(*) FROM (SELECT {key}, {columns} FROM {left} "
                           f"WHERE {columns.replace(', ', ' + ')} > 0 "
                           f"EXCEPT SELECT {key}, {columns} FROM {right}) d")
            problems += [f"{left} rows not in {right}: {cursor.fetchone()[0]}"]
        for left, right in (("analytics_reasonrollup", "bench_analytics_reasonrollup"),
                            ("bench_analytics_reasonrollup", "analytics_reasonrollup")):
            cursor.execute(f"SELECT count(*) FROM (SELECT {key}, outcome, reason, count FROM {left} "
                           f"EXCEPT SELECT {key}, outcome, reason, count FROM {right}) d")
            problems += [f"{left} rows not in {right}: {cursor.fetchone()[0]}"]
        fields = ("order_id, message_id, kind, source_type, source_id, channel, touched_at, recovered_cart_id, "
                  "cart_abandoned_at, recovery_message_id, recovery_source_id")
        cursor.execute(f"CREATE TEMP TABLE bench_product_attribution AS SELECT {fields} FROM analytics_attribution")
        with transaction.atomic():
            cursor.execute("DELETE FROM analytics_attribution")
            cursor.execute(ATTRIBUTIONS_SQL, _params())
            cursor.execute(f"SELECT count(*) FROM (SELECT {fields} FROM bench_product_attribution EXCEPT "
                           f"SELECT {fields} FROM analytics_attribution) d")
            problems += [f"product attributions not matched: {cursor.fetchone()[0]}"]
            transaction.set_rollback(True)
    return problems
