"""The ops admin: every screen renders, list pages stay bounded, and changes go through the services."""
import hashlib
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from subscribers import services, signals
from subscribers.models import (
    AnonymousId,
    ApiKey,
    ApiKeyKind,
    Cart,
    Channel,
    Consent,
    ConsentChange,
    ConsentStatus,
    Event,
    ImportJob,
    Order,
    OrderStatus,
    PushPromptConfig,
    PushSubscription,
    PushSubscriptionStatus,
    Source,
    Subscriber,
)
from tests.factories import make_subscriber, push_keys, secret_client

pytestmark = pytest.mark.django_db


def make_shopper(external_id="c-1", events=3):
    """A known shopper with something in every related table, written through the services."""
    shopper = make_subscriber(external_id, first_name="Layla", last_name="Haddad", email=f"{external_id}@example.com",
                              phone="+966501234567", locale="ar", timezone="Asia/Riyadh", country="SA")
    services.resolve_subscriber(external_id=external_id, anonymous_id=f"browser-{external_id}")
    services.grant_consent(subscriber=shopper, channel=Channel.SMS, source=Source.API)
    services.grant_consent(subscriber=shopper, channel=Channel.EMAIL, source=Source.API)
    services.register_push_subscription(subscriber=shopper, endpoint=f"https://fcm.googleapis.com/fcm/send/{external_id}",
                                        user_agent="Mozilla/5.0 Chrome/120.0", **push_keys())
    start = timezone.now() - timedelta(days=1)
    for n in range(events):
        services.record_event(subscriber=shopper, name="product_viewed", event_id=f"{external_id}-view-{n}",
                              properties={"product_id": f"sku-{n:03d}"}, occurred_at=start + timedelta(minutes=n))
    services.update_cart(subscriber_id=shopper.pk, cart_id=f"cart-{external_id}",
                         items=[{"product_id": "p1", "title": "Shoes", "price": "60", "quantity": 1}])
    services.place_order(subscriber_id=shopper.pk, order_id=f"order-{external_id}",
                         items=[{"product_id": "p9", "title": "Bag", "price": "90", "quantity": 1}])
    return Subscriber.objects.get(pk=shopper.pk)


@pytest.fixture
def shopper():
    return make_shopper()


def every_model_row():
    key, _ = ApiKey.create_secret("Store backend")
    job = ImportJob.objects.create(resource="subscribers", file=ContentFile(b"external_id\nc-1\n", name="a.csv"))
    return {
        Subscriber: Subscriber.objects.first(), AnonymousId: AnonymousId.objects.first(),
        Consent: Consent.objects.first(), ConsentChange: ConsentChange.objects.first(),
        PushSubscription: PushSubscription.objects.first(), Event: Event.objects.first(), Cart: Cart.objects.first(),
        Order: Order.objects.first(), ApiKey: key, PushPromptConfig: PushPromptConfig.current(), ImportJob: job,
    }


def test_every_list_and_change_page_renders_for_a_superuser(admin_client, shopper):
    for model, row in every_model_row().items():
        name = model._meta.model_name
        listing = admin_client.get(reverse(f"admin:subscribers_{name}_changelist"))
        assert listing.status_code == 200, name
        assert listing.context["cl"].result_count >= 1, name
        page = admin_client.get(reverse(f"admin:subscribers_{name}_change", args=[row.pk]))
        assert page.status_code == 200, name


def test_list_pages_can_be_searched_and_filtered(admin_client, shopper):
    checks = [
        ("subscriber", {"q": "c-1"}), ("subscriber", {"kind": "known", "lifecycle_stage": "active"}),
        ("event", {"name": "product_viewed", "q": "c-1"}), ("consent", {"channel": "sms", "q": "c-1"}),
        ("consentchange", {"status": "granted", "channel": "sms"}), ("order", {"status": "placed", "q": "order-c-1"}),
        ("cart", {"status": "active"}), ("pushsubscription", {"status": "active"}),
        ("anonymousid", {"q": "browser-c-1"}),
    ]
    for name, query in checks:
        response = admin_client.get(reverse(f"admin:subscribers_{name}_changelist"), query)
        assert response.status_code == 200, name
        assert response.context["cl"].result_count == (3 if name == "event" else 1), (name, query)


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_subscriber_list_runs_the_same_number_of_queries_for_few_or_many_rows(admin_client):
    url = reverse("admin:subscribers_subscriber_changelist")
    make_subscriber("a-1")
    count_queries(admin_client, url)  # warm the session and content types
    few = count_queries(admin_client, url)
    for n in range(40):
        make_subscriber(f"b-{n}")
    assert count_queries(admin_client, url) == few


