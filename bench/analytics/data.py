"""The analytics benchmark's store: 10,000,000 messages over 90 days, made inside PostgreSQL.

Everything big is INSERT … SELECT over generate_series or over rows made just
before (seeded, so every build sees the same store); only the few hundred
campaigns, variants and journeys go through the ORM, and the journeys come from
the product's own recipes so their steps are real graphs.

What is made, in order (sizes scale with `messages` and `subscribers`):
- shoppers (bench/segments' generator), consents on four channels with their
  history, browsers;
- 20 journeys from the recipes (one abandoned-cart journey fed by the carts) and
  200 one-off campaigns with one to three variants, a quarter with a 10 % hold-out;
- carts over 90 days (abandoned ones enter the abandoned-cart journey) and the
  enrolments of every journey;
- messages: campaigns get 80 % of them with a long-tailed size (the largest
  ≈ 6 % of all), journeys the rest, one message per send step an enrolment
  reached; each message gets a fate by channel: suppressed (with the policy's
  reason), failed (with the provider's code), sent, delivered, displayed, clicked,
  at the rates push, email, SMS and WhatsApp see;
- their MessageEvent history for the kinds that tell what happened to a message
  (queued, sent, delivered, failed, suppressed, displayed, clicked, unsubscribed —
  not the outbox's sending/retry bookkeeping);
- orders: after clicks (within 20 h), after displays (within an hour), from
  abandoned carts after the journey's messages (the cart becomes converted),
  from the hold-out groups, and without any message, up to `orders`;
- cart_abandoned, order_placed and the SDK's push prompt events (shown / accepted
  / declined).

Indexes of the tables loaded in bulk are dropped during the load and built once after.
"""
import time
from datetime import UTC, datetime, timedelta

from bench.segments.run import SUBSCRIBERS_SQL

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the data's "now" (the same as bench/segments')
DAYS = 90
CAMPAIGNS = 200
JOURNEYS = 20
CAMPAIGN_SHARE = 0.8  # of all messages; journeys send the rest
STRIDE = 7919  # prime, so (offset + g * STRIDE) % shoppers walks distinct shoppers
CAMPAIGN_CHANNELS = [["push"], ["push", "email"], ["email"], ["sms"], ["whatsapp"], ["push", "whatsapp"]]
# Loaded in bulk: their indexes are dropped first and built once at the end.
BULK_TABLES = ("subscribers_subscriber", "subscribers_consent", "subscribers_consentchange",
               "subscribers_pushsubscription", "subscribers_cart", "subscribers_event", "subscribers_order",
               "journeys_enrolment", "campaigns_holdoutmember", "delivery_message", "delivery_messageevent")


def log(message):
    print(message, flush=True)


