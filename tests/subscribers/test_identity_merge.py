from decimal import Decimal

import pytest

from subscribers import services
from subscribers.models import (
    AnonymousId, Cart, Channel, ConsentChange, Event, Order, PushSubscription, Source, Subscriber,
)

pytestmark = pytest.mark.django_db

ENDPOINT = "https://fcm.googleapis.com/fcm/send/browser-one"


def browse_anonymously(anonymous_id="anon-1"):
    visitor, _ = services.resolve_subscriber(anonymous_id=anonymous_id)
    services.record_event(subscriber=visitor, name="product_viewed", event_id="view-1",
                          properties={"product_id": "p1"})
    services.record_event(subscriber=visitor, name="cart_updated", event_id="cart-1", properties={
        "cart_id": "c-1", "items": [{"product_id": "p1", "title": "سماعة", "price": "120", "quantity": 1}]})
    services.register_push_subscription(subscriber=visitor, endpoint=ENDPOINT, p256dh="k", auth="a",
                                        user_agent="Mozilla/5.0 Chrome/120", page_url="https://shop.example/electronics",
                                        category="electronics")
    return visitor


def test_identifying_a_visitor_moves_their_events_cart_and_push_subscription_to_the_customer():
    visitor = browse_anonymously()
    customer, _ = services.upsert_subscriber(external_id="cust-7", first_name="Layla", email="layla@example.com")

    merged = services.identify_subscriber(anonymous_id="anon-1", external_id="cust-7")

    assert merged.pk == customer.pk
    assert not Subscriber.objects.filter(pk=visitor.pk).exists()
    assert Event.objects.filter(subscriber=customer).exclude(name="subscribed").count() == 2
    assert Cart.objects.get(external_id="c-1").subscriber_id == customer.pk
    assert PushSubscription.objects.get(endpoint=ENDPOINT).subscriber_id == customer.pk
    assert services.has_consent(customer, Channel.PUSH)
    customer.refresh_from_db()
    assert customer.first_name == "Layla"
    assert customer.subscribed_category == "electronics"


def test_identifying_the_same_pair_twice_changes_nothing_more():
    browse_anonymously()
    services.identify_subscriber(anonymous_id="anon-1", external_id="cust-7")
    snapshot = (Subscriber.objects.count(), Event.objects.count(), ConsentChange.objects.count())

    services.identify_subscriber(anonymous_id="anon-1", external_id="cust-7")

    assert (Subscriber.objects.count(), Event.objects.count(), ConsentChange.objects.count()) == snapshot


def test_events_sent_later_with_the_old_browser_id_land_on_the_known_profile():
    browse_anonymously()
    customer = services.identify_subscriber(anonymous_id="anon-1", external_id="cust-7")

    again, created = services.resolve_subscriber(anonymous_id="anon-1")

    assert not created
    assert again.pk == customer.pk


def test_a_customer_who_never_browsed_anonymously_is_created_on_identify():
    customer = services.identify_subscriber(anonymous_id="fresh-browser", external_id="cust-9")

    assert customer.external_id == "cust-9"
    assert AnonymousId.objects.get(value="fresh-browser").subscriber_id == customer.pk


def test_merge_keeps_the_newest_consent_per_channel_and_all_history():
    visitor = browse_anonymously()
    customer, _ = services.upsert_subscriber(external_id="cust-7")
    services.revoke_consent(subscriber=customer, channel=Channel.PUSH, source=Source.API)
    history_before = ConsentChange.objects.count()

    services.merge_subscribers(source=visitor, target=customer)

    assert ConsentChange.objects.filter(subscriber=customer).count() == history_before
    # The visitor's grant (older) loses to the customer's later revocation.
    assert not services.has_consent(customer, Channel.PUSH)


def test_a_visitor_who_buys_is_merged_with_their_orders_counted():
    visitor = browse_anonymously()
    services.record_event(subscriber=visitor, name="order_placed", event_id="o-1", properties={
        "order_id": "1001", "value": "120.00", "currency": "SAR",
        "items": [{"product_id": "p1", "title": "سماعة", "price": "120", "quantity": 1}]})

    customer = services.identify_subscriber(anonymous_id="anon-1", external_id="cust-7")

    customer.refresh_from_db()
    assert customer.orders_count == 1
    assert customer.total_spent == Decimal("120.00")
    assert Order.objects.get(external_id="1001").subscriber_id == customer.pk
