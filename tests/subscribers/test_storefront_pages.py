"""What the storefront SDK reads from Tanbih: its config, the service worker, and the demo storefront."""
import base64

import pytest
from django.core.management import call_command
from py_vapid import Vapid

from subscribers.demo_keys import demo_publishable_key, ensure_demo_publishable_key
from subscribers.models import PushPromptConfig
from tests.factories import (
    SHOP_ORIGIN,
    browser_client,
    isolated_cache,  # noqa: F401 - fixture
    make_publishable_key,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

CONFIG_URL = "/api/v1/sdk/config"
VAPID_PUBLIC = "BF3oIPaQLN4x4oeagQoIdFayDWIyCrLSBC1xa4qzt67vj9S80SWhYvlNlRrNih3b6pMd7rocj21h3hwcHDTE80M"


@pytest.fixture
def push_configured(settings):
    settings.VAPID_PUBLIC_KEY = VAPID_PUBLIC
    settings.VAPID_PRIVATE_KEY = "YD19rs3MoMIFAAizKmdOTMx_JL8bDtOfQwHQelY4ucw"


# --- GET /api/v1/sdk/config --------------------------------------------------------

def test_the_sdk_config_gives_the_vapid_key_and_the_marketers_prompt_in_both_languages(push_configured):
    config = PushPromptConfig.current()
    config.title_ar = "لا تفوّت عروضنا"
    config.delay_seconds = 8
    config.page_patterns = ["/products/"]
    config.reprompt_after_days = 30
    config.save()
    _, raw = make_publishable_key()

    response = browser_client(raw).get(CONFIG_URL)

    assert response.status_code == 200
    data = response.json()
    assert data["vapid_public_key"] == VAPID_PUBLIC
    assert data["prompt"]["enabled"] is True
    assert data["prompt"]["delay_seconds"] == 8
    assert data["prompt"]["page_patterns"] == ["/products/"]
    assert data["prompt"]["reprompt_after_days"] == 30
    assert data["prompt"]["texts"]["ar"]["title"] == "لا تفوّت عروضنا"
    assert data["prompt"]["texts"]["en"] == {
        "title": config.title_en, "body": config.body_en, "accept": config.accept_en, "decline": config.decline_en,
    }
    assert response["Access-Control-Allow-Origin"] == SHOP_ORIGIN


def test_without_a_vapid_key_the_sdk_is_told_not_to_prompt(settings):
    settings.VAPID_PUBLIC_KEY = ""
    _, raw = make_publishable_key()

    data = browser_client(raw).get(CONFIG_URL).json()

    assert data["vapid_public_key"] == ""
    assert data["prompt"]["enabled"] is False


def test_a_prompt_the_marketer_turned_off_is_off(push_configured):
    config = PushPromptConfig.current()
    config.enabled = False
    config.save()
    _, raw = make_publishable_key()

    assert browser_client(raw).get(CONFIG_URL).json()["prompt"]["enabled"] is False


def test_a_same_origin_page_without_an_origin_header_is_known_by_its_referer(push_configured):
    # Browsers send no Origin on a same-origin GET (Tanbih's own demo storefront).
    _, raw = make_publishable_key(origins=["http://testserver"])
    client = browser_client(raw, origin=None)

    assert client.get(CONFIG_URL, HTTP_REFERER="http://testserver/demo/store/").status_code == 200
    assert client.get(CONFIG_URL, HTTP_REFERER="https://evil.example/page").status_code == 403
    assert client.get(CONFIG_URL).status_code == 403


def test_the_sdk_config_refuses_an_origin_the_key_does_not_allow(push_configured):
    _, raw = make_publishable_key(origins=[SHOP_ORIGIN])

    response = browser_client(raw, origin="https://evil.example").get(CONFIG_URL)

    assert response.status_code == 403
    assert "evil.example" in response.json()["errors"][0]["message"]


def test_the_sdk_config_refuses_an_unknown_key():
    response = browser_client("tnb_pk_not-a-key").get(CONFIG_URL)

    assert response.status_code == 401


# --- The service worker -------------------------------------------------------------

def test_the_root_service_worker_imports_tanbihs_worker_and_may_control_the_whole_site(client):
    response = client.get("/tanbih-sw.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    assert "no-cache" in response["Cache-Control"]
    assert response.content.decode() == 'importScripts("/static/tanbih/sw.js");\n'


# --- The demo storefront ------------------------------------------------------------

def test_the_demo_storefront_is_not_there_until_a_demo_store_is_loaded(client):
    assert client.get("/demo/store/").status_code == 404


def test_the_demo_storefront_loads_the_sdk_with_the_demo_key(client, push_configured):
    key = ensure_demo_publishable_key("http://testserver")

    page = client.get("/demo/store/").content.decode()

    assert f'data-key="{key.publishable_key}"' in page
    assert 'src="/static/tanbih/sdk.js"' in page
    assert "(tanbih.q = tanbih.q || []).push(arguments)" in page
    assert '<html lang="en" dir="ltr">' in page
    assert "Wireless earbuds" in page


def test_the_arabic_storefront_is_right_to_left(client, push_configured):
    ensure_demo_publishable_key("http://testserver")

    page = client.get("/demo/store/ar/").content.decode()

    assert '<html lang="ar" dir="rtl">' in page
    assert "سماعات لاسلكية" in page
    assert "متجر تنبيه التجريبي" in page


def test_a_product_page_queues_its_view_before_the_sdk_and_names_its_category(client, push_configured):
    ensure_demo_publishable_key("http://testserver")

    page = client.get("/demo/store/ar/products/oud-perfume/").content.decode()

    assert 'data-category="beauty"' in page
    assert page.index('tanbih("track", "product_viewed"') < page.index('src="/static/tanbih/sdk.js"')
    assert "عطر العود" in page


def test_the_demo_customers_user_hash_is_computed_on_the_server(client, push_configured):
    key = ensure_demo_publishable_key("http://testserver")

    page = client.get("/demo/store/").content.decode()

    assert key.identity_hash("demo-customer-1") in page
    assert key.identity_secret not in page


def test_the_demo_storefront_escapes_what_it_embeds(client, push_configured):
    ensure_demo_publishable_key("http://testserver")

    page = client.get("/demo/store/en/products/smart-watch/",
                      QUERY_STRING="ref=</script><script>alert(1)</script>&x='1'").content.decode()

    assert "<script>alert(1)</script>" not in page
    # The page URL travels to the SDK inside JSON, with &, < and > escaped.
    assert "ref=%3C/script%3E%3Cscript%3Ealert(1)%3C/script%3E\\u0026x='1'" in page


def test_unknown_languages_and_products_are_not_found(client, push_configured):
    ensure_demo_publishable_key("http://testserver")

    assert client.get("/demo/store/fr/").status_code == 404
    assert client.get("/demo/store/en/products/flying-carpet/").status_code == 404


def test_the_demo_storefront_says_when_web_push_is_off(client, settings):
    settings.VAPID_PUBLIC_KEY = ""
    ensure_demo_publishable_key("http://testserver")

    assert "generate_vapid_keys" in client.get("/demo/store/").content.decode()


def test_the_demo_key_is_made_once_and_allows_both_loopback_names():
    first = ensure_demo_publishable_key("http://127.0.0.1:8000")
    again = ensure_demo_publishable_key("http://127.0.0.1:8000/", "https://demo.example")

    assert again.pk == first.pk == demo_publishable_key().pk
    assert again.allowed_origins == ["http://127.0.0.1:8000", "http://localhost:8000", "https://demo.example"]
    assert again.require_identity_verification


def test_the_demo_key_wants_an_origin_not_a_path():
    with pytest.raises(ValueError):
        ensure_demo_publishable_key("127.0.0.1:8000")


# --- VAPID keys ---------------------------------------------------------------------

def test_generate_vapid_keys_prints_a_pair_that_belongs_together(capsys):
    call_command("generate_vapid_keys")

    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    public, private = lines["VAPID_PUBLIC_KEY"], lines["VAPID_PRIVATE_KEY"]
    raw_public = base64.urlsafe_b64decode(public + "=" * (-len(public) % 4))
    assert len(raw_public) == 65 and raw_public[0] == 4
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    derived = Vapid.from_string(private).public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert derived == raw_public
