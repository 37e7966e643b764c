"""The sandbox backend records what would have been sent; staff read it on the Sandbox inbox page."""
import pytest
from django.contrib.auth import get_user_model

from delivery import outbox, views
from delivery.channels import reset_backends
from delivery.models import MessageStatus
from subscribers import services
from subscribers.models import Source
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db

URL = "/sandbox/inbox/"


@pytest.fixture(autouse=True)
def sandbox(settings):
    settings.DELIVERY_BACKENDS = {channel: "delivery.channels.sandbox.SandboxBackend"
                                  for channel in ("push", "sms", "whatsapp", "email", "inapp")}
    settings.QUIET_HOURS = {channel: "off" for channel in ("push", "sms", "whatsapp", "email", "inapp")}
    settings.FREQUENCY_CAPS = {channel: {"day": 0, "week": 0}
                               for channel in ("push", "sms", "whatsapp", "email", "inapp", "all")}
    reset_backends()
    yield
    reset_backends()


def send_sms(body, n=1):
    shopper = make_subscriber(phone=f"+96650000{n:04d}")
    services.grant_consent(subscriber=shopper, channel="sms", source=Source.API)
    message, _ = outbox.queue_message(subscriber=shopper, channel="sms", source_type="api", source_id=f"s-{n}",
                                      content={"body": body})
    outbox.deliver([message.pk])
    message.refresh_from_db()
    return message


def test_the_sandbox_marks_a_message_sent_without_sending_anything():
    message = send_sms("Your order has shipped")

    assert message.status == MessageStatus.SENT
    assert message.provider == "sandbox" and message.provider_id == f"sandbox-{message.code}"


def test_staff_see_sandbox_messages_newest_first_with_their_content_escaped(admin_client):
    older = send_sms("First", 1)
    newer = send_sms("<script>alert('x')</script> خصم", 2)

    page = admin_client.get(URL).content.decode()

    assert page.index(newer.code) < page.index(older.code)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; خصم" in page
    assert "<script>alert" not in page
    assert "+966500000002" in page and "SMS" in page and "Sent" in page


def test_the_inbox_pages_by_key_without_offsets(admin_client, monkeypatch):
    monkeypatch.setattr(views, "SANDBOX_PAGE_SIZE", 2)
    messages = [send_sms(f"Message {n}", n) for n in range(1, 6)]

    first = admin_client.get(URL)
    assert [row["message"].code for row in first.context["rows"]] == [m.code for m in messages[:2:-1]]
    second = admin_client.get(URL, {"before": first.context["next_before"]})
    third = admin_client.get(URL, {"before": second.context["next_before"]})

    assert [row["message"].code for row in second.context["rows"]] == [messages[2].code, messages[1].code]
    assert [row["message"].code for row in third.context["rows"]] == [messages[0].code]
    assert third.context["next_before"] is None


def test_the_inbox_is_for_staff_only(client):
    shopper = get_user_model().objects.create_user("shopper", password="pw-12345-long")
    client.force_login(shopper)

    response = client.get(URL)

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_inbox_shows_one_channel_when_asked(admin_client):
    sms = send_sms("Your order has shipped")
    shopper = make_subscriber()
    inapp, _ = outbox.queue_message(subscriber=shopper, channel="inapp", source_type="api", source_id="i-1",
                                    content={"title": "Welcome", "body": "Hello"})
    outbox.deliver([inapp.pk])

    everything = admin_client.get(URL).content.decode()
    only_sms = admin_client.get(URL, {"channel": "sms"}).content.decode()
    only_inapp = admin_client.get(URL, {"channel": "inapp"}).content.decode()

    assert sms.code in everything and inapp.code in everything
    assert sms.code in only_sms and inapp.code not in only_sms
    assert sms.code not in only_inapp and inapp.code in only_inapp


def test_every_admin_page_links_staff_to_the_sandbox_inbox(admin_client):
    page = admin_client.get("/admin/").content.decode()

    assert f'href="{URL}"' in page


def test_the_inbox_speaks_arabic_when_the_admin_does(admin_client):
    send_sms("hello")
    admin_client.cookies["django_language"] = "ar"

    page = admin_client.get(URL).content.decode()

    assert 'dir="rtl"' in page
    assert "Nothing here left the machine" not in page