def test_the_event_list_runs_the_same_number_of_queries_for_few_or_many_rows(admin_client):
    url = reverse("admin:subscribers_event_changelist")
    make_shopper("a-1", events=1)
    count_queries(admin_client, url)
    few = count_queries(admin_client, url)
    for n in range(5):
        make_shopper(f"b-{n}", events=10)
    assert count_queries(admin_client, url) == few


def test_the_subscriber_page_shows_consents_subscriptions_newest_events_carts_and_orders(admin_client):
    shopper = make_shopper(events=30)
    page = admin_client.get(reverse("admin:subscribers_subscriber_change", args=[shopper.pk])).content.decode()

    assert "fcm.googleapis.com" in page and "Chrome" in page
    assert "cart-c-1" in page and "order-c-1" in page and "browser-c-1" in page
    # The newest 25 events: the three subscriptions (sms, email, push) and the 22 newest views…
    assert page.count("sku-029") == 1 and "sku-008" in page and page.count(">subscribed<") == 3
    assert "sku-007" not in page                              # …and not the 8 oldest
    assert f"subscriber__id__exact={shopper.pk}" in page


def test_saving_a_subscriber_applies_the_apis_rules_to_the_phone(admin_client):
    shopper = make_subscriber("c-2")
    url = reverse("admin:subscribers_subscriber_change", args=[shopper.pk])
    form = {"external_id": "c-2", "first_name": "Omar", "last_name": "", "email": "", "phone": "050 123 4567",
            "locale": "ar_sa", "timezone": "Asia/Riyadh", "country": "sa", "city": "", "latitude": "", "longitude": "",
            "birthday": "", "gender": "", "attributes": "{}", "tags": "[]", "subscribed_page_url": "",
            "subscribed_category": ""}
    for prefix in ("consents", "push_subscriptions", "events", "carts", "orders", "consent_changes",
                   "anonymous_ids"):
        form.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})

    assert admin_client.post(url, form).status_code == 302
    shopper.refresh_from_db()
    assert (shopper.phone, shopper.locale, shopper.country) == ("+966501234567", "ar-SA", "SA")

    refused = admin_client.post(url, {**form, "phone": "12345", "timezone": "Riyadh"})
    assert refused.status_code == 200
    assert set(refused.context["adminform"].form.errors) == {"phone", "timezone"}


def test_revoking_sms_consent_from_the_subscriber_list_goes_through_the_service(admin_client, shopper):
    heard = []

    def receiver(sender, **kwargs):
        heard.append(kwargs)
    signals.consent_changed.connect(receiver)
    try:
        response = admin_client.post(reverse("admin:subscribers_subscriber_changelist"), {
            "action": "revoke_sms_consent", "_selected_action": [shopper.pk]})
    finally:
        signals.consent_changed.disconnect(receiver)

    assert response.status_code == 302
    change = ConsentChange.objects.filter(subscriber=shopper, channel=Channel.SMS).order_by("-id").first()
    assert (change.status, change.source, change.evidence["admin_user"]) == (
        ConsentStatus.REVOKED, Source.ADMIN, "admin")
    assert not services.has_consent(shopper, Channel.SMS)
    assert services.has_consent(shopper, Channel.EMAIL)


def test_the_consent_list_revokes_and_grants_through_the_service(admin_client, shopper):
    email = Consent.objects.get(subscriber=shopper, channel=Channel.EMAIL)
    url = reverse("admin:subscribers_consent_changelist")
    admin_client.post(url, {"action": "revoke_selected", "_selected_action": [email.pk]})
    admin_client.post(url, {"action": "grant_selected", "_selected_action": [email.pk]})

    history = list(ConsentChange.objects.filter(subscriber=shopper, channel=Channel.EMAIL)
                   .order_by("occurred_at", "id").values_list("status", "source"))
    assert history == [(ConsentStatus.GRANTED, Source.API), (ConsentStatus.REVOKED, Source.ADMIN),
                       (ConsentStatus.GRANTED, Source.ADMIN)]


def test_a_consent_cannot_be_edited_or_deleted_directly(admin_client, shopper):
    consent = Consent.objects.filter(subscriber=shopper).first()
    url = reverse("admin:subscribers_consent_change", args=[consent.pk])
    admin_client.post(url, {"status": "revoked"})
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.GRANTED
    assert admin_client.get(reverse("admin:subscribers_consent_delete", args=[consent.pk])).status_code == 403


