"""The outbox: one row per message, sent once, retried when it helps, and every change in the history."""
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app
from delivery import outbox, ratelimit
from delivery.channels import reset_backends
from delivery.channels.base import ChannelBackend, DeliveryError, SendResult
from delivery.models import Message, MessageEvent, MessageLane, MessageStatus, Suppression
from subscribers import services
from subscribers.models import Consent, ConsentStatus, PushSubscription, PushSubscriptionStatus, Source
from tests.factories import make_subscriber, push_keys

SENT = []
# What the scripted backend answers next, per message code (else it accepts).
SCRIPT = {}


class ScriptedBackend(ChannelBackend):
    """A provider at our own seam: records every send, answers what the test scripted."""

    provider = "scripted"

    def send(self, message):
        SENT.append(message.code)
        answers = SCRIPT.get(message.code)
        if answers:
            answer = answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return SendResult(provider_id=f"p-{message.code}-{len(SENT)}")


class ScriptedSmsBackend(ScriptedBackend):
    provider = "twilio"


@pytest.fixture(autouse=True)
def scripted(settings):
    SENT.clear()
    SCRIPT.clear()
    path = f"{__name__}.ScriptedBackend"
    settings.DELIVERY_BACKENDS = {"push": path, "email": path, "inapp": path,
                                  "sms": f"{__name__}.ScriptedSmsBackend", "whatsapp": f"{__name__}.ScriptedSmsBackend"}
    # The sending policy (when installed) is tested on its own: here nothing is quiet or capped.
    settings.QUIET_HOURS = {channel: "off" for channel in ("push", "sms", "whatsapp", "email", "inapp")}
    settings.FREQUENCY_CAPS = {channel: {"day": 0, "week": 0}
                               for channel in ("push", "sms", "whatsapp", "email", "inapp", "all")}
    settings.DELIVERY_RATE_LIMITS = ""
    settings.DELIVERY_RETRY_BASE_SECONDS = 30
    settings.DELIVERY_RETRY_MAX_SECONDS = 3600
    settings.DELIVERY_MAX_ATTEMPTS = 3
    reset_backends()
    yield
    reset_backends()


def sms_shopper(**fields):
    shopper = make_subscriber(phone=fields.pop("phone", "+966500000001"), **fields)
    services.grant_consent(subscriber=shopper, channel="sms", source=Source.API)
    return shopper


def queue_sms(shopper, source_id="order-1", **kwargs):
    return outbox.queue_message(subscriber=shopper, channel="sms", source_type="api", source_id=source_id,
                                content={"body": "Your order has shipped"}, transactional=True, **kwargs)[0]


def history(message):
    return list(MessageEvent.objects.filter(message=message).order_by("occurred_at", "id")
                .values_list("kind", flat=True))


@pytest.mark.django_db
def test_queueing_the_same_message_twice_writes_one_row():
    shopper = sms_shopper()
    first, created = outbox.queue_message(subscriber=shopper, channel="sms", source_type="api", source_id="o-1",
                                          content={"body": "hi"})
    again, created_again = outbox.queue_message(subscriber=shopper, channel="sms", source_type="api",
                                                source_id="o-1", content={"body": "hi"})

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and Message.objects.count() == 1
    assert first.idempotency_key == f"api:o-1:{shopper.pk}:sms:"
    assert first.to == "+966500000001" and first.status == MessageStatus.QUEUED
    assert history(first) == ["queued"]


@pytest.mark.django_db
def test_a_double_click_on_send_sends_once(django_capture_on_commit_callbacks):
    shopper = sms_shopper()
    with django_capture_on_commit_callbacks(execute=True):
        first = outbox.send_message(subscriber=shopper, channel="sms", source_type="api", source_id="ship-9",
                                    content={"body": "Shipped"}, transactional=True)
    with django_capture_on_commit_callbacks(execute=True):
        second = outbox.send_message(subscriber=shopper, channel="sms", source_type="api", source_id="ship-9",
                                     content={"body": "Shipped"}, transactional=True)

    first.refresh_from_db()
    assert second.pk == first.pk
    assert SENT == [first.code]
    assert first.status == MessageStatus.SENT and first.provider == "twilio" and first.attempts == 1
    assert first.lane == MessageLane.TRANSACTIONAL
    assert history(first) == ["queued", "sending", "sent"]


