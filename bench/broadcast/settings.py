"""Settings for the broadcast benchmark: the product's settings plus django-push-notifications.

django-push-notifications (bench/requirements.txt) is installed only for the
comparison and appears only here, never in the product's INSTALLED_APPS.
"""
import os

from config.settings import *  # noqa: F401,F403
from config.settings import INSTALLED_APPS, LOGGING

DEBUG = False
INSTALLED_APPS = [*INSTALLED_APPS, "push_notifications"]
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
# The push service's origin, allowed for this run only (bench/broadcast/run.py sets it).
PUSH_ALLOWED_ENDPOINTS = [os.environ["BENCH_PUSH_ORIGIN"]] if os.environ.get("BENCH_PUSH_ORIGIN") else []
PUSH_NOTIFICATIONS_SETTINGS = {
    "WP_PRIVATE_KEY": os.environ.get("VAPID_PRIVATE_KEY", ""),
    "WP_CLAIMS": {"sub": "mailto:bench@example.com"},
    # Its devices store the endpoint's last segment; it prefixes the push service URL per browser.
    "WP_POST_URL": {"CHROME": os.environ.get("BENCH_PUSH_ORIGIN", "") + "/push"},
    "WP_ERROR_TIMEOUT": 10,
}
