import pytest
from django.core.exceptions import ValidationError

from subscribers import services, signals
from subscribers.models import Channel, ConsentChange, ConsentStatus, PushSubscription, Source

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shopper():
    return services.upsert_subscriber(external_id="c1", phone="+966501234567", email="a@example.com")[0]


def test_every_grant_and_revocation_is_kept_in_order(shopper):
    services.grant_consent(subscriber=shopper, channel=Channel.SMS, source=Source.API, evidence={"form": "checkout"})
    services.revoke_consent(subscriber=shopper, channel=Channel.SMS, source=Source.KEYWORD, evidence={"body": "STOP"})
    services.grant_consent(subscriber=shopper, channel=Channel.SMS, source=Source.ADMIN)

    history = list(ConsentChange.objects.filter(subscriber=shopper, channel=Channel.SMS).order_by("occurred_at", "id"))
    assert [(c.status, c.source) for c in history] == [
        (ConsentStatus.GRANTED, Source.API), (ConsentStatus.REVOKED, Source.KEYWORD), (ConsentStatus.GRANTED, Source.ADMIN)]
    assert history[1].evidence == {"body": "STOP"}
    assert services.has_consent(shopper, Channel.SMS)


def test_granting_what_is_already_granted_writes_no_history(shopper):
    services.grant_consent(subscriber=shopper, channel=Channel.EMAIL, source=Source.API)
    _, changed = services.grant_consent(subscriber=shopper, channel=Channel.EMAIL, source=Source.API)
    assert not changed
    assert ConsentChange.objects.filter(channel=Channel.EMAIL).count() == 1


def test_sms_consent_needs_a_phone_number():
    nobody = services.upsert_subscriber(external_id="c2")[0]
    with pytest.raises(ValidationError):
        services.grant_consent(subscriber=nobody, channel=Channel.WHATSAPP, source=Source.API)


def test_upper_apps_hear_of_a_revocation_after_it_is_stored(shopper):
    heard = []

    def receiver(sender, **kwargs):
        heard.append((kwargs, ConsentChange.objects.filter(subscriber_id=kwargs["subscriber_id"]).count()))

    signals.consent_changed.connect(receiver)
    try:
        services.grant_consent(subscriber=shopper, channel=Channel.SMS, source=Source.API)
        services.revoke_consent(subscriber=shopper, channel=Channel.SMS, source=Source.KEYWORD)
    finally:
        signals.consent_changed.disconnect(receiver)
    assert [h[0]["granted"] for h in heard] == [True, False]
    assert heard[-1][1] == 2


def test_losing_the_last_push_subscription_revokes_push_consent(shopper):
    for n in (1, 2):
        services.register_push_subscription(subscriber=shopper, endpoint=f"https://fcm.googleapis.com/fcm/send/{n}",
                                            p256dh="k", auth="a")
    services.expire_push_subscription(endpoint="https://fcm.googleapis.com/fcm/send/1", reason="410 Gone")
    assert services.has_consent(shopper, Channel.PUSH)

    services.unregister_push_subscription(endpoint="https://fcm.googleapis.com/fcm/send/2")

    assert not services.has_consent(shopper, Channel.PUSH)
    assert PushSubscription.objects.get(endpoint__endswith="/1").last_failure_reason == "410 Gone"


def test_a_browser_that_changes_hands_moves_its_subscription(shopper):
    other = services.upsert_subscriber(external_id="c3")[0]
    endpoint = "https://updates.push.services.mozilla.com/wpush/v2/abc"
    services.register_push_subscription(subscriber=shopper, endpoint=endpoint, p256dh="k", auth="a")

    sub, created = services.register_push_subscription(subscriber=other, endpoint=endpoint, p256dh="k2", auth="a2",
                                                       user_agent="Mozilla/5.0 Firefox/120")

    assert not created
    assert sub.subscriber_id == other.pk and sub.browser == "Firefox"
    assert PushSubscription.objects.count() == 1
