"""Identifying a browser keeps what the upper apps hold for it: its messages, enrolments and segment lists."""
import pytest

from delivery import outbox
from delivery.models import Message
from journeys import engine
from journeys.models import Enrolment, Journey
from subscribers import services
from subscribers.models import Segment, SegmentMembership, Subscriber

pytestmark = pytest.mark.django_db


def test_a_visitor_who_logs_in_keeps_the_messages_sent_to_their_browser_and_their_journeys():
    visitor, _ = services.resolve_subscriber(anonymous_id="browser-9")
    customer = services.upsert_subscriber(external_id="c-9", first_name="Layla")[0]
    message, _ = outbox.queue_message(subscriber=visitor, channel="inapp", source_type="campaign", source_id="1:A",
                                      content={"title": "Welcome"})
    journey = Journey.objects.create(name="Browse", trigger_event="product_viewed", status="active")
    engine.publish(journey, {"start": "w", "steps": {"w": {"type": "wait", "days": 1, "next": "e"},
                                                      "e": {"type": "exit"}}})
    enrolment = engine.enroll(journey, visitor, context={"product_id": "p1"})
    both = Segment.objects.create(name="Both", kind="static")
    only_visitor = Segment.objects.create(name="Visitor's", kind="static")
    SegmentMembership.objects.create(segment=both, subscriber=visitor)
    SegmentMembership.objects.create(segment=both, subscriber=customer)
    SegmentMembership.objects.create(segment=only_visitor, subscriber=visitor)

    services.identify_subscriber(anonymous_id="browser-9", external_id="c-9")

    assert not Subscriber.objects.filter(pk=visitor.pk).exists()
    assert Message.objects.get(pk=message.pk).subscriber_id == customer.pk
    assert Enrolment.objects.get(pk=enrolment.pk).subscriber_id == customer.pk
    assert set(SegmentMembership.objects.filter(subscriber=customer).values_list("segment__name", flat=True)) == {
        "Both", "Visitor's"}


def test_an_enrolment_the_customer_already_has_wins_over_the_visitors():
    visitor, _ = services.resolve_subscriber(anonymous_id="browser-8")
    customer = services.upsert_subscriber(external_id="c-8")[0]
    journey = Journey.objects.create(name="Browse", trigger_event="product_viewed", status="active")
    engine.publish(journey, {"start": "w", "steps": {"w": {"type": "wait", "days": 1, "next": "e"},
                                                      "e": {"type": "exit"}}})
    theirs = engine.enroll(journey, customer)
    engine.enroll(journey, visitor)

    services.identify_subscriber(anonymous_id="browser-8", external_id="c-8")

    assert list(Enrolment.objects.filter(journey=journey).values_list("pk", flat=True)) == [theirs.pk]