def test_granting_sms_to_a_shopper_without_a_phone_is_refused_with_the_reason(admin_client):
    nobody = make_subscriber("c-3", phone="+966501234567")
    services.grant_consent(subscriber=nobody, channel=Channel.SMS, source=Source.API)
    services.revoke_consent(subscriber=nobody, channel=Channel.SMS, source=Source.API)
    Subscriber.objects.filter(pk=nobody.pk).update(phone="")
    consent = Consent.objects.get(subscriber=nobody)

    response = admin_client.post(reverse("admin:subscribers_consent_changelist"),
                                 {"action": "grant_selected", "_selected_action": [consent.pk]}, follow=True)
    assert "A phone number is needed" in response.content.decode()
    assert not services.has_consent(nobody, Channel.SMS)


def test_erasing_asks_for_confirmation_then_erases_everything(admin_client, shopper):
    url = reverse("admin:subscribers_subscriber_changelist")
    asked = admin_client.post(url, {"action": "erase_subscribers", "_selected_action": [shopper.pk]})
    assert asked.status_code == 200 and "be undone" in asked.content.decode()
    assert Subscriber.objects.filter(pk=shopper.pk).exists()

    erased = []
    signals.subscriber_erased.connect(lambda sender, **kw: erased.append(kw["subscriber_id"]), weak=False,
                                      dispatch_uid="test-erase")
    try:
        done = admin_client.post(url, {"action": "erase_subscribers", "_selected_action": [shopper.pk], "post": "yes"})
    finally:
        signals.subscriber_erased.disconnect(dispatch_uid="test-erase")
    assert done.status_code == 302
    assert not Subscriber.objects.filter(pk=shopper.pk).exists()
    assert not Event.objects.exists() and not Order.objects.exists() and not ConsentChange.objects.exists()
    assert "delete_selected" not in admin_client.get(url).context["action_form"].fields["action"].choices.__str__()


def test_the_delete_button_of_a_subscriber_is_an_erasure(admin_client, shopper, django_capture_on_commit_callbacks):
    url = reverse("admin:subscribers_subscriber_delete", args=[shopper.pk])
    assert "Yes, erase" in admin_client.get(url).content.decode()
    erased = []
    signals.subscriber_erased.connect(lambda sender, **kw: erased.append(kw["subscriber_id"]), weak=False,
                                      dispatch_uid="test-erase-button")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(url, {"post": "yes"})
    finally:
        signals.subscriber_erased.disconnect(dispatch_uid="test-erase-button")
    assert erased == [shopper.pk]
    assert not Subscriber.objects.exists()


def test_refreshing_commerce_stats_fixes_figures_that_drifted(admin_client, shopper):
    Subscriber.objects.filter(pk=shopper.pk).update(orders_count=0, total_spent=0)
    admin_client.post(reverse("admin:subscribers_subscriber_changelist"),
                      {"action": "refresh_commerce_stats", "_selected_action": [shopper.pk]})
    shopper.refresh_from_db()
    assert (shopper.orders_count, str(shopper.total_spent)) == (1, "90.00")


def test_marking_a_push_subscription_unsubscribed_goes_through_the_service(admin_client, shopper):
    sub = PushSubscription.objects.get(subscriber=shopper)
    admin_client.post(reverse("admin:subscribers_pushsubscription_changelist"),
                      {"action": "mark_unsubscribed", "_selected_action": [sub.pk]})
    sub.refresh_from_db()
    assert sub.status == PushSubscriptionStatus.UNSUBSCRIBED
    assert not services.has_consent(shopper, Channel.PUSH)  # it was the shopper's only browser


def test_marking_an_order_delivered_keeps_its_dates(admin_client, shopper):
    order = Order.objects.get(subscriber=shopper)
    admin_client.post(reverse("admin:subscribers_order_changelist"),
                      {"action": "mark_delivered", "_selected_action": [order.pk]})
    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED and order.delivered_at is not None


def test_creating_a_secret_key_shows_the_raw_key_once_and_stores_only_its_hash(admin_client):
    response = admin_client.post(reverse("admin:subscribers_apikey_add"),
                                 {"name": "Store backend", "kind": "secret", "allowed_origins_text": "",
                                  "require_identity_verification": "on"}, follow=True)
    shown = [str(m) for m in response.context["messages"] if "tanbih-secret-key" in str(m)]
    assert len(shown) == 1
    raw = shown[0].split("<code class='tanbih-secret-key'>")[1].split("</code>")[0]

    key = ApiKey.objects.get()
    assert key.kind == ApiKeyKind.SECRET and key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {key.prefix, key.publishable_key, key.identity_secret, key.name}
    assert raw in response.content.decode()
    for url in (reverse("admin:subscribers_apikey_changelist"),
                reverse("admin:subscribers_apikey_change", args=[key.pk])):
        assert raw not in admin_client.get(url).content.decode()
    assert secret_client(raw).get("/api/v1/subscribers/nobody").status_code == 404  # the key works