# --- The fate of a message ------------------------------------------------------------------------
# `{base}` yields subscriber_id, channel, template_id, source_type, source_id, occurrence, context, at;
# the outer query gives each row a status and timestamps at its channel's rates.
MESSAGES_SQL = """
INSERT INTO delivery_message (
    idempotency_key, code, subscriber_id, channel, template_id, locale, source_type, source_id, occurrence, lane,
    is_transactional, context, content, push_subscription_id, "to", status, status_reason, attempts, provider,
    provider_id, error, send_at, queued_at, claimed_at, sent_at, delivered_at, failed_at, displayed_at, clicked_at,
    claim_token, dispatched_at)
SELECT k.key, substr(md5(k.key), 1, 24), b.subscriber_id, b.channel, b.template_id, 'ar', b.source_type,
       b.source_id, b.occurrence, 'bulk', false, b.context,
       '{{"title": "سلتك بانتظارك", "body": "أكمل طلبك الآن واحصل على شحن مجاني",
         "click_url": "https://shop.example/cart"}}'::jsonb,
       NULL, '', s.status, s.reason, CASE WHEN s.status = 'suppressed' THEN 0 ELSE 1 END,
       CASE WHEN s.status = 'suppressed' THEN '' ELSE b.channel END, '', '',
       b.ts, b.ts, b.ts, t.sent_at, t.delivered_at, t.failed_at, t.displayed_at, t.clicked_at, '', b.ts
FROM ({base}) b,
     LATERAL (SELECT b.source_type || ':' || b.source_id || ':' || b.subscriber_id || ':' || b.channel || ':'
                     || b.occurrence AS key) k,
     LATERAL (SELECT random() r1, random() r2, random() r3, random() r4, random() r5 WHERE b.subscriber_id > 0) r,
     -- channel rates: delivered of sent, displayed of delivered, clicked of delivered
     LATERAL (SELECT CASE b.channel WHEN 'push' THEN 0.93 WHEN 'email' THEN 0.97 WHEN 'sms' THEN 0.95 ELSE 0.96 END d,
                     CASE b.channel WHEN 'push' THEN 0.55 WHEN 'email' THEN 0.24 WHEN 'sms' THEN 0 ELSE 0.7 END v,
                     CASE b.channel WHEN 'push' THEN 0.05 WHEN 'email' THEN 0.025 WHEN 'sms' THEN 0.035
                          ELSE 0.06 END c) p,
     LATERAL (SELECT CASE WHEN r.r1 < 0.045 THEN 'suppressed' WHEN r.r1 < 0.075 THEN 'failed'
                          WHEN r.r2 < p.d THEN 'delivered' ELSE 'sent' END status,
                     CASE WHEN r.r1 < 0.045 THEN (ARRAY['frequency cap: 3 per day', 'no ' || b.channel || ' consent',
                                                        b.channel || ' consent revoked',
                                                        CASE b.channel WHEN 'push' THEN 'push subscription expired'
                                                             WHEN 'email' THEN 'on the suppression list'
                                                             ELSE 'quiet hours missed' END])[1 + floor(r.r5 * 4)::int]
                          WHEN r.r1 < 0.075 THEN (CASE b.channel
                              WHEN 'push' THEN ARRAY['410', 'endpoint_refused', 'timeout']
                              WHEN 'sms' THEN ARRAY['21610', '30003', '30005']
                              WHEN 'whatsapp' THEN ARRAY['63016', '63024', '30008']
                              ELSE ARRAY['550', '552', 'smtp_connect'] END)[1 + floor(r.r5 * 3)::int]
                          ELSE '' END reason) s,
     LATERAL (SELECT CASE WHEN s.status IN ('sent', 'delivered') THEN b.ts + r.r5 * interval '30 seconds' END sent_at,
                     CASE WHEN s.status = 'delivered' THEN b.ts + r.r5 * interval '40 seconds' END delivered_at,
                     CASE WHEN s.status = 'failed' THEN b.ts + r.r5 * interval '60 seconds' END failed_at,
                     s.status = 'delivered' AND r.r4 < p.c clicked,
                     s.status = 'delivered' AND (r.r3 < p.v OR (p.v > 0 AND r.r4 < p.c)) displayed) f,
     LATERAL (SELECT f.sent_at, f.delivered_at, f.failed_at,
                     CASE WHEN f.displayed THEN f.delivered_at + r.r5 * r.r5 * interval '3 hours' END displayed_at,
                     CASE WHEN f.clicked THEN f.delivered_at + r.r5 * r.r5 * interval '3 hours'
                                              + r.r3 * interval '10 minutes' END clicked_at) t
"""

# One row per campaign message: plan rows (one per campaign) × generate_series(1, size).
CAMPAIGN_BASE = """
SELECT %(first)s + ((p.offset_ + g::bigint * %(stride)s) %% %(shoppers)s) AS subscriber_id,
       p.channels[1 + g %% array_length(p.channels, 1)] AS channel,
       p.templates[1 + g %% array_length(p.labels, 1)] AS template_id, 'campaign' AS source_type,
       p.campaign_id || ':' || p.labels[1 + g %% array_length(p.labels, 1)] AS source_id, '1' AS occurrence,
       '{}'::jsonb AS context, p.start_at + random() * interval '2 hours' AS ts
FROM bench_plan p, generate_series(1, p.size) g
WHERE p.campaign_id BETWEEN %(low)s AND %(high)s
"""

