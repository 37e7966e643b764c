"""The shopper pages: the searchable list and a shopper's 360° page (profile, consent and its history, browsers,
carts, orders, segments, journeys, and a timeline of events and messages merged by time and paged by htmx),
their permissions, escaping, and a query count that does not grow with the shopper's history."""
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from analytics.subscriber_profile import Cursor, timeline
from campaigns.models import Campaign
from campaigns.roles import VIEWERS, ensure_roles
from delivery.models import DeliveryChannel, Message, MessageStatus, MessageTemplate
from journeys import engine
from journeys.models import Enrolment, Journey
from subscribers import services
from subscribers.models import Channel, Event, Order, Segment, SegmentKind, SegmentMembership, Source, Subscriber
from tests.factories import make_subscriber, push_keys

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
STEPS = {"start": "wait-1h", "steps": {"wait-1h": {"type": "wait", "minutes": 60, "next": "end"},
                                      "end": {"type": "exit"}}}


def user_with(username, *codenames, group=None):
    user = User.objects.create_user(username, password="a-long-password-1", is_staff=True)
    if group:
        ensure_roles()
        user.groups.add(Group.objects.get(name=group))
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("sara", "sara@example.com", "a-long-password-1"))
    return client


@pytest.fixture
def viewer_client(client):
    client.force_login(user_with("omar", group=VIEWERS))
    return client


def text(response):
    return response.content.decode()


def message(subscriber, *, at, channel=DeliveryChannel.SMS, template=None, source_type="api", source_id="",
            **fields):
    """A message row as the outbox leaves it after its fate is known (the page only reads these columns)."""
    return Message.objects.create(
        idempotency_key=f"{source_type}:{source_id}:{subscriber.pk}:{channel}:{at.isoformat()}",
        code=f"m{Message.objects.count() + 1:06d}", subscriber=subscriber, channel=channel, template=template,
        source_type=source_type, source_id=source_id, queued_at=at, send_at=at, to=subscriber.phone, **fields)


