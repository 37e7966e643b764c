from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from subscribers import services, signals
from subscribers.models import Cart, CartStatus, Event, LifecycleStage, Order, OrderStatus, Subscriber

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = [
    {"product_id": "p1", "title": "Headphones", "price": "100.00", "quantity": 2,
     "image": "https://shop.example/p1.jpg", "url": "https://shop.example/p1"},
    {"product_id": "p2", "title": "كابل", "price": "15.50", "quantity": 1},
]


@pytest.fixture
def shopper():
    return services.upsert_subscriber(external_id="cust-1", first_name="Omar")[0]


@pytest.fixture
def heard():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    signals.event_recorded.connect(receiver)
    yield received
    signals.event_recorded.disconnect(receiver)


def test_a_repeated_event_id_is_accepted_and_stored_once(shopper, heard):
    first, created = services.record_event(subscriber=shopper, name="product_viewed", event_id="e-1")
    again, created_again = services.record_event(subscriber=shopper, name="product_viewed", event_id="e-1")

    assert created and not created_again
    assert first.pk == again.pk
    assert Event.objects.filter(event_id="e-1").count() == 1
    assert [h["name"] for h in heard] == ["product_viewed"]


def test_a_batch_reports_duplicates_inside_itself_and_against_stored_events(shopper, heard):
    services.record_event(subscriber=shopper, name="signed_up", event_id="old")
    heard.clear()

    results = services.record_events(items=[
        {"external_id": "cust-1", "name": "product_viewed", "event_id": "b-1"},
        {"external_id": "cust-1", "name": "product_viewed", "event_id": "b-1"},
        {"external_id": "cust-1", "name": "signed_up", "event_id": "old"},
        {"anonymous_id": "browser-9", "name": "product_viewed"},
        {"external_id": "new-customer", "name": "product_viewed", "event_id": "b-2"},
    ])

    assert [r["status"] for r in results] == ["created", "duplicate", "duplicate", "created", "created"]
    assert results[0]["id"] == results[1]["id"]
    assert Event.objects.count() == 4
    assert Subscriber.objects.filter(external_id="new-customer").exists()
    assert len(heard) == 3


def test_sending_the_same_batch_twice_stores_nothing_new(shopper):
    batch = [{"external_id": "cust-1", "name": "product_viewed", "event_id": f"x-{i}"} for i in range(50)]
    services.record_events(items=batch)

    again = services.record_events(items=batch)

    assert {r["status"] for r in again} == {"duplicate"}
    assert Event.objects.count() == 50


def test_a_cart_snapshot_keeps_items_and_value(shopper):
    services.record_event(subscriber=shopper, name="cart_updated", properties={"cart_id": "c1", "items": ITEMS,
                                                                               "currency": "sar"})
    cart = Cart.objects.get(external_id="c1")

    assert cart.value == Decimal("215.50")
    assert cart.currency == "SAR"
    assert cart.item_count == 3
    assert cart.items[1]["title"] == "كابل"


def test_an_idle_cart_is_abandoned_once_with_one_event(shopper):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        services.record_event(subscriber=shopper, name="cart_updated", properties={"cart_id": "c1", "items": ITEMS})

    with time_machine.travel(start + timedelta(minutes=29), tick=False):
        assert services.detect_abandoned_carts() == 0
    with time_machine.travel(start + timedelta(minutes=31), tick=False):
        assert services.detect_abandoned_carts() == 1
        assert services.detect_abandoned_carts() == 0

    cart = Cart.objects.get(external_id="c1")
    assert cart.status == CartStatus.ABANDONED
    event = Event.objects.get(name="cart_abandoned")
    assert event.properties["value"] == "215.50"
    token = event.properties["restore_url"].rsplit("/", 1)[1]
    assert Cart.from_restore_token(token).pk == cart.pk


def test_an_empty_cart_is_never_abandoned(shopper):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        services.record_event(subscriber=shopper, name="cart_updated", properties={"cart_id": "c1", "items": []})
    with time_machine.travel(start + timedelta(hours=3), tick=False):
        assert services.detect_abandoned_carts() == 0