# One row per send step an enrolment reached (bench_steps: a journey's send steps, their order and reach).
JOURNEY_BASE = """
SELECT e.subscriber_id, s.channels[1 + e.id %% array_length(s.channels, 1)] AS channel, s.template_id,
       'journey_step' AS source_type, e.journey_id || ':' || s.key AS source_id,
       e.id || '.' || s.visit AS occurrence,
       CASE WHEN e.context ? 'cart_id' THEN jsonb_build_object('cart_id', e.context->>'cart_id') ELSE '{}' END
           AS context,
       e.entered_at + s.delay AS ts
FROM journeys_enrolment e JOIN bench_steps s ON s.journey_id = e.journey_id
WHERE e.id %% 1000 < s.reach * 1000 AND e.entered_at + s.delay < %(now)s
      AND e.id BETWEEN %(low)s AND %(high)s
"""

EVENTS_SQL = """
INSERT INTO delivery_messageevent (message_id, kind, detail, occurred_at)
SELECT m.id, e.kind, e.detail, e.ts
FROM delivery_message m
CROSS JOIN LATERAL (VALUES
    ('queued', m.queued_at, '{}'::jsonb),
    ('sent', m.sent_at, jsonb_build_object('provider', m.provider)),
    ('delivered', m.delivered_at, '{}'::jsonb),
    ('failed', m.failed_at, jsonb_build_object('reason', m.status_reason)),
    ('suppressed', CASE WHEN m.status = 'suppressed' THEN m.queued_at END, jsonb_build_object('reason', m.status_reason)),
    ('displayed', m.displayed_at, '{}'::jsonb),
    ('clicked', m.clicked_at, '{"url": "https://shop.example/cart"}'::jsonb),
    ('unsubscribed', CASE WHEN m.delivered_at IS NOT NULL AND m.id %% 1000 < 3
                          THEN coalesce(m.clicked_at, m.delivered_at) + interval '2 minutes' END, '{}'::jsonb)
) e(kind, ts, detail)
WHERE e.ts IS NOT NULL AND m.id BETWEEN %(low)s AND %(high)s
"""

SIDE_SQL = [
    # Consents: push for those with a browser below, email for most, SMS / WhatsApp for those with a phone.
    """INSERT INTO subscribers_consent (subscriber_id, channel, status, granted_at, revoked_at, source, evidence,
           updated_at)
       SELECT s.id, c.channel, CASE WHEN s.id %% 11 = 0 THEN 'revoked' ELSE 'granted' END, s.created_at,
              CASE WHEN s.id %% 11 = 0 THEN s.created_at + interval '20 days' END, 'sdk', '{}', s.created_at
       FROM subscribers_subscriber s,
            LATERAL (VALUES ('email', s.id %% 10 < 8), ('push', s.id %% 10 < 6),
                            ('sms', s.phone <> '' AND s.id %% 3 <> 0), ('whatsapp', s.phone <> '' AND s.id %% 2 = 0))
                c(channel, has)
       WHERE c.has""",
    """INSERT INTO subscribers_consentchange (subscriber_id, channel, status, source, evidence, occurred_at)
       SELECT subscriber_id, channel, 'granted', source, '{}'::jsonb, granted_at FROM subscribers_consent
       UNION ALL
       SELECT subscriber_id, channel, 'revoked', source, '{}'::jsonb, revoked_at FROM subscribers_consent
       WHERE revoked_at IS NOT NULL""",
    """INSERT INTO subscribers_pushsubscription (subscriber_id, endpoint, p256dh, auth, user_agent, browser, page_url,
           category, status, failure_count, last_failure_reason, created_at, updated_at)
       SELECT id, 'https://push.bench.example/' || id, 'k', 'a', '', 'chrome', '', '',
              CASE WHEN id %% 13 = 0 THEN 'expired' ELSE 'active' END, 0, '', created_at, created_at
       FROM subscribers_subscriber WHERE id %% 10 < 6""",
    # Carts over the 90 days; 75 % of them are abandoned an hour after the last activity.
    """INSERT INTO subscribers_cart (subscriber_id, external_id, items, value, currency, status, last_activity_at,
           abandoned_at, created_at)
       SELECT %(first)s + floor(random() * %(shoppers)s)::bigint, 'cart-' || g,
              '[{"product_id": "p-1", "quantity": 1}]', c.value, 'SAR',
              CASE WHEN c.r < 0.75 THEN 'abandoned' ELSE 'converted' END, c.ts,
              CASE WHEN c.r < 0.75 THEN c.ts + interval '1 hour' END, c.ts - interval '20 minutes'
       FROM generate_series(1, %(carts)s) g,
            LATERAL (SELECT random() r, 60 + floor(random() * 600) value,
                            %(now)s - random() * %(days)s * interval '1 day' ts WHERE g > 0) c""",
    # The abandoned carts' events, naming the cart as analytics' recovery rule reads it.
    """INSERT INTO subscribers_event (subscriber_id, event_id, name, properties, occurred_at, received_at, source)
       SELECT subscriber_id, 'cart_abandoned:' || id, 'cart_abandoned',
              jsonb_build_object('cart_id', id::text, 'value', value, 'currency', currency), abandoned_at,
              abandoned_at, 'api'
       FROM subscribers_cart WHERE abandoned_at IS NOT NULL""",
    # The SDK's push prompt: shown to shoppers on the site, accepted by about a third.
    """INSERT INTO subscribers_event (subscriber_id, name, properties, occurred_at, received_at, source)
       SELECT %(first)s + floor(random() * %(shoppers)s)::bigint, e.name, '{}', e.ts, e.ts, 'sdk'
       FROM generate_series(1, %(prompts)s) g,
            LATERAL (SELECT %(now)s - random() * %(days)s * interval '1 day' ts, random() r WHERE g > 0) p,
            LATERAL (VALUES ('push_prompt_shown', p.ts, true),
                            ('push_prompt_accepted', p.ts + interval '4 seconds', p.r < 0.33),
                            ('push_prompt_declined', p.ts + interval '6 seconds', p.r >= 0.33 AND p.r < 0.6))
                e(name, ts, happened)
       WHERE e.happened""",
]

