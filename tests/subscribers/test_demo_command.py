"""`manage.py load_demo_store`: repeatable, and careful with a store that has shoppers."""
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.utils import timezone
from django.core.management import CommandError, call_command

from subscribers.models import Event, Order, Subscriber

pytestmark = pytest.mark.django_db


def load(*args):
    out = StringIO()
    call_command("load_demo_store", *args, stdout=out)
    return out.getvalue()


def shoppers():
    return list(Subscriber.objects.order_by("external_id", "pk").values_list(
        "external_id", "first_name", "last_name", "email", "phone", "locale", "timezone", "city", "birthday",
    ))


def test_the_same_seed_gives_the_same_shoppers():
    load("--subscribers", "120", "--seed", "7")
    first = shoppers()
    first_orders = list(Order.objects.order_by("external_id").values_list("external_id", "value", "currency"))
    load("--subscribers", "120", "--seed", "7", "--flush")

    assert shoppers() == first
    assert list(Order.objects.order_by("external_id").values_list("external_id", "value", "currency")) == first_orders


def test_the_same_seed_gives_the_same_shoppers_on_another_day():
    load("--subscribers", "300", "--seed", "7")
    first = shoppers()
    with time_machine.travel(timezone.now() + timedelta(days=3, hours=5), tick=True):
        load("--subscribers", "300", "--seed", "7", "--flush")

    assert shoppers() == first


def test_another_seed_gives_other_shoppers():
    load("--subscribers", "120", "--seed", "7")
    first = shoppers()
    load("--subscribers", "120", "--seed", "8", "--flush")

    assert len(shoppers()) == 120
    assert shoppers() != first


def test_it_prints_the_api_keys_and_what_it_loaded():
    out = load("--subscribers", "60", "--seed", "3")

    assert "Loaded the demo store" in out and "60 subscribers" in out
    assert "tnb_sk_" in out and "tnb_pk_" in out


def test_if_empty_leaves_a_store_with_shoppers_alone():
    load("--subscribers", "40")
    events = Event.objects.count()

    out = load("--subscribers", "40", "--if-empty")

    assert "already has 40 subscribers" in out
    assert Subscriber.objects.count() == 40 and Event.objects.count() == events


def test_it_refuses_to_add_a_demo_to_a_store_with_shoppers_unless_told_to_flush():
    load("--subscribers", "40")

    with pytest.raises(CommandError, match="--flush"):
        load("--subscribers", "40")
    assert Subscriber.objects.count() == 40
