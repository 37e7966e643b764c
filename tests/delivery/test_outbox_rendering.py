"""Messages from templates are rendered when queued, in the shopper's language; a render error keeps the row."""
import pytest

from delivery import outbox
from delivery.models import Message, MessageStatus, MessageTemplate, TemplateContent
from subscribers.models import Subscriber
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def welcome():
    template = MessageTemplate.objects.create(name="Welcome", slug="welcome", default_locale="ar")
    TemplateContent.objects.create(template=template, channel="inapp", locale="ar",
                                   title="أهلاً {{ first_name | default: 'صديقنا' }}", body="كود الخصم {{ discount_code }}")
    TemplateContent.objects.create(template=template, channel="inapp", locale="en",
                                   title="Hello {{ first_name | default: 'friend' }}", body="Code {{ discount_code }}")
    return template


def test_a_message_is_rendered_in_the_shoppers_locale_when_queued(welcome):
    sara = make_subscriber(first_name="Sara", locale="en")
    noor = make_subscriber(locale="ar")

    english, _ = outbox.queue_message(subscriber=sara, channel="inapp", source_type="api", source_id="w",
                                      template=welcome, context={"discount_code": "HELLO10"})
    arabic, _ = outbox.queue_message(subscriber=noor, channel="inapp", source_type="api", source_id="w",
                                     template=welcome, context={"discount_code": "HELLO10"})

    assert (english.locale, english.content["title"], english.content["body"]) == ("en", "Hello Sara", "Code HELLO10")
    assert (arabic.locale, arabic.content["title"]) == ("ar", "أهلاً صديقنا")
    assert english.status == MessageStatus.QUEUED


def test_a_missing_variable_without_a_default_keeps_the_row_failed_with_the_reason(welcome):
    message, created = outbox.queue_message(subscriber=make_subscriber(locale="en"), channel="inapp",
                                            source_type="api", source_id="w", template=welcome)

    assert created and message.status == MessageStatus.FAILED
    assert message.status_reason == "render_error" and "discount_code" in message.error
    assert message.content == {}
    assert list(message.history.values_list("kind", flat=True)) == ["queued", "failed"]


def test_fan_out_renders_each_shopper_and_counts_render_failures(welcome, django_capture_on_commit_callbacks):
    make_subscriber(first_name="Ali", locale="en")
    make_subscriber(locale="ar")

    with django_capture_on_commit_callbacks(execute=False):
        counts = outbox.fan_out(audience=Subscriber.objects.all(), channel="inapp", template=welcome,
                                source_type="campaign", source_id="c1", context={"discount_code": "X1"})

    assert {name: counts[name] for name in ("subscribers", "created", "existing", "failed")} == {
        "subscribers": 2, "created": 2, "existing": 0, "failed": 0}
    assert sorted(Message.objects.values_list("content__title", flat=True)) == ["Hello Ali", "أهلاً صديقنا"]