def test_a_cart_changed_after_abandonment_is_active_again_and_can_be_abandoned_again(shopper):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        services.record_event(subscriber=shopper, name="cart_updated", properties={"cart_id": "c1", "items": ITEMS})
    with time_machine.travel(start + timedelta(minutes=40), tick=False):
        services.detect_abandoned_carts()
        services.record_event(subscriber=shopper, name="cart_updated",
                              properties={"cart_id": "c1", "items": ITEMS[:1]})
        assert Cart.objects.get(external_id="c1").status == CartStatus.ACTIVE
    with time_machine.travel(start + timedelta(minutes=80), tick=False):
        assert services.detect_abandoned_carts() == 1
    assert Event.objects.filter(name="cart_abandoned").count() == 2


def test_an_order_containing_the_cart_converts_it_and_updates_the_shoppers_figures(shopper):
    services.record_event(subscriber=shopper, name="cart_updated", properties={"cart_id": "c1", "items": ITEMS})
    services.record_event(subscriber=shopper, name="order_placed", event_id="op-1", properties={
        "order_id": "9001", "items": ITEMS + [{"product_id": "p3", "title": "Case", "price": "20", "quantity": 1}],
        "currency": "SAR"})

    cart = Cart.objects.get(external_id="c1")
    assert cart.status == CartStatus.CONVERTED
    order = Order.objects.get(external_id="9001")
    assert order.cart_id == cart.pk
    assert order.value == Decimal("235.50")
    shopper.refresh_from_db()
    assert shopper.orders_count == 1
    assert shopper.total_spent == Decimal("235.50")
    assert shopper.lifecycle_stage == LifecycleStage.ACTIVE


def test_an_order_placed_twice_is_counted_once(shopper):
    for event_id in ("a", "b"):
        services.record_event(subscriber=shopper, name="order_placed", event_id=event_id,
                              properties={"order_id": "42", "value": "50"})
    shopper.refresh_from_db()
    assert shopper.orders_count == 1
    assert shopper.total_spent == Decimal("50.00")


def test_shipping_and_delivery_events_move_the_order_along(shopper):
    services.record_event(subscriber=shopper, name="order_placed", properties={"order_id": "42", "value": "50"})
    services.record_event(subscriber=shopper, name="order_shipped", properties={"order_id": "42"})
    assert Order.objects.get(external_id="42").status == OrderStatus.SHIPPED
    services.record_event(subscriber=shopper, name="order_delivered", properties={"order_id": "42"})
    order = Order.objects.get(external_id="42")
    assert order.status == OrderStatus.DELIVERED and order.delivered_at is not None


def test_a_cancelled_order_no_longer_counts(shopper):
    services.record_event(subscriber=shopper, name="order_placed", properties={"order_id": "42", "value": "50"})
    services.record_event(subscriber=shopper, name="order_cancelled", properties={"order_id": "42"})
    shopper.refresh_from_db()
    assert shopper.orders_count == 0
    assert shopper.lifecycle_stage == LifecycleStage.NEW


def test_lifecycle_stages_follow_time_and_order_count(shopper, settings):
    settings.LIFECYCLE_LOYAL_MIN_ORDERS = 3
    settings.LIFECYCLE_AT_RISK_DAYS = 60
    settings.LIFECYCLE_LAPSED_DAYS = 120
    start = timezone.now()
    for n in range(3):
        services.record_event(subscriber=shopper, name="order_placed",
                              properties={"order_id": f"o{n}", "value": "10"}, occurred_at=start)
    shopper.refresh_from_db()
    assert shopper.lifecycle_stage == LifecycleStage.LOYAL

    services.refresh_lifecycle_stages(now=start + timedelta(days=61))
    shopper.refresh_from_db()
    assert shopper.lifecycle_stage == LifecycleStage.AT_RISK

    services.refresh_lifecycle_stages(now=start + timedelta(days=121))
    shopper.refresh_from_db()
    assert shopper.lifecycle_stage == LifecycleStage.LAPSED


def test_concurrent_snapshots_of_one_new_cart_both_apply_without_an_error(shopper, race):
    def send(n):
        return lambda: services.record_event(subscriber=shopper, name="cart_updated",
                                             properties={"cart_id": "race-1", "items": ITEMS[: 1 + n % 2]})

    assert race(*(send(n) for n in range(4))) == []
    assert Cart.objects.filter(external_id="race-1").count() == 1
    assert Event.objects.filter(name="cart_updated").count() == 4
