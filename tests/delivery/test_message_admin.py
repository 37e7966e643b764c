"""The outbox in the admin: every message with its status and reason, read-only, and cancelling what is not sent."""
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery import outbox
from delivery.models import Message
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db

URL = "/admin/delivery/message/"


def queue(n, **fields):
    shopper = make_subscriber(f"c-{n}", phone=f"+96650000{n:04d}")
    message, _ = outbox.queue_message(subscriber=shopper, channel="sms", source_type="campaign", source_id="7",
                                      content={"body": f"Offer {n}"}, **fields)
    return message


def test_ops_find_a_message_by_the_customers_phone_and_see_why_it_was_suppressed(admin_client):
    message = queue(1)
    Message.objects.filter(pk=message.pk).update(status="suppressed", status_reason="no SMS consent")

    listing = admin_client.get(URL, {"q": "c-1"}).content.decode()
    detail = admin_client.get(f"{URL}{message.pk}/change/").content.decode()

    assert message.code in listing and "no SMS consent" in listing
    assert "no SMS consent" in detail and "Offer 1" in detail
    assert 'name="_save"' not in detail  # read-only: nothing to save


def test_the_history_of_a_message_is_shown_in_order(admin_client):
    message = queue(2)
    outbox.cancel_pending(Message.objects.filter(pk=message.pk), reason="campaign stopped")

    detail = admin_client.get(f"{URL}{message.pk}/change/").content.decode()
    history = detail.split('id="history-group"')[1]

    assert history.index("Queued") < history.index("Cancelled") and "campaign stopped" in history


def test_cancelling_from_the_admin_stops_pending_messages_and_leaves_sent_ones(admin_client):
    pending = queue(3, send_at=timezone.now() + timedelta(hours=2))
    sent = queue(4)
    Message.objects.filter(pk=sent.pk).update(status="sent", sent_at=timezone.now())

    response = admin_client.post(URL, {"action": "cancel_pending", "_selected_action": [pending.pk, sent.pk]},
                                 follow=True)

    assert response.status_code == 200
    pending.refresh_from_db()
    sent.refresh_from_db()
    assert pending.status == "cancelled" and sent.status == "sent"


def test_messages_cannot_be_added_edited_or_deleted_in_the_admin(admin_client):
    message = queue(5)

    assert admin_client.get(f"{URL}add/").status_code == 403
    assert admin_client.post(f"{URL}{message.pk}/change/", {"status": "delivered"}).status_code == 403
    assert admin_client.get(f"{URL}{message.pk}/delete/").status_code == 403
    message.refresh_from_db()
    assert message.status == "queued"