@pytest.fixture
def layla():
    """A known shopper with a little of everything."""
    shopper = make_subscriber("cust-42", first_name="Layla", last_name="Haddad", email="layla@example.com",
                              phone="+966500000042", locale="ar", timezone="Asia/Riyadh", city="Riyadh",
                              country="SA")
    services.update_profile(subscriber=shopper, attributes={"shoe_size": 38, "favourite": "sandals"},
                            add_tags=["vip"])
    services.grant_consent(subscriber=shopper, channel=Channel.SMS, source=Source.API, at=NOW - timedelta(days=9))
    services.revoke_consent(subscriber=shopper, channel=Channel.SMS, source=Source.KEYWORD,
                            at=NOW - timedelta(days=2))
    services.grant_consent(subscriber=shopper, channel=Channel.EMAIL, source=Source.IMPORT,
                           at=NOW - timedelta(days=5))
    services.register_push_subscription(subscriber=shopper, endpoint="https://fcm.googleapis.com/fcm/send/l42",
                                        user_agent="Mozilla/5.0 Chrome/131", **push_keys())
    services.update_cart(subscriber_id=shopper.pk, cart_id="cart-7", currency="SAR", at=NOW - timedelta(days=3),
                         items=[{"product_id": "p1", "title": "Red sandals", "price": "1234.50", "quantity": 1}])
    services.place_order(subscriber_id=shopper.pk, order_id="order-9", cart_id="cart-7", at=NOW - timedelta(days=1),
                         items=[{"product_id": "p1", "title": "Red sandals", "price": "1234.50", "quantity": 1}])
    services.record_event(subscriber=shopper, name="product_viewed", properties={"product_id": "p1"},
                          occurred_at=NOW - timedelta(days=4))
    shopper.refresh_from_db()
    return shopper


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, layla):
    for url in ("/app/subscribers/", f"/app/subscribers/{layla.pk}/",
                f"/app/subscribers/{layla.pk}/timeline/?after={NOW.isoformat()}~event~1"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_staff_member_who_may_not_view_shoppers_is_refused(client, layla):
    client.force_login(user_with("sami", "view_campaign"))

    assert client.get("/app/subscribers/").status_code == 403
    assert client.get(f"/app/subscribers/{layla.pk}/").status_code == 403


def test_a_viewer_reads_the_list_and_the_page_with_contact_details_masked(viewer_client, layla):
    listing = text(viewer_client.get("/app/subscribers/"))
    page = text(viewer_client.get(f"/app/subscribers/{layla.pk}/"))

    for html in (listing, page):
        assert "Layla Haddad" in html
        assert "l•••@example.com" in html and "+966•••••••42" in html
        assert "layla@example.com" not in html and "+966500000042" not in html
    assert f'href="/app/subscribers/{layla.pk}/"' in listing


def test_an_admin_sees_the_whole_email_and_phone_and_a_link_to_the_admin(admin_client, layla):
    page = text(admin_client.get(f"/app/subscribers/{layla.pk}/"))

    assert "layla@example.com" in page and "+966500000042" in page
    assert f"/admin/subscribers/subscriber/{layla.pk}/change/" in page


def test_the_page_shows_the_profile_consent_history_browsers_carts_and_orders(viewer_client, layla):
    page = text(viewer_client.get(f"/app/subscribers/{layla.pk}/"))

    assert "cust-42" in page and "Asia/Riyadh" in page and "Riyadh" in page
    assert "<code>shoe_size</code></th><td>38</td>" in page and "sandals" in page
    assert '<li class="badge">vip</li>' in page
    sms = page.split('data-channel="sms"')[1].split("data-channel=")[0]
    assert "Revoked" in sms and "Keyword (STOP)" in sms and "2 changes" in sms
    email = page.split('data-channel="email"')[1].split("data-channel=")[0]
    assert "Granted" in email and "Import" in email
    assert "None recorded" in page.split('data-channel="whatsapp"')[1].split("data-channel=")[0]
    push = page.split('class="list s360-push"')[1].split("</table>")[0]
    assert "Active" in push
    carts = page.split('class="list s360-carts"')[1].split("</table>")[0]
    assert "cart-7" in carts and "Converted" in carts and "Red sandals" in carts and "SAR\u00a01,234.50" in carts
    orders = page.split('class="list s360-orders"')[1].split("</table>")[0]
    assert "order-9" in orders and "SAR\u00a01,234.50" in orders


def test_the_predictions_show_once_the_shopper_is_scored(viewer_client, layla):
    before = text(viewer_client.get(f"/app/subscribers/{layla.pk}/")).split('id="s360-scores"')[1]
    Subscriber.objects.filter(pk=layla.pk).update(best_send_hour=21, purchase_likelihood=Decimal("0.7312"),
                                                  churn_risk=Decimal("0.0450"), scores_updated_at=NOW)

    after = text(viewer_client.get(f"/app/subscribers/{layla.pk}/")).split('id="s360-scores"')[1]

    assert "Not scored yet" in before
    assert "21:00" in after and "73.1%" in after and "4.5%" in after and "Not scored yet" not in after


def test_the_segments_listed_are_those_the_shopper_is_in_now(viewer_client, layla):
    other = make_subscriber("cust-43", first_name="Omar")
    vip = Segment.objects.create(name="VIPs", rules={"type": "group", "match": "all", "conditions": [
        {"type": "tags", "operator": "has_any", "value": ["vip"]}]})
    Segment.objects.create(name="Big spenders", rules={"type": "group", "match": "all", "conditions": [
        {"type": "commerce", "field": "total_spent", "operator": "gte", "value": 5000}]})
    Segment.objects.create(name="VIPs in Riyadh", rules={"type": "group", "match": "all", "conditions": [
        {"type": "segment", "segment": vip.pk, "operator": "in"},
        {"type": "location", "field": "city", "operator": "in", "value": ["Riyadh"]}]})
    listed = Segment.objects.create(name="Hand-picked", kind=SegmentKind.STATIC)
    SegmentMembership.objects.create(segment=listed, subscriber=layla)
    SegmentMembership.objects.create(segment=Segment.objects.create(name="Omar's list", kind=SegmentKind.STATIC),
                                     subscriber=other)

    section = text(viewer_client.get(f"/app/subscribers/{layla.pk}/")).split('id="s360-segments"')[1]
    section = section.split("</section>")[0]

    assert re.findall(r'<a href="/app/segments/\d+/">([^<]+)</a>', section) == ["Hand-picked", "VIPs",
                                                                                 "VIPs in Riyadh"]
    assert "Checked against 5 saved segments now." in section


def test_the_journeys_show_each_enrolment_with_its_status_and_current_step(viewer_client, layla):
    welcome = Journey.objects.create(name="Welcome series", trigger_event="signed_up", status="active")
    version = engine.publish(welcome, STEPS)
    Enrolment.objects.create(journey=welcome, version=version, subscriber=layla, step="wait-1h", is_waiting=True,
                             next_run_at=NOW + timedelta(hours=1))

    section = text(viewer_client.get(f"/app/subscribers/{layla.pk}/")).split('id="s360-journeys"')[1]

    assert "Welcome series" in section and "In the journey" in section
    assert "<code>wait-1h</code>" in section and "wait" in section


def test_the_timeline_merges_events_and_messages_by_time_with_each_messages_fate(viewer_client, layla):
    template = MessageTemplate.objects.create(name="Cart reminder", slug="cart-reminder")
    campaign = Campaign.objects.create(name="Ramadan sale")
    message(layla, at=NOW - timedelta(hours=5), template=template, source_type="campaign",
            source_id=f"{campaign.pk}:A", status=MessageStatus.DELIVERED, sent_at=NOW - timedelta(hours=5),
            delivered_at=NOW - timedelta(hours=5), displayed_at=NOW - timedelta(hours=4),
            clicked_at=NOW - timedelta(hours=3))
    message(layla, at=NOW - timedelta(days=6), status=MessageStatus.FAILED, status_reason="Unreachable handset")

    page = text(viewer_client.get(f"/app/subscribers/{layla.pk}/"))
    entries = re.findall(r'data-kind="(\w+)">\s*<time datetime="([^"]+)"', page)
    times = [at for _kind, at in entries]

    assert times == sorted(times, reverse=True)
    assert [kind for kind, _at in entries].count("message") == 2
    assert len(entries) == Event.objects.filter(subscriber=layla).count() + 2
    delivered, failed = page.split('data-kind="message"')[1:3]
    assert "Cart reminder" in delivered and "Delivered" in delivered and "Ramadan sale" in delivered
    assert "s360-displayed" in delivered and "s360-clicked" in delivered
    assert f'href="/app/campaigns/{campaign.pk}/"' in delivered
    assert "Failed" in failed and "Unreachable handset" in failed and "s360-clicked" not in failed


def test_the_timeline_pages_by_cursor_without_losing_or_repeating_rows_that_share_a_time():
    shopper = make_subscriber("cust-77")
    at = NOW - timedelta(hours=1)
    for n in range(7):
        services.record_event(subscriber=shopper, name="product_viewed", properties={"n": n}, occurred_at=at)
        message(shopper, at=at, source_id=str(n))

    seen, cursor = [], None
    while True:
        page, cursor = timeline(shopper, cursor=cursor, size=4)
        seen += [(entry.kind, entry.row.pk) for entry in page]
        if cursor is None:
            break
        cursor = Cursor.parse(str(cursor))

    everything = ({("event", pk) for pk in Event.objects.filter(subscriber=shopper).values_list("pk", flat=True)}
                  | {("message", pk) for pk in Message.objects.filter(subscriber=shopper).values_list("pk", flat=True)})
    assert len(everything) == 14
    assert len(seen) == len(set(seen)) and set(seen) == everything


def test_load_more_returns_the_next_rows_and_a_button_for_the_rest(viewer_client, layla):
    for n in range(30):
        services.record_event(subscriber=layla, name="product_viewed", properties={"n": n},
                              occurred_at=NOW - timedelta(minutes=n))
    page = text(viewer_client.get(f"/app/subscribers/{layla.pk}/"))
    more = re.search(r'hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")

    rest = text(viewer_client.get(more))

    assert page.count('data-kind="event"') == 25
    assert rest.count('data-kind="event"') == Event.objects.filter(subscriber=layla).count() - 25
    assert "Load more" not in rest


def test_a_malformed_timeline_cursor_is_not_found(viewer_client, layla):
    for after in ("", "yesterday~event~1", f"{NOW.isoformat()}~order~1", "2026-01-01T00:00:00~event~1"):
        assert viewer_client.get(f"/app/subscribers/{layla.pk}/timeline/", {"after": after}).status_code == 404


def test_a_hostile_attribute_value_is_shown_as_text(viewer_client, layla):
    services.update_profile(subscriber=layla, attributes={"<b>key</b>": "<script>alert(1)</script>"},
                            add_tags=["<img src=x onerror=alert(2)>"])
    services.record_event(subscriber=layla, name="product_viewed", properties={"title": "<svg onload=alert(3)>"})

    page = text(viewer_client.get(f"/app/subscribers/{layla.pk}/"))

    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<svg onload" not in page and "<b>key</b>" not in page


def test_the_page_runs_the_same_number_of_queries_whatever_the_history(viewer_client, layla,
                                                                         django_assert_max_num_queries):
    welcome = Journey.objects.create(name="Welcome series", trigger_event="signed_up", status="active")
    version = engine.publish(welcome, STEPS)
    campaign = Campaign.objects.create(name="Ramadan sale")
    vip = Segment.objects.create(name="VIPs", rules={"type": "group", "match": "all", "conditions": [
        {"type": "tags", "operator": "has_any", "value": ["vip"]}]})
    Segment.objects.create(name="VIPs who ordered", rules={"type": "group", "match": "all", "conditions": [
        {"type": "segment", "segment": vip.pk, "operator": "in"},
        {"type": "event", "name": "order_placed", "operator": "at_least", "count": 1}]})

    def grow(n):
        for i in range(n):
            at = NOW - timedelta(minutes=10 * i + n)
            services.record_event(subscriber=layla, name="product_viewed", occurred_at=at)
            message(layla, at=at, source_type="campaign", source_id=f"{campaign.pk}:A",
                    template=MessageTemplate.objects.create(name=f"t{n}-{i}", slug=f"t{n}-{i}"))
            message(layla, at=at, source_type="journey_step", source_id=f"{welcome.pk}:wait-1h")
            services.update_cart(subscriber_id=layla.pk, cart_id=f"c{n}-{i}", at=at,
                                 items=[{"product_id": "p", "title": "x", "price": "1", "quantity": 1}])
            services.revoke_consent(subscriber=layla, channel=Channel.PUSH, source=Source.API, at=at)
        Enrolment.objects.create(journey=welcome, version=version, subscriber=layla, status="exited",
                                 trigger_key=f"k{n}")

    grow(3)
    with django_assert_max_num_queries(20) as small:
        assert viewer_client.get(f"/app/subscribers/{layla.pk}/").status_code == 200
    grow(40)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert viewer_client.get(f"/app/subscribers/{layla.pk}/").status_code == 200


def test_the_list_searches_by_name_email_phone_and_store_id_and_pages_by_older_links(viewer_client, layla):
    for n in range(55):
        make_subscriber(f"bulk-{n}", first_name="Bulk")

    def names(response):
        return re.findall(r'data-subscriber="(\d+)"', text(response))

    assert names(viewer_client.get("/app/subscribers/", {"q": "cust-42"})) == [str(layla.pk)]
    assert names(viewer_client.get("/app/subscribers/", {"q": "layla@"})) == [str(layla.pk)]
    assert names(viewer_client.get("/app/subscribers/", {"q": "+966500000042"})) == [str(layla.pk)]
    assert names(viewer_client.get("/app/subscribers/", {"q": "Layla Had"})) == [str(layla.pk)]
    assert names(viewer_client.get("/app/subscribers/", {"q": "nobody"})) == []
    first = viewer_client.get("/app/subscribers/", {"q": "bulk"})
    older = re.search(r'href="\?q=bulk&amp;before=(\d+)"', text(first)).group(1)
    second = viewer_client.get("/app/subscribers/", {"q": "bulk", "before": older})
    assert len(names(first)) == 50 and len(names(second)) == 5
    assert not set(names(first)) & set(names(second))


def test_a_missing_shopper_is_not_found(viewer_client):
    assert viewer_client.get("/app/subscribers/999999/").status_code == 404


def test_amounts_and_dates_follow_the_marketers_language(viewer_client, layla):
    viewer_client.cookies["django_language"] = "ar"

    page = text(viewer_client.get(f"/app/subscribers/{layla.pk}/"))

    placed = timezone.localtime(Order.objects.get(external_id="order-9").placed_at)
    assert 'dir="rtl"' in page and "1.234,50\u00a0ر.س." in page
    assert placed.strftime("%d\u200f/%m\u200f/%Y") in page


def test_the_segment_sample_the_admin_and_the_campaign_test_send_lead_to_the_shopper_pages(admin_client, layla):
    segment = Segment.objects.create(name="Everyone")
    campaign = Campaign.objects.create(name="Ramadan sale", status="completed")

    sample = text(admin_client.get(f"/app/segments/{segment.pk}/"))
    admin = text(admin_client.get(f"/admin/subscribers/subscriber/{layla.pk}/change/"))
    test_send = text(admin_client.get(f"/app/campaigns/{campaign.pk}/")).split('id="test-send"')[1]

    assert f'<a href="/app/subscribers/{layla.pk}/">Layla Haddad</a>' in sample
    assert f'href="/app/subscribers/{layla.pk}/"' in admin and "View 360° page" in admin
    assert 'href="/app/subscribers/"' in test_send