# The abandoned-cart journey is entered by every abandoned cart; the other journeys by shoppers at random times.
ENROLMENTS_SQL = [
    """INSERT INTO journeys_enrolment (journey_id, version_id, subscriber_id, status, step, visits, next_run_at,
           is_waiting, waiting_for, context, trigger_key, entered_at, finished_at, exit_reason, is_test)
       SELECT %(journey)s, %(version)s, c.subscriber_id, 'completed', 'end', 6, NULL, false, '',
              jsonb_build_object('cart_id', c.id::text, 'value', c.value, 'currency', c.currency),
              'cart_abandoned:' || c.id, c.abandoned_at, c.abandoned_at + interval '3 days', '', false
       FROM subscribers_cart c WHERE c.abandoned_at IS NOT NULL""",
    """INSERT INTO journeys_enrolment (journey_id, version_id, subscriber_id, status, step, visits, next_run_at,
           is_waiting, waiting_for, context, trigger_key, entered_at, finished_at, exit_reason, is_test)
       SELECT j.journey_id, j.version_id, %(first)s + ((j.offset_ + g::bigint * %(stride)s) %% %(shoppers)s),
              CASE WHEN e.ts > %(now)s - interval '3 days' AND e.r < 0.5 THEN 'active'
                   WHEN e.r < 0.12 THEN 'converted' WHEN e.r < 0.35 THEN 'exited' ELSE 'completed' END,
              'end', 3, NULL, false, '', '{}', '', e.ts,
              CASE WHEN e.ts > %(now)s - interval '3 days' AND e.r < 0.5 THEN NULL ELSE e.ts + interval '2 days' END,
              CASE WHEN e.r >= 0.12 AND e.r < 0.35 THEN 'time limit' ELSE '' END, false
       FROM bench_journeys j, generate_series(1, j.size) g,
            LATERAL (SELECT %(now)s - random() * %(days)s * interval '1 day' ts, random() r WHERE g > 0) e""",
]

