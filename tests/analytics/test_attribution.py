"""Attribution: last click within the click window, else last view within the view window; one row per order."""
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from analytics import attribution, rollups
from analytics.models import Attribution, DailyRollup
from tests.analytics.traffic import clicked, delivered, displayed, order, sandbox, sent, shopper  # noqa: F401
from tests.factories import secret_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]

UTC = ZoneInfo("UTC")
ORDER_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def attributed(made_order):
    return attribution.attribute_order(made_order)[0]


def test_an_order_after_a_click_is_attributed_to_the_clicked_message():
    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=5))
    clicked(message, ORDER_AT - timedelta(hours=4))

    row = attributed(order(layla, ORDER_AT, value="250.00"))

    assert (row.kind, row.message_id, row.value, row.currency) == ("click", message.pk, Decimal("250.00"), "SAR")
    assert (row.source_type, row.source_id, row.channel) == ("campaign", "1:A", "sms")
    assert row.touched_at == ORDER_AT - timedelta(hours=4)


def test_without_a_click_a_message_seen_within_the_view_window_earns_a_view_through():
    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(minutes=50))
    delivered(message, ORDER_AT - timedelta(minutes=45))

    row = attributed(order(layla, ORDER_AT))

    assert (row.kind, row.message_id) == ("view", message.pk)


def test_an_order_outside_both_windows_is_recorded_as_not_attributed():
    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=30))
    clicked(message, ORDER_AT - timedelta(hours=24, minutes=1))  # one minute past the 24-hour click window
    displayed(message, ORDER_AT - timedelta(minutes=61))  # one minute past the 1-hour view window

    row = attributed(order(layla, ORDER_AT))

    assert (row.kind, row.message_id, row.source_type) == ("none", None, "")


def test_a_click_beats_a_later_display_of_another_message():
    layla = shopper()
    clicked_one = sent(layla, ORDER_AT - timedelta(hours=3), source_id="1:A")
    clicked(clicked_one, ORDER_AT - timedelta(hours=2))
    seen_later = sent(layla, ORDER_AT - timedelta(minutes=20), source_id="2:A")
    displayed(seen_later, ORDER_AT - timedelta(minutes=10))

    assert attributed(order(layla, ORDER_AT)).message_id == clicked_one.pk


def test_of_two_clicked_messages_the_last_click_wins_even_on_the_older_message():
    layla = shopper()
    older = sent(layla, ORDER_AT - timedelta(hours=10), source_id="1:A")
    newer = sent(layla, ORDER_AT - timedelta(hours=6), source_id="2:A")
    clicked(older, ORDER_AT - timedelta(hours=9))
    clicked(newer, ORDER_AT - timedelta(hours=5))
    clicked(older, ORDER_AT - timedelta(hours=1))  # clicked again: its last click is the latest

    assert attributed(order(layla, ORDER_AT)).message_id == older.pk


def test_a_click_after_the_order_does_not_count():
    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=2))
    clicked(message, ORDER_AT + timedelta(minutes=1))

    # The sandbox leaves an SMS "sent"; the click (and the delivery it implies) came after the order.
    assert attributed(order(layla, ORDER_AT)).kind == "none"


def test_the_windows_are_settings(settings):
    settings.ANALYTICS_CLICK_WINDOW_HOURS = 2
    settings.ANALYTICS_VIEW_WINDOW_HOURS = 3
    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=4))
    clicked(message, ORDER_AT - timedelta(hours=2, minutes=30))  # outside the 2-hour click window…

    row = attributed(order(layla, ORDER_AT))

    # … but its click delivered it (engagement marks delivery) 2 h 30 ago, inside the 3-hour view window.
    assert (row.kind, row.message_id) == ("view", message.pk)


def test_a_marketers_test_send_never_claims_an_order():
    layla = shopper()
    test_send = sent(layla, ORDER_AT - timedelta(hours=1), source_type="campaign_test", source_id="1")
    clicked(test_send, ORDER_AT - timedelta(minutes=30))

    assert attributed(order(layla, ORDER_AT)).kind == "none"


