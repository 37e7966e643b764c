from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from subscribers import services
from subscribers.models import Cart
from tests.factories import make_publishable_key, make_secret_key

pytestmark = pytest.mark.django_db

ITEMS = [
    {"product_id": "p1", "title": "سماعات لاسلكية", "price": "249", "quantity": 1,
     "url": "https://shop.example/p/earbuds", "image": "https://cdn.shop.example/earbuds.jpg"},
    {"product_id": "p2", "title": "<script>alert(1)</script>", "price": "10", "quantity": 2,
     "url": "javascript:alert(1)"},
]


@pytest.fixture
def cart():
    shopper = services.upsert_subscriber(external_id="c-1", locale="ar")[0]
    services.record_event(subscriber=shopper, name="cart_updated", properties={"cart_id": "sc-9", "items": ITEMS})
    return Cart.objects.get(external_id="sc-9")


def token_of(url):
    return url.rsplit("/", 1)[1]


def test_a_restore_link_is_short_enough_for_an_sms(cart, settings):
    settings.SITE_URL = "https://tanbih.shop.example"
    assert len(token_of(cart.restore_url)) <= 20
    assert len(cart.restore_url) <= 60


def test_a_forged_or_altered_token_is_refused(cart):
    token = cart.restore_token()
    other_cart_token = f"{int(token.split('.')[0], 36) + 1:x}.{token.split('.')[1]}"
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), other_cart_token, "zz", "", "1.", "..."):
        with pytest.raises(Cart.DoesNotExist):
            Cart.from_restore_token(bad)


def test_a_link_expires_after_the_carts_activity_grows_old(cart, settings):
    settings.CART_RESTORE_MAX_AGE_DAYS = 30
    token = cart.restore_token()
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        with pytest.raises(Cart.DoesNotExist):
            Cart.from_restore_token(token)


def test_the_shopper_sees_their_cart_in_arabic_with_safe_links(client, cart, settings):
    settings.CART_RESTORE_URL = ""
    response = client.get(f"/r/cart/{cart.restore_token()}")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'dir="rtl"' in html and "سلتك بانتظارك" in html
    assert 'href="https://shop.example/p/earbuds"' in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html


def test_the_link_goes_to_the_stores_own_restore_page_when_it_has_one(client, cart, settings):
    settings.CART_RESTORE_URL = "https://shop.example/cart/restore"
    token = cart.restore_token()

    response = client.get(f"/r/cart/{token}")

    assert response.status_code == 302
    assert response["Location"] == f"https://shop.example/cart/restore/{token}"
    assert cart.restore_url == f"https://shop.example/cart/restore/{token}"


def test_a_bad_link_is_a_404(client):
    assert client.get("/r/cart/1.AAAAAAAAAAAA").status_code == 404


def test_the_stores_backend_reads_the_cart_by_token(client, cart):
    _, secret = make_secret_key()

    response = client.get(f"/api/v1/carts/{cart.restore_token()}", HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 200
    body = response.json()
    assert body["cart_id"] == "sc-9" and body["external_id"] == "c-1"
    assert [i["product_id"] for i in body["items"]] == ["p1", "p2"]
    assert body["value"] == "269.00"


def test_reading_a_cart_needs_the_secret_key(client, cart):
    _, publishable = make_publishable_key()
    response = client.get(f"/api/v1/carts/{cart.restore_token()}", HTTP_X_TANBIH_KEY=publishable,
                          HTTP_ORIGIN="https://shop.example")
    assert response.status_code == 403
    assert client.get(f"/api/v1/carts/{cart.restore_token()}").status_code == 401


def test_an_unknown_token_is_a_json_404_naming_the_token(client):
    _, secret = make_secret_key()
    response = client.get("/api/v1/carts/1.AAAAAAAAAAAA", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "token"
