"""manage.py take_screenshots: the main marketer pages in English and Arabic, as PNGs for the README.

Serves this Tanbih (its database, the demo store after `make demo`) on a loopback port in a thread, logs a
superuser in by session, and has Chromium (Playwright, /usr/bin/chromium or CHROMIUM_PATH) capture each page
once the charts are drawn. Pages whose URL does not exist in this build are left out.
"""
import os
import threading
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.urls import NoReverseMatch, reverse

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LANGUAGES = ("en", "ar")
FULL_PAGES = {"dashboard", "campaign-report", "journey-report"}


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _pages():
    """(name, path) of the pages to capture, from what this database holds."""
    from campaigns.models import Campaign
    from journeys.models import Journey
    from subscribers.models import Subscriber

    campaign = (Campaign.objects.filter(variants__label="B", holdout_percent__gt=0).order_by("pk").first()
                or Campaign.objects.order_by("pk").first())
    journey = Journey.objects.filter(recipe="abandoned-cart").order_by("pk").first()
    shopper = Subscriber.objects.known().filter(orders__isnull=False, messages__isnull=False).order_by("pk").first()
    wanted = [("dashboard", "analytics:dashboard", [], "?days=90")]
    if campaign:
        wanted.append(("campaign-report", "analytics:campaign-report", [campaign.pk], ""))
    if journey:
        wanted.append(("journey-report", "analytics:journey-report", [journey.pk], ""))
        wanted.append(("journey-builder", "journeys:detail", [journey.pk], ""))
    if shopper:
        wanted.append(("subscriber", "shoppers:detail", [shopper.pk], ""))
    wanted.append(("predictions", "predictions:page", [], ""))
    pages = []
    for name, url_name, args, query in wanted:
        try:
            pages.append((name, reverse(url_name, args=args) + query))
        except NoReverseMatch:
            continue
    return pages


class Command(BaseCommand):
    help = "Capture the main marketer pages in English and Arabic into docs/screenshots/ (PNG)."

    def add_arguments(self, parser):
        parser.add_argument("--output", default=str(Path(settings.BASE_DIR) / "docs" / "screenshots"))
        parser.add_argument("--width", type=int, default=1280)
        parser.add_argument("--height", type=int, default=900)

    def handle(self, *args, output, width, height, **options):
        chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
        if not os.path.exists(chromium):
            raise CommandError(f"Chromium is needed at {chromium} (apt-get install -y chromium).")
        user = get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError("No active superuser: run `manage.py ensure_admin` first.")
        client = Client()
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        pages = _pages()
        server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
        server.set_app(StaticFilesHandler(get_wsgi_application()))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            written = self.capture(chromium, f"http://127.0.0.1:{server.server_port}", session, pages,
                                   Path(output), {"width": width, "height": height})
        finally:
            server.shutdown()
            server.server_close()
        for path in written:
            self.stdout.write(str(path))

    def capture(self, chromium, base, session, pages, output, viewport):
        from playwright.sync_api import sync_playwright

        output.mkdir(parents=True, exist_ok=True)
        written = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            for language in LANGUAGES:
                context = browser.new_context(base_url=base, viewport=viewport, locale="en-GB",
                                              timezone_id="Asia/Riyadh")
                context.add_cookies([
                    {"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base},
                    {"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": base}])
                page = context.new_page()
                for name, path in pages:
                    page.goto(path, wait_until="networkidle")
                    page.wait_for_function("[...document.querySelectorAll('canvas[data-chart]')]"
                                           ".every(canvas => canvas.dataset.drawn === 'true')")
                    target = output / f"{name}-{language}.png"
                    # The reports whole; pages with long lists (a shopper's timeline) as the first screen.
                    page.screenshot(path=str(target), full_page=name in FULL_PAGES)
                    written.append(target)
                context.close()
            browser.close()
        return written
