"""The demo store is realistic and consistent: what a marketer sees adds up."""
import base64
import re
from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

import phonenumbers
import pytest
from django.conf import settings
from django.utils import timezone

from subscribers import demo, services
from subscribers.models import (
    ApiKey,
    ApiKeyKind,
    Cart,
    CartStatus,
    Channel,
    Consent,
    ConsentChange,
    ConsentStatus,
    Event,
    Order,
    OrderStatus,
    PushSubscription,
    PushSubscriptionStatus,
    Segment,
    Subscriber,
    hash_key,
)
from subscribers.push_endpoints import validate_push_endpoint

ARABIC = re.compile(r"[\u0600-\u06FF]")
COUNTRY_OF = {"Asia/Riyadh": "SA", "Asia/Dubai": "AE", "Africa/Cairo": "EG", "Europe/London": "GB",
              "America/New_York": "US"}
CURRENCY_OF = {"SA": "SAR", "AE": "AED", "EG": "EGP", "GB": "GBP", "US": "USD"}


@pytest.fixture(scope="module")
def store(django_db_setup, django_db_blocker):
    """One demo store of 300 shoppers for the whole module (read-only checks)."""
    with django_db_blocker.unblock():
        summary = demo.load_demo_store(subscribers=300, seed=11)
        yield summary
        demo.flush_store()
        ApiKey.objects.all().delete()
        Segment.objects.all().delete()  # the starter segments


pytestmark = pytest.mark.django_db


def test_it_creates_the_number_of_shoppers_asked_for_some_of_them_anonymous(store):
    assert Subscriber.objects.count() == 300
    anonymous = Subscriber.objects.anonymous()
    assert 0 < anonymous.count() < 100
    for visitor in anonymous:
        assert visitor.anonymous_ids.exists()
        assert not visitor.email and not visitor.phone and not visitor.first_name


def test_every_shopper_lives_in_one_of_the_five_timezones_with_a_matching_country_and_city(store):
    timezones = Counter(Subscriber.objects.values_list("timezone", flat=True))
    assert set(timezones) == set(demo.TIMEZONES) == set(COUNTRY_OF)
    cities = {m.country: {c[0] for c in m.cities} for m in demo.MARKETS}
    for subscriber in Subscriber.objects.all():
        assert subscriber.country == COUNTRY_OF[subscriber.timezone]
        assert subscriber.city in cities[subscriber.country]


def test_every_phone_is_a_valid_e164_number_of_the_shoppers_country(store):
    phones = Subscriber.objects.exclude(phone="").values_list("phone", "country")
    assert len(phones) > 100
    for phone, country in phones:
        number = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number_for_region(number, country), phone
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == phone


def test_arabic_names_come_with_the_arabic_locale_and_english_names_with_english(store):
    known = Subscriber.objects.known()
    locales = Counter(known.values_list("locale", flat=True))
    assert locales["ar"] > 50 and locales["en"] > 50
    for subscriber in known:
        is_arabic = bool(ARABIC.search(subscriber.first_name + subscriber.last_name))
        assert subscriber.locale == ("ar" if is_arabic else "en"), subscriber.full_name
        if subscriber.email:
            assert subscriber.email.isascii() and "@" in subscriber.email


def test_emails_are_unique(store):
    emails = list(Subscriber.objects.exclude(email="").values_list("email", flat=True))
    assert len(emails) == len(set(emails))


def test_every_order_matches_its_order_placed_event(store):
    placed = {e.properties["order_id"]: e for e in Event.objects.filter(name="order_placed")}
    orders = list(Order.objects.select_related("cart"))
    assert len(orders) > 20
    assert set(placed) == {o.external_id for o in orders}
    for order in orders:
        event = placed[order.external_id]
        assert event.subscriber_id == order.subscriber_id
        assert event.occurred_at == order.placed_at
        assert Decimal(event.properties["value"]) == order.value
        assert event.properties["currency"] == order.currency
        assert event.properties["items"] == order.items
        assert order.value == sum(Decimal(i["price"]) * i["quantity"] for i in order.items)
        assert order.cart.status == CartStatus.CONVERTED and order.cart.converted_at == order.placed_at
        assert event.properties["cart_id"] == order.cart.external_id


