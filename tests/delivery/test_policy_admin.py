"""The suppression list in the ops admin."""
import pytest
from django.urls import reverse

from delivery.models import Suppression

pytestmark = pytest.mark.django_db

ADD = reverse("admin:delivery_suppression_add")
LIST = reverse("admin:delivery_suppression_changelist")


def test_ops_add_an_email_for_all_channels_and_it_is_stored_in_lower_case(admin_client):
    response = admin_client.post(ADD, {"value": "  Huda@Example.COM ", "channel": "", "reason": "legal request"})

    assert response.status_code == 302
    entry = Suppression.objects.get()
    assert (entry.value, entry.channel, entry.reason) == ("huda@example.com", "", "legal request")


def test_a_phone_is_stored_in_e164_form(admin_client):
    admin_client.post(ADD, {"value": "whatsapp:+966 50 123 4567", "channel": "sms", "reason": ""})

    assert Suppression.objects.get().value == "+966501234567"


def test_something_that_is_neither_a_phone_nor_an_email_is_refused(admin_client):
    response = admin_client.post(ADD, {"value": "not an address", "channel": "sms", "reason": ""})

    assert response.status_code == 200
    assert "E.164" in response.content.decode()
    assert not Suppression.objects.exists()


def test_the_same_address_twice_on_a_channel_is_refused(admin_client):
    Suppression.objects.create(channel="email", value="huda@example.com")

    response = admin_client.post(ADD, {"value": "HUDA@example.com", "channel": "email", "reason": ""})

    assert response.status_code == 200
    assert Suppression.objects.count() == 1


def test_the_list_says_which_entries_stop_every_channel_and_finds_by_address(admin_client):
    Suppression.objects.create(channel="", value="+966501112244", reason="legal request")
    Suppression.objects.create(channel="sms", value="+966509998877", reason="invalid number (21211)")

    page = admin_client.get(LIST, {"q": "+96650111"}).content.decode()

    assert "+966501112244" in page and "All channels" in page and "legal request" in page
    assert "+966509998877" not in page
