"""Which message earned an order: last click within the click window, else last view within the view window.

One Attribution row per order (kind "none" when no message qualifies), written
once: the order's row is locked while its attribution is written (the signal's
task waits, the sweep skips), the order column is unique besides, and the
rollup's conversion figures are added in the same transaction as the row, so an
order counts once in every report (docs/analytics.md, Attribution). One batched
implementation serves a single order and a sweep of a thousand.
"""
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.fields.json import KT
from django.utils import timezone

from delivery.models import Message, MessageEvent, MessageEventKind
from journeys.models import SOURCE_TYPE as JOURNEY_SOURCE_TYPE
from subscribers.models import Event, Order

from .models import Attribution, AttributionKind

# Messages that are not marketing: a marketer's test send must not claim a shopper's order.
EXCLUDED_SOURCE_TYPES = ("campaign_test",)
VIEW_KINDS = (MessageEventKind.DISPLAYED, MessageEventKind.DELIVERED)


def click_window_hours():
    return int(settings.ANALYTICS_CLICK_WINDOW_HOURS)


def view_window_hours():
    return int(settings.ANALYTICS_VIEW_WINDOW_HOURS)


def counts_as_revenue(currency):
    """Revenue is summed in the store's currency only (DEFAULT_CURRENCY); other orders still convert."""
    return (currency or "").upper() == str(settings.DEFAULT_CURRENCY).upper()


def _touches(orders, hours):
    """{subscriber id: [(when, event id, kind, message id, (source type, source id, channel))]}: the shoppers'
    clicks, displays and deliveries from `hours` before their earliest order to their latest one.

    One query for a batch of orders (the sweep takes them in time order, so the range stays short); the
    per-order windows are cut from it in Python.
    """
    earliest = min(order.placed_at for order in orders) - timedelta(hours=hours)
    latest = max(order.placed_at for order in orders)
    touches = {}
    for at, pk, kind, message_id, subscriber_id, source_type, source_id, channel in (
            MessageEvent.objects
            .filter(message__subscriber_id__in={order.subscriber_id for order in orders},
                    kind__in=[MessageEventKind.CLICKED, *VIEW_KINDS], occurred_at__gte=earliest,
                    occurred_at__lte=latest)
            .exclude(message__source_type__in=EXCLUDED_SOURCE_TYPES)
            .values_list("occurred_at", "pk", "kind", "message_id", "message__subscriber_id",
                         "message__source_type", "message__source_id", "message__channel")):
        touches.setdefault(subscriber_id, []).append((at, pk, kind, message_id, (source_type, source_id, channel)))
    return touches


def pick_touch(order, touches):
    """-> (kind, message id or None, touched_at or None, (source type, source id, channel) or None): the last
    click within the click window before the order, else the last display or delivery within the view window
    (ties: the later event)."""
    click_from = order.placed_at - timedelta(hours=click_window_hours())
    view_from = order.placed_at - timedelta(hours=view_window_hours())
    mine = [touch for touch in touches if touch[0] <= order.placed_at]
    for kind, candidates in (
            (AttributionKind.CLICK, [t for t in mine if t[2] == MessageEventKind.CLICKED and t[0] >= click_from]),
            (AttributionKind.VIEW, [t for t in mine if t[2] in VIEW_KINDS and t[0] >= view_from])):
        if candidates:
            at, _pk, _kind, message_id, source = max(candidates, key=lambda touch: (touch[0], touch[1]))
            return kind, message_id, at, source
    return AttributionKind.NONE, None, None, None


def cart_keys(cart):
    """The ids a cart goes by in events and message contexts (the store's id, else our pk)."""
    return [key for key in {cart.external_id, str(cart.pk)} if key]


def _abandonments(orders):
    """{(subscriber id, cart key): [abandoned at, …]} for the carts the orders bought."""
    keys = {key for order in orders for key in cart_keys(order.cart)}
    found = {}
    for subscriber_id, cart_id, at in (
            Event.objects.filter(subscriber_id__in={order.subscriber_id for order in orders}, name="cart_abandoned",
                                 occurred_at__lte=max(order.placed_at for order in orders),
                                 properties__cart_id__in=sorted(keys))
            .values_list("subscriber_id", KT("properties__cart_id"), "occurred_at")):
        found.setdefault((subscriber_id, cart_id), []).append(at)
    return found