def test_order_statuses_follow_their_shipping_and_delivery_events(store):
    shipped = set(Event.objects.filter(name="order_shipped").values_list("properties__order_id", flat=True))
    delivered = set(Event.objects.filter(name="order_delivered").values_list("properties__order_id", flat=True))
    cancelled = set(Event.objects.filter(name="order_cancelled").values_list("properties__order_id", flat=True))
    assert delivered
    for order in Order.objects.all():
        if order.external_id in cancelled:
            assert order.status == OrderStatus.CANCELLED
        elif order.external_id in delivered:
            assert order.status == OrderStatus.DELIVERED and order.delivered_at > order.shipped_at > order.placed_at
        elif order.external_id in shipped:
            assert order.status == OrderStatus.SHIPPED and order.shipped_at > order.placed_at
        else:
            assert order.status == OrderStatus.PLACED


def test_prices_are_in_the_currency_of_the_shoppers_country(store):
    for cart in Cart.objects.select_related("subscriber"):
        assert cart.currency == CURRENCY_OF[cart.subscriber.country]


def test_commerce_figures_and_lifecycle_stages_agree_with_the_orders(store):
    counted = defaultdict(list)
    for order in Order.objects.filter(status__in=services.COUNTED_ORDER_STATUSES):
        counted[order.subscriber_id].append(order)
    stages = Counter()
    for subscriber in Subscriber.objects.all():
        orders = counted.get(subscriber.pk, [])
        assert subscriber.orders_count == len(orders)
        assert subscriber.total_spent == sum((o.value for o in orders), Decimal("0"))
        assert subscriber.last_order_at == max((o.placed_at for o in orders), default=None)
        assert subscriber.lifecycle_stage == services.lifecycle_stage_for(
            orders_count=len(orders), last_order_at=subscriber.last_order_at)
        stages[subscriber.lifecycle_stage] += 1
    assert stages["new"] and stages["active"]


def test_carts_are_what_their_last_snapshot_says(store):
    latest = {}
    for event in Event.objects.filter(name="cart_updated").order_by("occurred_at", "pk"):
        latest[event.properties["cart_id"]] = event
    for cart in Cart.objects.all():
        snapshot = latest[cart.external_id]
        assert snapshot.subscriber_id == cart.subscriber_id
        assert snapshot.properties["items"] == cart.items
        assert Decimal(snapshot.properties["value"]) == cart.value
        assert cart.last_activity_at >= snapshot.occurred_at


def test_abandoned_carts_are_open_and_each_has_its_cart_abandoned_event(store):
    abandoned = Cart.objects.filter(status=CartStatus.ABANDONED)
    assert abandoned.count() > 10
    for cart in abandoned:
        event = Event.objects.get(event_id=f"cart_abandoned:{cart.pk}:{int(cart.last_activity_at.timestamp())}")
        assert event.subscriber_id == cart.subscriber_id
        assert event.occurred_at == cart.abandoned_at
        assert cart.abandoned_at - cart.last_activity_at >= timedelta(minutes=settings.CART_ABANDON_MINUTES)
        # The signed link restores this very cart while it is recent; older links have expired.
        token = event.properties["restore_url"].rsplit("/", 1)[1]
        if timezone.now() - cart.last_activity_at < timedelta(days=settings.CART_RESTORE_MAX_AGE_DAYS):
            assert Cart.from_restore_token(token) == cart
        else:
            with pytest.raises(Cart.DoesNotExist):
                Cart.from_restore_token(token)


def test_the_abandonment_task_finds_idle_active_carts_right_away_and_only_once(store):
    before = Event.objects.filter(name="cart_abandoned").count()
    marked = services.detect_abandoned_carts()
    assert marked >= store["carts_awaiting_abandonment"] > 0
    assert Event.objects.filter(name="cart_abandoned").count() == before + marked
    assert services.detect_abandoned_carts() == 0
    # Some carts are still within the delay: shoppers who just left.
    assert Cart.objects.filter(status=CartStatus.ACTIVE).exclude(items=[]).exists()