@pytest.mark.django_db
def test_a_task_delivered_twice_sends_once():
    message = queue_sms(sms_shopper())

    outbox.deliver([message.pk])
    outbox.deliver([message.pk])

    assert SENT == [message.code]
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.attempts == 1


@pytest.mark.django_db
def test_only_one_of_two_claimers_wins_a_message():
    message = queue_sms(sms_shopper())

    assert outbox.claim([message.pk]) == [message.pk]
    assert outbox.claim([message.pk]) == []


@pytest.mark.django_db
def test_a_message_is_not_sent_before_its_time():
    message = queue_sms(sms_shopper(), send_at=timezone.now() + timedelta(hours=1))

    assert outbox.deliver([message.pk]) == {}
    message.refresh_from_db()
    assert SENT == [] and message.status == MessageStatus.QUEUED


@pytest.mark.django_db
def test_a_transient_error_queues_the_message_again_with_exponential_backoff():
    message = queue_sms(sms_shopper())
    SCRIPT[message.code] = [DeliveryError("503", code="503"), DeliveryError("503", code="503")]

    before = timezone.now()
    outbox.deliver([message.pk])
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.attempts == 1
    assert before + timedelta(seconds=29) <= message.send_at <= timezone.now() + timedelta(seconds=31)
    assert history(message) == ["queued", "sending", "retry"]

    outbox.deliver([message.pk], now=message.send_at)
    message.refresh_from_db()
    assert message.attempts == 2
    # The second wait is twice the first.
    assert message.send_at >= before + timedelta(seconds=30 + 59)

    outbox.deliver([message.pk], now=message.send_at)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.attempts == 3
    assert len(SENT) == 3


@pytest.mark.django_db
def test_a_retry_after_from_the_provider_is_honoured():
    message = queue_sms(sms_shopper())
    SCRIPT[message.code] = [DeliveryError("429", code="429", retry_after=600)]

    before = timezone.now()
    outbox.deliver([message.pk])

    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.send_at >= before + timedelta(seconds=600)


@pytest.mark.django_db
def test_a_message_fails_after_the_last_attempt():
    message = queue_sms(sms_shopper())
    SCRIPT[message.code] = [DeliveryError("500", code="500")] * 3

    for _ in range(3):
        message.refresh_from_db()
        outbox.deliver([message.pk], now=message.send_at)

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.attempts == 3
    assert message.status_reason == "too_many_attempts" and message.failed_at
    assert history(message)[-1] == "failed"


@pytest.mark.django_db
def test_a_gone_push_subscription_is_expired_and_not_retried():
    shopper = make_subscriber()
    subscription, _ = services.register_push_subscription(
        subscriber=shopper, endpoint="https://fcm.googleapis.com/fcm/send/gone-1", **push_keys())
    message, _ = outbox.queue_message(subscriber=shopper, channel="push", source_type="campaign", source_id="7",
                                      content={"title": "Sale", "body": "Today"}, push_subscription=subscription)
    SCRIPT[message.code] = [DeliveryError("Gone", permanent=True, code="410")]

    outbox.deliver([message.pk])

    message.refresh_from_db()
    subscription.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.status_reason == "410"
    assert subscription.status == PushSubscriptionStatus.EXPIRED


@pytest.mark.django_db
def test_an_opted_out_number_loses_sms_consent_and_an_invalid_one_is_suppressed():
    opted_out = sms_shopper(phone="+966500000002")
    invalid = sms_shopper(phone="+966500000003")
    first, second = queue_sms(opted_out), queue_sms(invalid)
    SCRIPT[first.code] = [DeliveryError("opted out", permanent=True, code="21610")]
    SCRIPT[second.code] = [DeliveryError("not a valid number", permanent=True, code="21211")]

    outbox.deliver([first.pk, second.pk])

    assert Consent.objects.get(subscriber=opted_out, channel="sms").status == ConsentStatus.REVOKED
    assert Suppression.objects.filter(channel="sms", value="+966500000003").exists()
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.FAILED}


@pytest.mark.django_db
def test_an_sms_whose_fate_is_unknown_is_not_sent_again():
    message = queue_sms(sms_shopper())
    SCRIPT[message.code] = [DeliveryError("timed out", unknown=True)]

    outbox.deliver([message.pk])
    outbox.dispatch_due(now=timezone.now() + timedelta(days=1))

    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN and SENT == [message.code]
    assert history(message)[-1] == "unknown"


