"""Which message earned an order: last click within the click window, else last view within the view window.

One Attribution row per order (kind "none" when no message qualifies), written
once: the unique order column decides between two workers, and the rollup's
conversion figures are added in the same transaction as the row, so an order
counts once in every report (docs/analytics.md, Attribution).
"""
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
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


def _touches(order, hours):
    """The shopper's clicks, displays and deliveries in the `hours` before the order: [(when, event id, kind,
    message id, (source type, source id, channel))].

    From the shopper's own messages (their index) to those messages' events (the message + kind index),
    so the cost follows one shopper's history, never the store's traffic in the window.
    """
    sources = {pk: (source_type, source_id, channel) for pk, source_type, source_id, channel in
               Message.objects.filter(subscriber_id=order.subscriber_id, queued_at__lte=order.placed_at)
               .exclude(source_type__in=EXCLUDED_SOURCE_TYPES)
               .values_list("pk", "source_type", "source_id", "channel")}
    if not sources:
        return []
    events = (MessageEvent.objects
              .filter(message_id__in=list(sources), kind__in=[MessageEventKind.CLICKED, *VIEW_KINDS],
                      occurred_at__gte=order.placed_at - timedelta(hours=hours), occurred_at__lte=order.placed_at)
              .values_list("occurred_at", "pk", "kind", "message_id"))
    return [(at, pk, kind, message_id, sources[message_id]) for at, pk, kind, message_id in events]


def find_touch(order):
    """-> (kind, message id or None, touched_at or None, (source type, source id, channel) or None): the last
    click within the click window, else the last display or delivery within the view window (ties: the later
    event)."""
    clicks, views = click_window_hours(), view_window_hours()
    touches = _touches(order, max(clicks, views))
    click_from, view_from = order.placed_at - timedelta(hours=clicks), order.placed_at - timedelta(hours=views)
    for kind, candidates in (
            (AttributionKind.CLICK, [t for t in touches if t[2] == MessageEventKind.CLICKED and t[0] >= click_from]),
            (AttributionKind.VIEW, [t for t in touches if t[2] in VIEW_KINDS and t[0] >= view_from])):
        if candidates:
            at, _pk, _kind, message_id, source = max(candidates, key=lambda touch: (touch[0], touch[1]))
            return kind, message_id, at, source
    return AttributionKind.NONE, None, None, None


def cart_keys(cart):
    """The ids a cart goes by in events and message contexts (the store's id, else our pk)."""
    return [key for key in {cart.external_id, str(cart.pk)} if key]


def find_recovery(order):
    """-> (cart, abandoned_at, recovery message) when the order bought back an abandoned cart after a
    recovery message, else None.

    Recovered: the order's cart had a `cart_abandoned` event before the order, and after that
    abandonment (and before the order) a journey message naming the cart in its context was sent.
    """
    cart = order.cart
    if cart is None:
        return None
    keys = cart_keys(cart)
    abandoned_at = (Event.objects.filter(subscriber_id=order.subscriber_id, name="cart_abandoned",
                                         occurred_at__lte=order.placed_at, properties__cart_id__in=keys)
                    .order_by("-occurred_at").values_list("occurred_at", flat=True).first())
    if abandoned_at is None:
        return None
    message = (Message.objects.filter(subscriber_id=order.subscriber_id, source_type=JOURNEY_SOURCE_TYPE,
                                      sent_at__gte=abandoned_at, sent_at__lte=order.placed_at)
               .filter(Q(context__cart_id__in=keys) | Q(context__cart__id__in=keys))
               .order_by("-sent_at", "-pk").only("pk", "source_id").first())
    if message is None:
        return None
    return cart, abandoned_at, message


def build(order):
    """The unsaved Attribution for an order (reads only)."""
    kind, message_id, touched_at, source = find_touch(order)
    attribution = Attribution(order=order, kind=kind, value=order.value, currency=order.currency,
                              placed_at=order.placed_at, touched_at=touched_at, attributed_at=timezone.now())
    if message_id is not None:
        attribution.message_id = message_id
        attribution.source_type, attribution.source_id, attribution.channel = source
    recovery = find_recovery(order)
    if recovery is not None:
        cart, abandoned_at, message = recovery
        attribution.recovered_cart, attribution.cart_abandoned_at = cart, abandoned_at
        attribution.recovery_message, attribution.recovery_source_id = message, message.source_id
    return attribution


def attribute_order(order):
    """Attribute one order (once): -> (attribution, created). A repeat or a race returns the existing row."""
    from . import rollups

    existing = Attribution.objects.filter(order_id=order.pk).first()
    if existing is not None:
        return existing, False
    attribution = build(order)
    try:
        with transaction.atomic():
            attribution.save(force_insert=True)
            rollups.add_conversion(attribution)
    except IntegrityError:
        existing = Attribution.objects.filter(order_id=order.pk).first()
        if existing is None:
            raise
        return existing, False
    return attribution, True


def attribute_order_by_external_id(external_id):
    order = Order.objects.select_related("cart").filter(external_id=str(external_id)).first()
    if order is None:
        return None
    return attribute_order(order)[0]


def unattributed_orders(limit):
    """Orders without an Attribution row, oldest first (what the sweep attributes)."""
    return Order.objects.filter(attribution__isnull=True).select_related("cart").order_by("placed_at", "pk")[:limit]


def sweep(*, limit=1000):
    """Attribute orders the signal path missed (a lost task, an import): -> the number attributed."""
    count = 0
    for order in unattributed_orders(limit):
        count += attribute_order(order)[1]
    return count


def sweep_all(*, batch=1000):
    """Sweep until no order is left without a row: -> the number attributed."""
    total = 0
    while True:
        done = sweep(limit=batch)
        total += done
        if done < batch:
            return total
