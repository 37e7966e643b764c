"""Chromium, driven by Playwright, against a live Tanbih server (pytest-django's live_server).

Playwright's sync API runs an event loop in the test thread, which makes Django
refuse ORM calls there unless async-unsafe calls are allowed.
"""
import os

import pytest

from subscribers.management.commands.generate_vapid_keys import generate_vapid_keypair
from tests.factories import isolated_cache  # noqa: F401 - fixture: rate-limit counters per test
from tests.peers import web_push_service  # noqa: F401 - fixture: the push service emulator

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"Chromium is needed at {CHROMIUM} (apt-get install -y chromium).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def vapid_keys():
    public, private = generate_vapid_keypair()
    return {"public": public, "private": private}


@pytest.fixture
def store(live_server, settings, vapid_keys, transactional_db, isolated_cache):
    """The demo storefront on the live server, with push configured and a prompt after one second."""
    from subscribers.demo_keys import ensure_demo_publishable_key
    from subscribers.models import PushPromptConfig

    settings.VAPID_PUBLIC_KEY = vapid_keys["public"]
    settings.VAPID_PRIVATE_KEY = vapid_keys["private"]
    key = ensure_demo_publishable_key(live_server.url)
    config = PushPromptConfig.current()
    config.delay_seconds = 1
    config.save()
    return {"url": live_server.url, "key": key, "prompt": config}


@pytest.fixture
def context(browser, store):
    context = browser.new_context(base_url=store["url"], locale="en-GB", timezone_id="Asia/Riyadh")
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page