ORDERS_SQL = {
    # A fifth of the clicks on campaign and non-cart journey messages lead to an order within 20 hours.
    "after a click": """
        SELECT m.subscriber_id, NULL::bigint cart_id, m.clicked_at + random() * interval '20 hours' ts
        FROM delivery_message m
        WHERE m.clicked_at IS NOT NULL AND NOT m.context ? 'cart_id' AND random() < 0.2""",
    "after a display": """
        SELECT m.subscriber_id, NULL::bigint, m.displayed_at + random() * interval '50 minutes'
        FROM delivery_message m
        WHERE m.displayed_at IS NOT NULL AND m.clicked_at IS NULL AND NOT m.context ? 'cart_id'
              AND random() < 0.004""",
    # An abandoned cart bought after a click on (45 %) or a display of (2 %) the journey's message: one order a cart.
    "abandoned cart after a message": """
        SELECT DISTINCT ON (cart_id) subscriber_id, cart_id, ts FROM (
            SELECT m.subscriber_id, (m.context->>'cart_id')::bigint cart_id,
                   coalesce(m.clicked_at, m.delivered_at) + random() * interval '3 hours' ts
            FROM delivery_message m
            WHERE m.context ? 'cart_id' AND m.delivered_at IS NOT NULL
                  AND random() < CASE WHEN m.clicked_at IS NOT NULL THEN 0.45 ELSE 0.02 END) o
        ORDER BY cart_id, ts""",
    # Some abandoned carts come back on their own.
    "abandoned cart, no message": """
        SELECT c.subscriber_id, c.id, c.abandoned_at + random() * interval '48 hours'
        FROM subscribers_cart c
        WHERE c.status = 'abandoned' AND random() < 0.04
              AND NOT EXISTS (SELECT 1 FROM subscribers_order o WHERE o.cart_id = c.id)""",
    "cart bought at once": """
        SELECT c.subscriber_id, c.id, c.last_activity_at + interval '5 minutes'
        FROM subscribers_cart c WHERE c.status = 'converted' AND c.abandoned_at IS NULL""",
    # The control group buys too, less often than those messaged (the lift).
    "hold-out": """
        SELECT h.subscriber_id, NULL::bigint, c.started_at + random() * interval '24 hours'
        FROM campaigns_holdoutmember h JOIN campaigns_campaign c ON c.id = h.campaign_id
        WHERE random() < 0.006""",
    "no message": """
        SELECT %(first)s + floor(random() * %(shoppers)s)::bigint, NULL::bigint,
               %(now)s - random() * %(days)s * interval '1 day'
        FROM generate_series(1, %(organic)s) g""",
}

ORDER_INSERT = """
INSERT INTO subscribers_order (subscriber_id, external_id, cart_id, items, value, currency, status, placed_at,
    updated_at)
SELECT o.subscriber_id, 'order-' || nextval('bench_order'), o.cart_id, '[]',
       coalesce(c.value, 60 + floor(random() * 540)), 'SAR', 'paid', o.ts, o.ts
FROM ({select}) o(subscriber_id, cart_id, ts) LEFT JOIN subscribers_cart c ON c.id = o.cart_id
WHERE o.ts < %(now)s
"""

AFTER_ORDERS_SQL = [
    ("abandoned carts bought", """UPDATE subscribers_cart c SET status = 'converted', converted_at = o.placed_at
       FROM subscribers_order o WHERE o.cart_id = c.id AND c.abandoned_at IS NOT NULL"""),
    ("carts bought at once", """UPDATE subscribers_cart c SET converted_at = o.placed_at
       FROM subscribers_order o WHERE o.cart_id = c.id AND c.abandoned_at IS NULL"""),
    ("cart enrolments converted", """UPDATE journeys_enrolment e SET status = 'converted', exit_reason = '', finished_at = c.converted_at
       FROM subscribers_cart c
       WHERE e.context ? 'cart_id' AND c.id = (e.context->>'cart_id')::bigint AND c.converted_at IS NOT NULL"""),
    ("order_placed events", """INSERT INTO subscribers_event (subscriber_id, event_id, name, properties, occurred_at, received_at, source)
       SELECT subscriber_id, external_id, 'order_placed',
              jsonb_build_object('order_id', external_id, 'value', value, 'currency', currency), placed_at,
              placed_at, 'api'
       FROM subscribers_order"""),
]