@pytest.mark.django_db
def test_a_push_whose_fate_is_unknown_is_retried():
    shopper = make_subscriber()
    subscription, _ = services.register_push_subscription(
        subscriber=shopper, endpoint="https://fcm.googleapis.com/fcm/send/slow-1", **push_keys())
    message, _ = outbox.queue_message(subscriber=shopper, channel="push", source_type="campaign", source_id="8",
                                      content={"title": "T"}, push_subscription=subscription)
    SCRIPT[message.code] = [DeliveryError("timed out", unknown=True)]

    outbox.deliver([message.pk])

    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.attempts == 1


@pytest.mark.django_db
def test_a_message_without_an_address_is_suppressed_with_the_reason():
    shopper = make_subscriber()  # no phone
    message = queue_sms(shopper)

    outbox.deliver([message.pk])

    message.refresh_from_db()
    assert message.status == MessageStatus.SUPPRESSED and message.status_reason
    assert SENT == [] and message.attempts == 0


class WorkerKilled(BaseException):
    """Stands for SIGKILL inside a send: nothing after it runs."""


@pytest.mark.django_db
def test_sms_lost_with_their_worker_are_unknown_if_they_reached_twilio_and_queued_again_if_not():
    long_ago = timezone.now() - timedelta(hours=1)
    delivered = queue_sms(sms_shopper(phone="+966500000011"), "k1", send_at=long_ago)
    in_flight = queue_sms(sms_shopper(phone="+966500000012"), "k2", send_at=long_ago)
    never_tried = queue_sms(sms_shopper(phone="+966500000013"), "k3", send_at=long_ago)
    SCRIPT[in_flight.code] = [WorkerKilled()]

    with pytest.raises(WorkerKilled):
        outbox.deliver([delivered.pk, in_flight.pk, never_tried.pk], now=long_ago)
    counts = outbox.reclaim_stuck()

    statuses = dict(Message.objects.values_list("code", "status"))
    assert counts == {"requeued": 1, "unknown": 1}
    assert statuses == {delivered.code: MessageStatus.SENT, in_flight.code: MessageStatus.UNKNOWN,
                        never_tried.code: MessageStatus.QUEUED}
    outbox.deliver([never_tried.pk])
    assert SENT == [delivered.code, in_flight.code, never_tried.code]


@pytest.mark.django_db
def test_messages_stuck_in_sending_are_queued_again_only_where_a_resend_is_harmless():
    claimed_at = timezone.now() - timedelta(hours=1)
    inapp = outbox.queue_message(subscriber=make_subscriber(), channel="inapp", source_type="api", source_id="1",
                                 content={"title": "Hi"}, send_at=claimed_at)[0]
    sms = queue_sms(sms_shopper(), send_at=claimed_at)
    assert sorted(outbox.claim([inapp.pk, sms.pk], now=claimed_at)) == sorted([inapp.pk, sms.pk])
    # The SMS had reached Twilio when its worker died.
    Message.objects.filter(pk=sms.pk).update(provider="twilio")

    counts = outbox.reclaim_stuck()

    inapp.refresh_from_db()
    sms.refresh_from_db()
    assert counts == {"requeued": 1, "unknown": 1}
    assert inapp.status == MessageStatus.QUEUED and history(inapp)[-1] == "retry"
    assert sms.status == MessageStatus.UNKNOWN and sms.status_reason == "worker_lost"


@pytest.mark.django_db
def test_the_tick_releases_held_messages_when_their_time_comes_and_sends_them(django_capture_on_commit_callbacks):
    message = queue_sms(sms_shopper())
    claimed = outbox.claim([message.pk])
    outbox._hold(Message.objects.get(pk=claimed[0]), until=timezone.now() + timedelta(hours=2), reason="quiet")

    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.dispatch_due() == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.dispatch_due(now=timezone.now() + timedelta(hours=3)) == 1

    message.refresh_from_db()
    # Eager tasks run at "now", before the hold ends: the row is queued again, due later.
    assert message.status == MessageStatus.QUEUED and message.dispatched_at is not None
    outbox.deliver([message.pk], now=timezone.now() + timedelta(hours=3))
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.attempts == 1
    assert history(message) == ["queued", "sending", "held", "queued", "sending", "sent"]