def test_attributing_twice_keeps_one_row_and_counts_the_revenue_once():
    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=1))
    clicked(message, ORDER_AT - timedelta(minutes=30))
    made = order(layla, ORDER_AT, value="80.00")

    first, created_first = attribution.attribute_order(made)
    again, created_again = attribution.attribute_order(made)
    swept = attribution.sweep()

    assert (created_first, created_again, swept) == (True, False, 0)
    assert first.pk == again.pk and Attribution.objects.filter(order=made).count() == 1
    [day] = DailyRollup.objects.filter(source_id="1:A")
    assert (day.converted_click, day.revenue_click) == (1, Decimal("80.00"))


def test_revenue_per_message_sums_its_attributed_orders_by_kind():
    from analytics.reports import message_revenue

    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=3))
    clicked(message, ORDER_AT - timedelta(hours=2))
    attributed(order(layla, ORDER_AT, value="40.00"))
    attributed(order(layla, ORDER_AT + timedelta(hours=1), value="60.00"))
    attributed(order(layla, ORDER_AT + timedelta(hours=2), value="70.00", currency="USD"))
    idle = sent(layla, ORDER_AT - timedelta(days=3), source_id="2:A")

    assert message_revenue([message.pk, idle.pk]) == {
        message.pk: {"orders": 3, "click": Decimal("100.00"), "view": Decimal("0")}}


def test_an_order_in_another_currency_converts_but_adds_no_revenue():
    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=1))
    clicked(message, ORDER_AT - timedelta(minutes=30))

    attributed(order(layla, ORDER_AT, value="80.00", currency="USD"))

    [day] = DailyRollup.objects.filter(source_id="1:A")
    assert (day.converted_click, day.revenue_click) == (1, Decimal("0"))


def test_the_sweep_attributes_orders_the_signal_path_missed():
    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=1))
    clicked(message, ORDER_AT - timedelta(minutes=30))
    made = order(layla, ORDER_AT)  # place_order directly: no event, no signal, no task
    assert not Attribution.objects.filter(order=made).exists()

    assert attribution.sweep() == 1
    assert Attribution.objects.get(order=made).message_id == message.pk


def test_an_order_through_the_api_is_attributed_by_the_signal_and_its_task(django_capture_on_commit_callbacks):
    layla = shopper()
    message = sent(layla, datetime.now(UTC) - timedelta(hours=1))
    clicked(message, datetime.now(UTC) - timedelta(minutes=30))
    api = secret_client()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/events", {
            "name": "order_placed", "external_id": layla.external_id,
            "properties": {"order_id": "api-order-1", "value": "120.00", "currency": "SAR"}}, format="json")

    assert response.status_code in (200, 201, 202), response.content
    row = Attribution.objects.get(order__external_id="api-order-1")
    assert (row.kind, row.message_id, row.value) == ("click", message.pk, Decimal("120.00"))
    rollups.roll_up_all()
    day = DailyRollup.objects.get(source_id="1:A", day=rollups.local_day(row.placed_at))
    assert (day.converted_click, day.revenue_click, day.clicked) == (1, Decimal("120.00"), 1)


@pytest.mark.django_db(transaction=True)
def test_the_signal_task_and_sweeps_racing_write_one_row_per_order_and_count_it_once(race):
    from analytics.models import Attribution as Row

    layla = shopper()
    message = sent(layla, ORDER_AT - timedelta(hours=2))
    clicked(message, ORDER_AT - timedelta(hours=1))
    orders = [order(layla, ORDER_AT + timedelta(minutes=n), value="10.00") for n in range(30)]

    assert race(lambda: [attribution.attribute_order(o) for o in orders],
                lambda: attribution.sweep_all(batch=4), lambda: attribution.sweep_all(batch=7)) == []
    assert Row.objects.count() == 30 and Row.objects.filter(kind="click").count() == 30
    figures = DailyRollup.objects.get(source_id="1:A", day=rollups.local_day(ORDER_AT))
    assert (figures.converted_click, figures.revenue_click) == (30, Decimal("300.00"))
