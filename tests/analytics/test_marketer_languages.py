"""The marketer UI in both languages: every page under /app/ carries the language switcher, which brings the
marketer back to the same page (query string and all) in the other language; counts and dates follow the
language's formats."""
import re
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from campaigns.models import Campaign
from delivery.models import MessageTemplate
from journeys.models import Journey
from subscribers.models import Segment, Subscriber
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("sara", "sara@example.com", "a-long-password-1"))
    return client


def app_pages_without_arguments():
    """Every route under /app/ that takes no argument (new pages are checked without touching this test)."""
    found = []
    for top in get_resolver().url_patterns:
        if not isinstance(top, URLResolver) or not str(top.pattern).startswith("app/"):
            continue
        for child in top.url_patterns:
            if isinstance(child, URLPattern) and "<" not in str(child.pattern):
                found.append(f"/{top.pattern}{child.pattern}")
    return found


@pytest.fixture
def pages():
    shopper = make_subscriber("cust-1", first_name="Layla")
    segment = Segment.objects.create(name="Everyone")
    campaign = Campaign.objects.create(name="Ramadan sale")
    journey = Journey.objects.create(name="Welcome series")
    template = MessageTemplate.objects.create(name="Cart reminder", slug="cart-reminder")
    return [f"/app/subscribers/{shopper.pk}/", "/app/subscribers/?q=lay&before=99", f"/app/segments/{segment.pk}/",
            f"/app/campaigns/{campaign.pk}/edit/", f"/app/journeys/{journey.pk}/", f"/app/templates/{template.pk}/",
            *app_pages_without_arguments()]


def switcher_next(html):
    form = re.search(r'<form class="language-switcher".*?</form>', html, re.S)
    return unescape(re.search(r'name="next" value="([^"]*)"', form.group(0)).group(1)) if form else None


def test_the_known_marketer_sections_are_all_found_under_app():
    found = app_pages_without_arguments()

    for section in ("/app/campaigns/", "/app/segments/", "/app/templates/", "/app/journeys/", "/app/subscribers/"):
        assert section in found


def test_every_marketer_page_has_the_switcher_and_it_brings_the_marketer_back_to_the_same_page(admin_client, pages):
    checked = 0
    for url in pages:
        response = admin_client.get(url)
        html = response.content.decode()
        if response.status_code != 200 or "<html" not in html:
            continue  # a POST-only route, a redirect or an htmx fragment: not a page of its own
        checked += 1
        assert switcher_next(html) == url, url

        switched = admin_client.post("/i18n/setlang/", {"language": "ar", "next": url})
        assert switched.status_code == 302 and switched["Location"] == url
        arabic = admin_client.get(url).content.decode()
        assert '<html lang="ar" dir="rtl">' in arabic, url
        admin_client.post("/i18n/setlang/", {"language": "en", "next": url})
    assert checked >= 10


def test_counts_and_dates_follow_the_language(admin_client):
    Subscriber.objects.bulk_create([Subscriber(first_name=f"s{n}") for n in range(1234)])
    Segment.objects.create(name="Everyone")
    Campaign.objects.create(name="Ramadan sale", created_at=timezone.now().replace(day=3, month=1))

    english = admin_client.get("/app/segments/").content.decode()
    campaigns_en = admin_client.get("/app/campaigns/").content.decode()
    admin_client.post("/i18n/setlang/", {"language": "ar", "next": "/app/segments/"})
    arabic = admin_client.get("/app/segments/").content.decode()
    campaigns_ar = admin_client.get("/app/campaigns/").content.decode()

    assert '<td class="segment-count">1,234</td>' in english
    assert '<td class="segment-count">1.234</td>' in arabic
    assert re.search(r">01/03/\d{4} ", campaigns_en)  # month first in English
    assert re.search("03\u200f/01\u200f/\\d{4} ", campaigns_ar)  # day first in Arabic
