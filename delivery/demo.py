"""The demo's first messages: the starter templates sent to a few demo shoppers.

`make run` calls this once after loading the demo store, so a newcomer opening
the Sandbox inbox finds real rendered messages — an abandoned-cart reminder on
every channel, an order update, a welcome — that went through the whole outbox
(consent, quiet hours and caps checked, sandbox backends standing in for the
providers). Messages a policy held or suppressed say why in the admin.
"""
from delivery import outbox
from delivery.models import DeliveryChannel, Message, MessageTemplate
from delivery.policy import reachable_q
from subscribers.models import Cart, CartStatus, Order, PushSubscriptionStatus, Subscriber

SOURCE_TYPE = "demo"
CART_CHANNELS = (DeliveryChannel.PUSH, DeliveryChannel.SMS, DeliveryChannel.WHATSAPP, DeliveryChannel.EMAIL)


def _reachable(channel):
    """Demo shoppers who can be reached on `channel` (the same rule the campaigns and journeys use)."""
    return Subscriber.objects.known().filter(reachable_q(channel))


def _plan(per_channel):
    """(template slug, channel, subscriber, context) for the demo's messages."""
    plan = []
    for channel in CART_CHANNELS:
        carts = (Cart.objects.filter(status=CartStatus.ABANDONED, subscriber__in=_reachable(channel))
                 .select_related("subscriber").order_by("-abandoned_at", "pk")[:per_channel])
        plan += [("abandoned-cart", channel, cart.subscriber, {"cart": cart}) for cart in carts]
    for channel in (DeliveryChannel.SMS, DeliveryChannel.EMAIL):
        orders = (Order.objects.filter(subscriber__in=_reachable(channel)).select_related("subscriber")
                  .order_by("-placed_at", "pk")[:per_channel])
        plan += [("order-shipped", channel, order.subscriber, {"order": order}) for order in orders]
    for channel in (DeliveryChannel.EMAIL, DeliveryChannel.INAPP):
        newcomers = _reachable(channel).order_by("-created_at", "pk")[:per_channel]
        plan += [("welcome", channel, shopper, {"discount_code": "WELCOME10"}) for shopper in newcomers]
    return plan


def send_demo_messages(*, per_channel=2):
    """Write and deliver the demo's messages now; -> {status: count}. A repeat sends nothing new."""
    templates = {t.slug: t for t in MessageTemplate.objects.prefetch_related("contents")}
    written = []
    for slug, channel, subscriber, context in _plan(per_channel):
        template = templates.get(slug)
        if template is None:
            continue
        browsers = [None]
        if channel == DeliveryChannel.PUSH:
            browsers = list(subscriber.push_subscriptions.filter(status=PushSubscriptionStatus.ACTIVE)[:1])
        for browser in browsers:
            message, created = outbox.queue_message(
                subscriber=subscriber, channel=channel, template=template, context=context,
                source_type=SOURCE_TYPE, source_id=slug, push_subscription=browser)
            if created:
                written.append(message.pk)
    if written:
        outbox.deliver(written)
    counts = {}
    for status in Message.objects.filter(pk__in=written).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def has_demo_messages():
    return Message.objects.filter(source_type=SOURCE_TYPE).exists()



