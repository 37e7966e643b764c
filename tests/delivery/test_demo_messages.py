"""`make run`'s first messages: the starter templates sent to demo shoppers, visible in the Sandbox inbox."""
from io import StringIO

import pytest
from django.core.management import call_command

from delivery.channels import reset_backends
from delivery.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_store(settings):
    settings.DELIVERY_BACKENDS = {channel: "delivery.channels.sandbox.SandboxBackend"
                                  for channel in ("push", "sms", "whatsapp", "email")}
    settings.DELIVERY_BACKENDS["inapp"] = "delivery.channels.inapp.InAppBackend"
    settings.QUIET_HOURS = {channel: "off" for channel in ("push", "sms", "whatsapp", "email", "inapp")}
    reset_backends()
    call_command("load_demo_store", "--subscribers", "300", "--seed", "3", stdout=StringIO())
    call_command("load_starter_templates", stdout=StringIO())
    yield
    reset_backends()


def send(*args):
    out = StringIO()
    call_command("send_demo_messages", *args, stdout=out)
    return out.getvalue()


def test_a_newcomer_finds_rendered_messages_on_every_channel_in_the_sandbox_inbox(demo_store, admin_client):
    summary = send("--if-empty")

    assert "sent" in summary
    messages = Message.objects.filter(source_type="demo")
    assert set(messages.values_list("channel", flat=True)) == {"push", "sms", "whatsapp", "email", "inapp"}
    assert set(messages.values_list("locale", flat=True)) >= {"ar", "en"}
    page = admin_client.get("/sandbox/inbox/").content.decode()
    sms = messages.filter(channel="sms", template__slug="order-shipped", status="sent").first()
    assert sms is not None and sms.code in page
    assert "{{" not in page


def test_a_second_run_sends_nothing_new(demo_store):
    send("--if-empty")
    count = Message.objects.count()

    assert "nothing to do" in send("--if-empty")
    send()  # even without --if-empty: every message has its idempotency key
    assert Message.objects.count() == count