def test_a_publishable_key_shows_its_key_and_identity_secret_on_its_page(admin_client):
    admin_client.post(reverse("admin:subscribers_apikey_add"), {
        "name": "Storefront", "kind": "publishable", "require_identity_verification": "on",
        "allowed_origins_text": "https://Shop.example/\nhttps://www.shop.example"})
    key = ApiKey.objects.get()
    page = admin_client.get(reverse("admin:subscribers_apikey_change", args=[key.pk])).content.decode()

    assert key.allowed_origins == ["https://shop.example", "https://www.shop.example"]
    assert key.publishable_key in page and key.identity_secret in page


def test_a_publishable_key_needs_an_origin(admin_client):
    response = admin_client.post(reverse("admin:subscribers_apikey_add"), {
        "name": "Storefront", "kind": "publishable", "allowed_origins_text": "shop.example/path"})
    assert response.status_code == 200 and not ApiKey.objects.exists()
    assert "not an origin" in response.content.decode()


def test_a_revoked_key_stops_working(admin_client):
    key, raw = ApiKey.create_secret("Old backend")
    admin_client.post(reverse("admin:subscribers_apikey_changelist"),
                      {"action": "revoke_keys", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert not key.is_active
    assert secret_client(raw).get("/api/v1/subscribers/nobody").status_code == 401


def test_adding_an_import_job_leads_to_the_upload_page(admin_client):
    response = admin_client.get(reverse("admin:subscribers_importjob_add"))
    assert response["Location"] == reverse("admin:subscribers_importjob_upload")
    page = admin_client.get(reverse("admin:subscribers_importjob_upload") + "?resource=orders")
    assert page.status_code == 200 and page.context["form"].initial["resource"] == "orders"


def test_the_list_pages_link_to_the_background_import(admin_client):
    for name, resource in (("subscriber", "subscribers"), ("consent", "consents"), ("order", "orders")):
        page = admin_client.get(reverse(f"admin:subscribers_{name}_changelist")).content.decode()
        assert f"{reverse('admin:subscribers_importjob_upload')}?resource={resource}" in page
        assert reverse(f"admin:subscribers_{name}_import") in page
        assert reverse(f"admin:subscribers_{name}_export") in page


def test_a_big_unfiltered_event_list_is_not_counted_row_by_row(admin_client, monkeypatch):
    from subscribers.admin import LargeTablePaginator

    for n in range(3):
        make_shopper(f"e-{n}", events=4)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE subscribers_event")
    monkeypatch.setattr(LargeTablePaginator, "EXACT_BELOW", 1)  # treat this table as big
    url = reverse("admin:subscribers_event_changelist")

    with CaptureQueriesContext(connection) as queries:
        listing = admin_client.get(url)
    assert listing.context["cl"].result_count == 21  # 4 views and 3 subscriptions (sms, email, push) each
    counted = any("COUNT(*)" in q["sql"] and "subscribers_event" in q["sql"] for q in queries.captured_queries)
    assert counted == (connection.vendor != "postgresql")  # PostgreSQL answers from its statistics
    assert admin_client.get(url, {"q": "e-1"}).context["cl"].result_count == 7


def test_events_can_be_found_by_customer_id_event_id_or_name(admin_client, shopper):
    url = reverse("admin:subscribers_event_changelist")
    assert admin_client.get(url, {"q": "c-1"}).context["cl"].result_count == 6  # 3 views, 3 subscriptions
    assert admin_client.get(url, {"q": "c-1-view-2"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": "product_viewed"}).context["cl"].result_count == 3
    assert admin_client.get(url, {"q": "nobody"}).context["cl"].result_count == 0


def test_deleting_import_jobs_deletes_their_upload_once_no_job_uses_it(admin_client):
    checked = ImportJob.objects.create(resource="subscribers", file=ContentFile(b"external_id\n", name="a.csv"))
    imported = ImportJob.objects.create(resource="subscribers", file=checked.file.name, dry_run=False)
    storage = ImportJob.file.field.storage
    url = reverse("admin:subscribers_importjob_changelist")

    admin_client.post(url, {"action": "delete_selected", "_selected_action": [checked.pk], "post": "yes"})
    assert storage.exists(imported.file.name)
    admin_client.post(url, {"action": "delete_selected", "_selected_action": [imported.pk], "post": "yes"})
    assert not storage.exists(imported.file.name) and not ImportJob.objects.exists()