@pytest.mark.django_db
def test_the_tick_does_not_enqueue_a_backlog_again(django_capture_on_commit_callbacks):
    message = queue_sms(sms_shopper(), send_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = outbox.dispatch_due()
        second = outbox.dispatch_due()

    assert (first, second) == (1, 0)
    assert len(callbacks) == 1
    assert Message.objects.get(pk=message.pk).dispatched_at is not None


@pytest.mark.django_db
def test_fan_out_walks_the_audience_in_chunks_and_a_repeat_writes_nothing(django_capture_on_commit_callbacks):
    shoppers = [make_subscriber() for _ in range(5)]
    for shopper in shoppers[:3]:
        services.register_push_subscription(
            subscriber=shopper, endpoint=f"https://fcm.googleapis.com/fcm/send/{shopper.pk}", **push_keys())
    services.register_push_subscription(
        subscriber=shoppers[0], endpoint=f"https://fcm.googleapis.com/fcm/send/{shoppers[0].pk}-phone",
        **push_keys())
    audience = type(shoppers[0]).objects.filter(pk__in=[s.pk for s in shoppers])

    with django_capture_on_commit_callbacks(execute=True):
        counts = outbox.fan_out(audience=audience, channel="push", template=None, source_type="campaign",
                                source_id="42", content={"title": "Sale"}, chunk_size=2)
    with django_capture_on_commit_callbacks(execute=True):
        again = outbox.fan_out(audience=audience, channel="push", template=None, source_type="campaign",
                               source_id="42", content={"title": "Sale"}, chunk_size=2)

    assert counts.pop("last_send_at") is not None and again.pop("last_send_at") is None
    assert counts == {"subscribers": 5, "created": 4, "existing": 0, "failed": 0}
    assert again == {"subscribers": 5, "created": 0, "existing": 4, "failed": 0}
    messages = Message.objects.all()
    assert messages.count() == 4
    assert {m.push_subscription_id for m in messages} == set(PushSubscription.objects.values_list("pk", flat=True))
    assert {m.lane for m in messages} == {MessageLane.BULK}
    assert set(messages.values_list("status", flat=True)) == {MessageStatus.SENT}
    assert sorted(SENT) == sorted(m.code for m in messages)


@pytest.mark.django_db
def test_transactional_sends_and_broadcast_chunks_go_to_different_queues():
    router = app.amqp.router
    assert router.route({}, "delivery.tasks.send_transactional")["queue"].name == "send"
    assert router.route({}, "delivery.tasks.send_bulk_chunk")["queue"].name == "bulk"
    assert router.route({}, "delivery.tasks.dispatch_due")["queue"].name == "schedule"


@pytest.mark.django_db
def test_a_provider_rate_limit_puts_the_excess_back_in_the_queue_without_counting_an_attempt(settings):
    settings.DELIVERY_RATE_LIMITS = "twilio=2/2"
    settings.DELIVERY_RATE_LIMIT_MAX_WAIT_SECONDS = 0
    settings.REDIS_URL = ""
    ratelimit.reset("twilio")
    messages = [queue_sms(sms_shopper(phone=f"+96650000010{n}"), source_id=f"r-{n}") for n in range(5)]

    outcomes = outbox.deliver([m.pk for m in messages])

    assert outcomes == {"sent": 2, "rate_limited": 3}
    waiting = Message.objects.filter(status=MessageStatus.QUEUED)
    assert waiting.count() == 3 and set(waiting.values_list("attempts", flat=True)) == {0}
    assert set(waiting.values_list("status_reason", flat=True)) == {"rate_limited"}
    ratelimit.reset("twilio")


@pytest.mark.django_db
def test_provider_status_callbacks_move_the_message_on_and_unknown_ids_are_ignored():
    delivered, failed = queue_sms(sms_shopper(phone="+966500000004"), "a"), queue_sms(
        sms_shopper(phone="+966500000005"), "b")
    outbox.deliver([delivered.pk, failed.pk])
    delivered.refresh_from_db()
    failed.refresh_from_db()

    outbox.record_provider_status(provider="twilio", provider_id=delivered.provider_id, status="delivered")
    outbox.record_provider_status(provider="twilio", provider_id=failed.provider_id, status="undelivered",
                                  error_code="30003", error_message="Unreachable handset")
    # A late "sent" does not take a delivered message back.
    outbox.record_provider_status(provider="twilio", provider_id=delivered.provider_id, status="sent")

    delivered.refresh_from_db()
    failed.refresh_from_db()
    assert delivered.status == MessageStatus.DELIVERED and delivered.delivered_at
    assert failed.status == MessageStatus.FAILED and failed.status_reason == "30003"
    assert outbox.record_provider_status(provider="twilio", provider_id="SMnope", status="delivered") is None
    assert history(delivered) == ["queued", "sending", "sent", "delivered"]


@pytest.mark.django_db
def test_display_and_clicks_are_recorded_once_and_imply_delivery():
    message = outbox.queue_message(subscriber=make_subscriber(), channel="inapp", source_type="api",
                                   source_id="d", content={"title": "Hi"})[0]
    outbox.deliver([message.pk])

    first = outbox.mark_displayed(code=message.code)
    outbox.mark_displayed(code=message.code)
    outbox.mark_clicked(code=message.code, action="buy")
    outbox.mark_clicked(code=message.code)

    message.refresh_from_db()
    assert message.displayed_at == first.displayed_at and message.clicked_at
    assert message.status == MessageStatus.DELIVERED
    assert history(message).count("displayed") == 1 and history(message).count("clicked") == 2
    assert outbox.mark_displayed(code="nope") is None


@pytest.mark.django_db
def test_an_unsubscribe_from_a_message_revokes_consent_on_its_channel():
    shopper = make_subscriber(email="sara@example.com")
    services.grant_consent(subscriber=shopper, channel="email", source=Source.API)
    message = outbox.queue_message(subscriber=shopper, channel="email", source_type="campaign", source_id="5",
                                   content={"subject": "S", "html": "<p>x</p>", "text": "x"})[0]

    outbox.record_unsubscribe(code=message.code, channel="email")

    assert Consent.objects.get(subscriber=shopper, channel="email").status == ConsentStatus.REVOKED
    assert history(message)[-1] == "unsubscribed"


@pytest.mark.django_db
def test_cancelling_a_broadcast_stops_messages_not_yet_sent():
    later = queue_sms(sms_shopper(), send_at=timezone.now() + timedelta(hours=5))

    assert outbox.cancel_pending(Message.objects.filter(source_id="order-1")) == 1
    outbox.deliver([later.pk], now=timezone.now() + timedelta(hours=6))

    later.refresh_from_db()
    assert later.status == MessageStatus.CANCELLED and SENT == []


class BatchBackend(ChannelBackend):
    """A provider with its own send_many (many sends in flight), as web push has."""

    provider = "batched"

    def send(self, message):
        raise AssertionError("the outbox hands whole batches to send_many")

    def send_many(self, messages):
        SENT.extend(message.code for message in messages)
        return [DeliveryError("gone", permanent=True, code="410") if SCRIPT.get(message.code)
                else SendResult(provider_id=f"loc-{message.code}") for message in messages]


@pytest.mark.django_db
def test_a_batch_from_send_many_is_recorded_in_a_fixed_number_of_queries(settings, django_assert_max_num_queries):
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS, "inapp": f"{__name__}.BatchBackend"}
    reset_backends()
    messages = [outbox.queue_message(subscriber=make_subscriber(), channel="inapp", source_type="campaign",
                                     source_id="b", content={"title": "x"})[0] for _ in range(40)]
    SCRIPT[messages[0].code] = ["fail"]

    with django_assert_max_num_queries(40):
        outcomes = outbox.deliver([m.pk for m in messages])

    assert outcomes == {"failed": 1, "sent": 39}
    assert Message.objects.get(pk=messages[1].pk).provider_id == f"loc-{messages[1].code}"
    assert Message.objects.get(pk=messages[0].pk).status == MessageStatus.FAILED
    assert MessageEvent.objects.filter(kind="sent").count() == 39
    sent = Message.objects.get(pk=messages[1].pk)
    assert sent.sent_at is not None and abs((timezone.now() - sent.sent_at).total_seconds()) < 600
    assert history(sent) == ["queued", "sending", "sent"]
    assert sent.history.get(kind="sent").detail == {"provider": "batched"}