def campaign_sizes(total, count=CAMPAIGNS, shoppers=1_000_000):
    """A long tail: the n-th campaign reaches ∝ n^-0.7 shoppers (the largest ≈ 6 % of all messages)."""
    weights = [(n + 1) ** -0.7 for n in range(count)]
    scale = total / sum(weights)
    return [min(shoppers - shoppers // 9, max(200, round(w * scale))) for w in weights]


def make_objects(cursor, messages, shoppers):
    """Templates, journeys (from the recipes), campaigns and variants: a few hundred rows through the ORM."""
    import random

    from campaigns.models import Campaign, CampaignStatus, Variant
    from journeys.models import Journey, JourneyStatus
    from journeys.recipes import RECIPES, create_from_recipe

    rng = random.Random(42)
    slugs = list(RECIPES)
    journeys = [create_from_recipe(slugs[n % len(slugs)]) for n in range(JOURNEYS)]
    Journey.objects.update(status=JourneyStatus.ACTIVE, created_at=NOW.replace(year=2026, month=8, day=1))
    from delivery.models import MessageTemplate

    template_ids = list(MessageTemplate.objects.order_by("pk").values_list("pk", flat=True))
    campaigns = []
    sizes = campaign_sizes(round(messages * CAMPAIGN_SHARE), shoppers=shoppers)
    for n, size in enumerate(sizes):
        start = NOW - timedelta(days=rng.uniform(1, DAYS - 1))
        start = start.replace(hour=rng.choice([9, 11, 14, 17, 19, 20]), minute=0, second=0, microsecond=0)
        campaigns.append(Campaign(
            name=f"Campaign {n + 1}: " + rng.choice(["White Friday", "New arrivals", "Weekend offer", "Eid gifts",
                                                     "Back to school", "Free shipping", "Flash sale"]),
            status=CampaignStatus.COMPLETED, channels=CAMPAIGN_CHANNELS[n % len(CAMPAIGN_CHANNELS)],
            holdout_percent=10 if n % 4 == 0 else 0, test_percent=20 if n % 3 == 0 else 0,
            conversion_window_hours=24, created_at=start, scheduled_at=start, started_at=start,
            completed_at=start.replace(hour=23)))
    campaigns = Campaign.objects.bulk_create(campaigns)
    variants, plan = [], []
    for n, (campaign, size) in enumerate(zip(campaigns, sizes)):
        labels = "ABC" if n % 10 == 0 else "AB" if n % 3 == 0 else "A"
        chosen = [rng.choice(template_ids) for _label in labels]
        variants += [Variant(campaign=campaign, label=label, template_id=t) for label, t in zip(labels, chosen)]
        plan.append((campaign.pk, size, rng.randrange(shoppers), campaign.channels, list(labels), chosen,
                     campaign.started_at, campaign.holdout_percent))
    Variant.objects.bulk_create(variants)
    cursor.execute("CREATE TEMP TABLE bench_plan (campaign_id bigint, size int, offset_ int, channels text[], "
                   "labels text[], templates bigint[], start_at timestamptz, holdout int)")
    cursor.executemany("INSERT INTO bench_plan VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", plan)
    return journeys


def plan_journeys(cursor, journeys, journey_messages, shoppers):
    """bench_steps (each journey's send steps, their delay and reach) and bench_journeys (enrolments to make)."""
    import random

    from delivery.models import MessageTemplate

    rng = random.Random(7)
    templates = dict(MessageTemplate.objects.values_list("slug", "pk"))
    steps, sizes = [], []
    for journey in journeys:
        graph = journey.current_version.steps
        sends = _send_steps(graph)
        reach = 1.0
        for visit, (key, step, delay_minutes) in enumerate(sends, start=1):
            steps.append((journey.pk, key, visit, f"{delay_minutes} minutes", round(reach, 2), step["channels"],
                          templates.get(step["template"])))
            reach *= 0.6
        sizes.append((journey, sum(0.6 ** n for n in range(len(sends)))))
    cursor.execute("CREATE TEMP TABLE bench_steps (journey_id bigint, key text, visit int, delay interval, "
                   "reach float, channels text[], template_id bigint)")
    cursor.executemany("INSERT INTO bench_steps VALUES (%s, %s, %s, %s, %s, %s, %s)", steps)
    # The abandoned-cart journey's enrolments come from the carts; the others share what is left.
    cart_journey = next(j for j in journeys if j.recipe == "abandoned-cart")
    others = [(journey, per) for journey, per in sizes if journey is not cart_journey]
    cursor.execute("SELECT count(*) FROM subscribers_cart WHERE abandoned_at IS NOT NULL")
    cart_messages = cursor.fetchone()[0] * dict((j.pk, per) for j, per in sizes)[cart_journey.pk]
    left = max(0, journey_messages - cart_messages)
    weights = [rng.uniform(0.3, 1.7) for _ in others]
    rows = [(journey.pk, journey.current_version_id, min(shoppers, round(left * w / sum(weights) / per)),
             rng.randrange(shoppers)) for (journey, per), w in zip(others, weights)]
    cursor.execute("CREATE TEMP TABLE bench_journeys (journey_id bigint, version_id bigint, size int, offset_ int)")
    cursor.executemany("INSERT INTO bench_journeys VALUES (%s, %s, %s, %s)", rows)
    return cart_journey


def _send_steps(graph):
    """The send steps in the order a shopper meets them from the start (breadth first through branches), with
    the waiting before each in minutes."""
    found, seen, queue = [], set(), [(graph["start"], 0)]
    while queue:
        key, minutes = queue.pop(0)
        step = graph["steps"].get(key)
        if key in seen or step is None:
            continue
        seen.add(key)
        minutes += (step.get("minutes", 0) + 60 * step.get("hours", 0) + 1440 * step.get("days", 0)
                    + step.get("timeout_minutes", 0))
        if step.get("type") == "send":
            found.append((key, step, max(1, minutes)))
        following = [step.get("next"), step.get("yes"), step.get("no")]
        following += [path.get("next") for path in step.get("paths") or [] if isinstance(path, dict)]
        queue += [(name, minutes) for name in following if name]
    return found


def _swap_indexes(cursor, tables):
    """Drop the tables' indexes and unique constraints (not the primary keys); -> the statements that rebuild them."""
    rebuild = []
    for table in tables:
        cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = %s::regclass AND contype = 'u'", [table])
        for name, definition in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
                       "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)", [table, table])
        for name, definition in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
            rebuild.append(definition)
    return rebuild


def _timed(cursor, label, sql, params, started):
    cursor.execute(sql, params)
    log(f"  {label}: {cursor.rowcount:,} rows ({time.perf_counter() - started:.0f}s)")
    return cursor.rowcount


def _in_ranges(cursor, label, sql, params, table, column, chunks, started):
    cursor.execute(f"SELECT min({column}), max({column}) FROM {table}")
    low, high = cursor.fetchone()
    total = 0
    if low is None:
        return 0
    step = (high - low) // chunks + 1
    for start in range(low, high + 1, step):
        total += _timed(cursor, label, sql, {**params, "low": start, "high": start + step - 1}, started)
    return total


def build(messages, shoppers, orders):
    """Make the whole store (after emptying it); -> {"seconds": …, counts …}."""
    from django.db import connection, transaction

    started = time.perf_counter()
    params = {"now": NOW, "shoppers": shoppers, "count": shoppers, "days": DAYS, "stride": STRIDE}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        cursor.execute("TRUNCATE subscribers_subscriber, delivery_messagetemplate, campaigns_campaign, "
                       "journeys_journey RESTART IDENTITY CASCADE")
        rebuild = _swap_indexes(cursor, BULK_TABLES)
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SELECT setseed(0.42)")
        _timed(cursor, "shoppers", SUBSCRIBERS_SQL, params, started)
        cursor.execute("SELECT min(id) FROM subscribers_subscriber")
        params["first"] = cursor.fetchone()[0]
        params.update(carts=round(orders * 1.3), prompts=round(shoppers * 0.4))
        for sql in SIDE_SQL:
            _timed(cursor, sql.split("INSERT INTO ")[1].split()[0], sql, params, started)
        journeys = make_objects(cursor, messages, shoppers)
        cart_journey = plan_journeys(cursor, journeys, messages - round(messages * CAMPAIGN_SHARE), shoppers)
        cursor.execute("ANALYZE")
        _timed(cursor, "abandoned-cart enrolments", ENROLMENTS_SQL[0],
               {**params, "journey": cart_journey.pk, "version": cart_journey.current_version_id}, started)
        _timed(cursor, "other enrolments", ENROLMENTS_SQL[1], params, started)
        cursor.execute("SELECT min(campaign_id), max(campaign_id) FROM bench_plan")
        low, high = cursor.fetchone()
        for start in range(low, high + 1, 20):
            _timed(cursor, f"campaign messages {start}–{min(high, start + 19)}",
                   MESSAGES_SQL.format(base=CAMPAIGN_BASE), {**params, "low": start, "high": start + 19}, started)
        _in_ranges(cursor, "journey messages", MESSAGES_SQL.format(base=JOURNEY_BASE), params,
                   "journeys_enrolment", "id", 4, started)
        _timed(cursor, "hold-out members", """
            INSERT INTO campaigns_holdoutmember (campaign_id, occurrence, subscriber_id, added_at)
            SELECT p.campaign_id, '1', %(first)s + ((p.offset_ + g::bigint * %(stride)s) %% %(shoppers)s), p.start_at
            FROM bench_plan p, generate_series(p.size + 1, p.size + p.size * p.holdout / (100 - p.holdout)) g
            WHERE p.holdout > 0""", params, started)
        cursor.execute("SET LOCAL enable_seqscan = off")  # each range of ids through the primary key
        _in_ranges(cursor, "message events", EVENTS_SQL, params, "delivery_message", "id", 8, started)
        cursor.execute("SET LOCAL enable_seqscan = on")
        cursor.execute("CREATE TEMP SEQUENCE bench_order")
        made = 0
        for label, select in ORDERS_SQL.items():
            if label == "no message":
                params["organic"] = max(0, orders - made)
            made += _timed(cursor, f"orders {label}", ORDER_INSERT.format(select=select), params, started)
        for label, sql in AFTER_ORDERS_SQL:
            _timed(cursor, label, sql, params, started)
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
        for statement in rebuild:
            cursor.execute(statement)
            log(f"  {statement[:90]}… ({time.perf_counter() - started:.0f}s)")
    with connection.cursor() as cursor:
        for table in ("delivery_message", "delivery_messageevent", "subscribers_order", "subscribers_cart",
                      "journeys_enrolment", "subscribers_event", "subscribers_subscriber"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("ANALYZE")
    seconds = time.perf_counter() - started
    log(f"Generated in {seconds:.0f}s.")
    return seconds


def counts():
    """What the database holds: exact counts of the small tables, the planner's estimate of the big ones."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT (SELECT count(*) FROM subscribers_subscriber), (SELECT count(*) FROM campaigns_campaign),
                   (SELECT count(*) FROM journeys_journey), (SELECT count(*) FROM subscribers_order),
                   (SELECT count(*) FROM subscribers_cart WHERE abandoned_at IS NOT NULL),
                   (SELECT reltuples::bigint FROM pg_class WHERE relname = 'delivery_message'),
                   (SELECT reltuples::bigint FROM pg_class WHERE relname = 'delivery_messageevent'),
                   pg_database_size(current_database())""")
        row = cursor.fetchone()
    keys = ("subscribers", "campaigns", "journeys", "orders", "abandoned_carts", "messages", "message_events",
            "database_bytes")
    return dict(zip(keys, row))


def ensure(messages, shoppers, orders, *, rebuild=False):
    """Reuse the database when it holds this store already (±2 % messages); else build it. -> (counts, seconds)."""
    have = counts()
    if (not rebuild and have["subscribers"] == shoppers and have["campaigns"] == CAMPAIGNS
            and abs((have["messages"] or 0) - messages) <= messages * 0.02):
        log(f"Data already there: {have['messages']:,} messages, {have['subscribers']:,} shoppers "
            f"({have['database_bytes'] / 2**30:.1f} GiB).")
        return have, None
    log(f"Generating {messages:,} messages for {shoppers:,} shoppers in PostgreSQL…")
    seconds = build(messages, shoppers, orders)
    have = counts()
    log(f"{have['messages']:,} messages, {have['message_events']:,} message events, {have['orders']:,} orders; "
        f"database {have['database_bytes'] / 2**30:.1f} GiB.")
    return have, seconds