def test_events_cover_the_last_ninety_days_and_none_is_in_the_future(store):
    now = timezone.now()
    first = Event.objects.order_by("occurred_at").first().occurred_at
    last = Event.objects.order_by("-occurred_at").first().occurred_at
    assert now - timedelta(days=91) < first < now - timedelta(days=60)
    assert last <= now
    names = set(Event.objects.values_list("name", flat=True))
    assert {"product_viewed", "cart_updated", "checkout_started", "order_placed", "order_shipped",
            "order_delivered", "signed_up", "subscribed", "cart_abandoned"} <= names
    for event in Event.objects.filter(name="product_viewed")[:50]:
        assert {"product_id", "title", "url", "image", "price", "currency", "category"} <= set(event.properties)


def test_every_consent_is_the_last_step_of_its_history(store):
    consents = list(Consent.objects.select_related("subscriber"))
    assert {c.channel for c in consents} == set(Channel.values)
    history = defaultdict(list)
    for change in ConsentChange.objects.order_by("occurred_at", "pk"):
        history[(change.subscriber_id, change.channel)].append(change)
    assert len(history) == len(consents)
    assert any(len(changes) > 1 for changes in history.values())
    for consent in consents:
        changes = history[(consent.subscriber_id, consent.channel)]
        assert changes[-1].status == consent.status
        assert changes[-1].occurred_at == consent.updated_at
        if consent.channel in (Channel.SMS, Channel.WHATSAPP):
            assert consent.subscriber.phone
        if consent.channel == Channel.EMAIL:
            assert consent.subscriber.email


def test_push_consent_is_granted_exactly_when_a_browser_subscription_is_active(store):
    active = set(PushSubscription.objects.filter(status=PushSubscriptionStatus.ACTIVE)
                 .values_list("subscriber_id", flat=True))
    with_push = set(PushSubscription.objects.values_list("subscriber_id", flat=True))
    granted = set(Consent.objects.filter(channel=Channel.PUSH, status=ConsentStatus.GRANTED)
                  .values_list("subscriber_id", flat=True))
    revoked = set(Consent.objects.filter(channel=Channel.PUSH, status=ConsentStatus.REVOKED)
                  .values_list("subscriber_id", flat=True))
    assert granted == active
    assert revoked == with_push - active


def test_push_subscriptions_pass_the_endpoint_guard_and_carry_browser_shaped_keys(store):
    subscriptions = list(PushSubscription.objects.all())
    assert len(subscriptions) > 50
    for push in subscriptions:
        validate_push_endpoint(push.endpoint)
        p256dh = base64.urlsafe_b64decode(push.p256dh + "==")
        assert len(p256dh) == 65 and p256dh[0] == 4
        assert len(base64.urlsafe_b64decode(push.auth + "==")) == 16
        assert push.browser
    hosts = {push.endpoint.split("/")[2] for push in subscriptions}
    assert "fcm.googleapis.com" in hosts and "web.push.apple.com" in hosts


def test_shoppers_who_subscribed_on_a_page_keep_that_page_and_category(store):
    for subscriber in Subscriber.objects.filter(push_subscriptions__isnull=False).distinct():
        first = subscriber.push_subscriptions.order_by("created_at").first()
        assert subscriber.subscribed_page_url == first.page_url
        assert subscriber.subscribed_category == first.category in demo.CATEGORIES


def test_it_creates_a_secret_key_and_a_publishable_key_for_the_site(store):
    secret = ApiKey.objects.get(key_hash=hash_key(store["secret_key"]))
    assert secret.kind == ApiKeyKind.SECRET
    publishable = ApiKey.objects.get(publishable_key=store["publishable_key"])
    assert publishable.kind == ApiKeyKind.PUBLISHABLE
    assert publishable.allows_origin(settings.SITE_URL)