def _recovery_messages(orders):
    """{subscriber id: [(sent at, pk, source id, {cart keys it names})]}: journey messages that could be theirs."""
    found = {}
    for pk, subscriber_id, sent_at, source_id, cart_id, cart_ref in (
            Message.objects.filter(subscriber_id__in={order.subscriber_id for order in orders},
                                   source_type=JOURNEY_SOURCE_TYPE, sent_at__isnull=False,
                                   sent_at__lte=max(order.placed_at for order in orders))
            .filter(Q(context__has_key="cart_id") | Q(context__cart__has_key="id"))
            .values_list("pk", "subscriber_id", "sent_at", "source_id", KT("context__cart_id"),
                         KT("context__cart__id"))):
        found.setdefault(subscriber_id, []).append((sent_at, pk, source_id, {cart_id, cart_ref} - {None}))
    return found


def pick_recovery(order, abandonments, messages):
    """-> (cart, abandoned_at, message pk, message source id) when the order bought back an abandoned cart after
    a recovery message, else None.

    Recovered: the order's cart had a `cart_abandoned` event before the order, and after its latest such
    abandonment (and before the order) a journey message naming the cart in its context was sent.
    """
    if order.cart is None:
        return None
    keys = set(cart_keys(order.cart))
    abandoned = [at for key in keys for at in abandonments.get((order.subscriber_id, key), [])
                 if at <= order.placed_at]
    if not abandoned:
        return None
    abandoned_at = max(abandoned)
    sent = [row for row in messages.get(order.subscriber_id, [])
            if abandoned_at <= row[0] <= order.placed_at and row[3] & keys]
    if not sent:
        return None
    _sent_at, pk, source_id, _keys = max(sent, key=lambda row: (row[0], row[1]))
    return order.cart, abandoned_at, pk, source_id


def build_many(orders):
    """The unsaved Attribution of each order (reads only, a fixed number of queries for the batch)."""
    if not orders:
        return []
    touches = _touches(orders, max(click_window_hours(), view_window_hours()))
    carted = [order for order in orders if order.cart is not None]
    abandonments = _abandonments(carted) if carted else {}
    messages = _recovery_messages(carted) if abandonments else {}
    now = timezone.now()
    rows = []
    for order in orders:
        kind, message_id, touched_at, source = pick_touch(order, touches.get(order.subscriber_id, []))
        row = Attribution(order=order, kind=kind, value=order.value, currency=order.currency,
                          placed_at=order.placed_at, touched_at=touched_at, attributed_at=now)
        if message_id is not None:
            row.message_id = message_id
            row.source_type, row.source_id, row.channel = source
        recovery = pick_recovery(order, abandonments, messages)
        if recovery is not None:
            row.recovered_cart, row.cart_abandoned_at, row.recovery_message_id, row.recovery_source_id = recovery
        rows.append(row)
    return rows


def _unattributed():
    return Order.objects.filter(~Exists(Attribution.objects.filter(order_id=OuterRef("pk"))))


def _lock(orders):
    """Lock the orders' rows, then leave out those attributed meanwhile: the check is a new statement, so it sees
    a row another worker committed while this one waited (a condition in the locking query would not)."""
    orders = list(orders.select_for_update(of=("self",)).select_related("cart"))
    done = set(Attribution.objects.filter(order_id__in=[order.pk for order in orders])
               .values_list("order_id", flat=True))
    return [order for order in orders if order.pk not in done]


def _save(rows):
    from . import rollups

    Attribution.objects.bulk_create(rows, batch_size=500)
    rollups.add_conversions(rows)


def attribute_order(order):
    """Attribute one order (once): -> (attribution, created).

    The order's row is locked first — the sweep locks the orders it takes too (skipping those held) — so the
    signal's task and the sweep never both write a row, and the rollup's conversion figures are added in the
    transaction that writes the Attribution.
    """
    with transaction.atomic():
        locked = _lock(Order.objects.filter(pk=order.pk))
        if not locked:
            return Attribution.objects.filter(order_id=order.pk).first(), False
        [row] = build_many(locked)
        _save([row])
    return row, True


def attribute_order_by_external_id(external_id):
    order = Order.objects.filter(external_id=str(external_id)).first()
    if order is None:
        return None
    return attribute_order(order)[0]


def sweep(*, limit=1000):
    """Attribute a batch of orders without a row, oldest first (a lost task, an import): -> the number attributed.

    Orders another worker holds are skipped (SKIP LOCKED); the next sweep finds them if still unattributed.
    """
    with transaction.atomic():
        ids = list(_unattributed().select_for_update(of=("self",), skip_locked=True).order_by("placed_at", "pk")
                   .values_list("pk", flat=True)[:limit])
        rows = build_many(_lock(Order.objects.filter(pk__in=ids).order_by("placed_at", "pk")))
        _save(rows)
    return len(ids)
def sweep_all(*, batch=1000):
    """Sweep until no order is left without a row: -> the number attributed."""
    total = 0
    while True:
        done = sweep(limit=batch)
        total += done
        if done < batch:
            return total
