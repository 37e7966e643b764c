"""Tanbih settings, read from the environment.

Every variable is documented in docs/self-hosting.md. With no configuration the
product runs on SQLite with an embedded (filesystem) Celery broker, so a newcomer
needs no external service; DATABASE_URL and REDIS_URL switch to the production
path (PostgreSQL + Redis) with no code change.
"""
from pathlib import Path
import os

import dj_database_url
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=None):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name, default=""):
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


DATA_DIR = Path(env("TANBIH_DATA_DIR", BASE_DIR / "data"))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY") or (
    # Development only: a fixed key is refused when DEBUG is off (see checks.py).
    "tanbih-insecure-development-key-change-me"
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "import_export",
    "subscribers",
    "delivery",
    "campaigns",
    "journeys",
    "analytics",
]

MIDDLEWARE = [
    "config.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "config.middleware.EnglishApiMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'tanbih.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite creates the file but not its folder: a fresh clone has no data/.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The web server, the worker and beat share one SQLite file: wait on locks
    # instead of failing at once, and let readers run beside the writer.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # PostgreSQL's JIT compiles a big query's expressions first: ~0.6 s before a segment count over a million
    # shoppers even starts, more than it ever saves on Tanbih's queries (bench/segments). Off for our sessions.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c jit=off".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker --------------------------------------------------------------
REDIS_URL = env("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tanbih",
        }
    }
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
else:
    CACHES = {
        "default": {
            # File-based so that rate limits hold across the web processes of
            # the embedded setup; production uses Redis.
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")

CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Remote control (fanout) tables; kombu's default is relative to the cwd.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540)
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = "default"
# Queues by kind of work so a broadcast never delays a transactional message.
CELERY_TASK_ROUTES = {
    "subscribers.tasks.import_*": {"queue": "ingest"},
    "subscribers.tasks.*": {"queue": "schedule"},
    "delivery.tasks.send_transactional": {"queue": "send"},
    "delivery.tasks.send_bulk_chunk": {"queue": "bulk"},
    "delivery.tasks.dispatch_due": {"queue": "schedule"},
    # A campaign's launch writes its whole audience: on the bulk queue, never in the way of the ticks.
    "campaigns.tasks.*": {"queue": "bulk"},
    # Reactions to one shopper's event (a journey's first step, a goal, lost consent, an order's attribution) have
    # a queue and a worker of their own: a backlog of sends or of journey ticks never delays them.
    "journeys.tasks.handle_event": {"queue": "events"},
    "journeys.tasks.consent_revoked": {"queue": "events"},
    "analytics.tasks.attribute_order_event": {"queue": "events"},
    "journeys.tasks.*": {"queue": "schedule"},
    "analytics.tasks.*": {"queue": "schedule"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "detect-abandoned-carts": {
        "task": "subscribers.tasks.detect_abandoned_carts",
        "schedule": 60.0,
    },
    "journeys-tick": {
        "task": "journeys.tasks.tick",
        "schedule": float(env_int("JOURNEY_TICK_SECONDS", 10)),
    },
    "journeys-scan-triggers": {
        "task": "journeys.tasks.scan_triggers",
        "schedule": float(env_int("JOURNEY_TRIGGER_SCAN_SECONDS", 300)),
    },
    "campaigns-tick": {
        "task": "campaigns.tasks.tick",
        "schedule": float(env_int("CAMPAIGN_TICK_SECONDS", 15)),
    },
    "dispatch-due-messages": {
        "task": "delivery.tasks.dispatch_due",
        "schedule": float(env_int("DELIVERY_DISPATCH_INTERVAL_SECONDS", 15)),
    },
    "refresh-lifecycle-stages": {
        "task": "subscribers.tasks.refresh_lifecycle_stages",
        "schedule": crontab(minute=17, hour=2),
    },
    "analytics-train-predictions": {
        "task": "analytics.tasks.train_predictions",
        "schedule": crontab(minute=37, hour=env_int("PREDICTIONS_TRAIN_HOUR", 3)),
    },
    "analytics-roll-up": {
        "task": "analytics.tasks.roll_up",
        "schedule": float(env_int("ANALYTICS_ROLLUP_SECONDS", 30)),
    },
    "analytics-sweep-attributions": {
        "task": "analytics.tasks.sweep_attributions",
        "schedule": float(env_int("ANALYTICS_SWEEP_SECONDS", 300)),
    },
    "analytics-hold-out-lift": {
        "task": "analytics.tasks.refresh_lifts",
        "schedule": float(env_int("ANALYTICS_LIFT_SECONDS", 600)),
    },
    "analytics-subscribers-per-channel": {
        "task": "analytics.tasks.refresh_subscriber_daily",
        "schedule": crontab(minute=7),
    },
}

# --- i18n -------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ar", "العربية")]
# Our catalog first; then Arabic for third-party admin screens that ship none (locale/third_party).
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "locale" / "third_party"]
# Our additions to Django's date and number formats per language (config/formats/<lang>/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"

# --- Static -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", DATA_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = Path(env("MEDIA_ROOT", DATA_DIR / "media"))
MEDIA_URL = "/media/"
# django-import-export keeps an upload between its preview and the confirmed
# import; MEDIA_ROOT is shared by every web process, a process's /tmp is not.
IMPORT_EXPORT_TMP_STORAGE_CLASS = "import_export.tmp_storages.MediaStorage"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "admin:login"

SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and SITE_URL.startswith("https"))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY") else None

# --- API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "subscribers.api.errors.handle_exception",
    "DEFAULT_THROTTLE_RATES": {
        "publishable": env("API_PUBLIC_RATE_LIMIT", "120/min"),
        "secret": env("API_SECRET_RATE_LIMIT", "6000/min"),
    },
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tanbih storefront API",
    "DESCRIPTION": ("Subscribers, events, consent and push subscriptions for a store, and the messages its "
                    "backend sends."),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Consent channels and message channels are different choice sets that share a field name.
    "ENUM_NAME_OVERRIDES": {
        "ConsentChannelEnum": "subscribers.models.Channel",
        "MessageChannelEnum": "delivery.models.DeliveryChannel",
    },
}
# Largest accepted request body; a bigger one is refused whole with 413.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, 2621440)
API_MAX_BATCH_EVENTS = env_int("API_MAX_BATCH_EVENTS", 1000)
# An event dated further in the future than this is refused (clock skew allowance).
API_EVENT_FUTURE_SKEW_SECONDS = env_int("API_EVENT_FUTURE_SKEW_SECONDS", 300)
# Largest accepted `properties` object of one event, as JSON bytes.
API_EVENT_MAX_PROPERTIES_BYTES = env_int("API_EVENT_MAX_PROPERTIES_BYTES", 16 * 1024)

# CORS is decided per publishable key (its allowed origins); see subscribers/api/cors.py.
CORS_URLS_REGEX = r"^/api/v1/.*$"
CORS_ALLOW_HEADERS = ["content-type", "authorization", "x-tanbih-key"]

# --- Push ---------------------------------------------------------------------
# Hosts a push subscription endpoint may point at (https only). A leading dot
# allows subdomains. Private, loopback and link-local addresses are refused
# unless listed in PUSH_ALLOWED_ENDPOINTS (exact scheme://host:port origins).
PUSH_ALLOWED_HOSTS = env_list(
    "PUSH_ALLOWED_HOSTS",
    "fcm.googleapis.com,android.googleapis.com,updates.push.services.mozilla.com,"
    ".push.services.mozilla.com,web.push.apple.com,.notify.windows.com",
)
PUSH_ALLOWED_ENDPOINTS = env_list("PUSH_ALLOWED_ENDPOINTS", "")
VAPID_PUBLIC_KEY = env("VAPID_PUBLIC_KEY", "")
VAPID_PRIVATE_KEY = env("VAPID_PRIVATE_KEY", "")
# Without keys in the environment, a pair kept in this file is used (`make run`
# creates it on first start with `manage.py generate_vapid_keys --save`).
VAPID_KEYS_FILE = Path(env("VAPID_KEYS_FILE", DATA_DIR / "vapid-keys.json"))
if not (VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY) and VAPID_KEYS_FILE.is_file():
    import json as _json

    _pair = _json.loads(VAPID_KEYS_FILE.read_text())
    VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY = _pair["public_key"], _pair["private_key"]
VAPID_SUBJECT = env("VAPID_SUBJECT", "mailto:ops@example.com")
# Pushes one worker process keeps in flight (threads over pooled connections).
PUSH_SENDS_IN_FLIGHT = env_int("PUSH_SENDS_IN_FLIGHT", 32)
# Seconds to wait for a push service to answer one push (connecting: at most 5 of them).
PUSH_SEND_TIMEOUT_SECONDS = env_int("PUSH_SEND_TIMEOUT_SECONDS", 10)

# --- Delivery -------------------------------------------------------------------
# The backend per channel (docs/channels.md). "auto" picks the real provider when
# its credentials are set and the sandbox (records, sends nothing) otherwise.
DELIVERY_BACKEND_PATHS = {
    "push": ("delivery.channels.webpush.WebPushBackend", bool(VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY)),
    "sms": ("delivery.channels.twilio_sms.TwilioSmsBackend", bool(env("TWILIO_ACCOUNT_SID"))),
    "whatsapp": ("delivery.channels.twilio_whatsapp.TwilioWhatsAppBackend", bool(env("TWILIO_ACCOUNT_SID"))),
    "email": ("delivery.channels.email.EmailBackend", bool(env("EMAIL_URL"))),
    "inapp": ("delivery.channels.inapp.InAppBackend", True),
}
DELIVERY_BACKENDS = {}
for _channel, (_real, _configured) in DELIVERY_BACKEND_PATHS.items():
    _choice = env(f"{_channel.upper()}_BACKEND", "auto")
    if _choice == "auto":
        _choice = _real if _configured else "delivery.channels.sandbox.SandboxBackend"
    elif _choice == "sandbox":
        _choice = "delivery.channels.sandbox.SandboxBackend"
    DELIVERY_BACKENDS[_channel] = _choice

# The outbox (delivery/outbox.py, docs/self-hosting.md).
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", 5)
DELIVERY_RETRY_BASE_SECONDS = env_int("DELIVERY_RETRY_BASE_SECONDS", 30)
DELIVERY_RETRY_MAX_SECONDS = env_int("DELIVERY_RETRY_MAX_SECONDS", 3600)
# A message "sending" longer than this was lost with its worker: queued again
# (push, email, in-app, sandbox) or marked unknown (Twilio: no idempotency key).
# Keep it above CELERY_TASK_TIME_LIMIT.
DELIVERY_SENDING_LEASE_SECONDS = env_int("DELIVERY_SENDING_LEASE_SECONDS", 900)
DELIVERY_REDISPATCH_SECONDS = env_int("DELIVERY_REDISPATCH_SECONDS", 900)
DELIVERY_CHUNK_SIZE = env_int("DELIVERY_CHUNK_SIZE", 500)
DELIVERY_DISPATCH_BATCH = env_int("DELIVERY_DISPATCH_BATCH", 20000)
# Channels whose links are sent as SITE_URL/c/… tracking links, so clicks are recorded ("" for none).
DELIVERY_TRACK_LINKS = env("DELIVERY_TRACK_LINKS", "sms,whatsapp,email")
# Tokens per second per provider, shared by all workers: "twilio=10,webpush=2000/4000".
DELIVERY_RATE_LIMITS = env("DELIVERY_RATE_LIMITS", "twilio=10")
DELIVERY_RATE_LIMIT_MAX_WAIT_SECONDS = float(env("DELIVERY_RATE_LIMIT_MAX_WAIT_SECONDS", "5"))

# Sending policies (delivery/policy.py, docs/policies.md). Quiet hours are in each
# subscriber's own timezone, "HH:MM-HH:MM" or "off"; in-app messages show only while
# the shopper is on the site, so they are never quiet by default.
QUIET_HOURS_DEFAULT = env("QUIET_HOURS", "22:00-08:00")
QUIET_HOURS = {
    "push": env("QUIET_HOURS_PUSH", QUIET_HOURS_DEFAULT),
    "sms": env("QUIET_HOURS_SMS", QUIET_HOURS_DEFAULT),
    "whatsapp": env("QUIET_HOURS_WHATSAPP", QUIET_HOURS_DEFAULT),
    "email": env("QUIET_HOURS_EMAIL", QUIET_HOURS_DEFAULT),
    "inapp": env("QUIET_HOURS_INAPP", "off"),
}
QUIET_HOURS_TRANSACTIONAL = env_bool("QUIET_HOURS_TRANSACTIONAL", False)
# Most marketing messages per subscriber in a rolling day and week; 0 = no cap.
# "all" counts push, SMS, WhatsApp and email together (in-app is not counted).
FREQUENCY_CAPS = {
    "push": {"day": env_int("FREQUENCY_CAP_PUSH_PER_DAY", 3), "week": env_int("FREQUENCY_CAP_PUSH_PER_WEEK", 10)},
    "sms": {"day": env_int("FREQUENCY_CAP_SMS_PER_DAY", 1), "week": env_int("FREQUENCY_CAP_SMS_PER_WEEK", 3)},
    "whatsapp": {"day": env_int("FREQUENCY_CAP_WHATSAPP_PER_DAY", 1),
                 "week": env_int("FREQUENCY_CAP_WHATSAPP_PER_WEEK", 3)},
    "email": {"day": env_int("FREQUENCY_CAP_EMAIL_PER_DAY", 2), "week": env_int("FREQUENCY_CAP_EMAIL_PER_WEEK", 7)},
    "inapp": {"day": env_int("FREQUENCY_CAP_INAPP_PER_DAY", 0), "week": env_int("FREQUENCY_CAP_INAPP_PER_WEEK", 0)},
    "all": {"day": env_int("FREQUENCY_CAP_ALL_PER_DAY", 4), "week": env_int("FREQUENCY_CAP_ALL_PER_WEEK", 15)},
}

# --- Twilio (SMS and WhatsApp) and email ---------------------------------------------
# See docs/channels.md. Status callbacks and inbound messages come back to SITE_URL.
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", "")
# A Messaging Service (sender pool, opt-out handling) or a single From number.
TWILIO_MESSAGING_SERVICE_SID = env("TWILIO_MESSAGING_SERVICE_SID", "")
TWILIO_FROM_NUMBER = env("TWILIO_FROM_NUMBER", "")
TWILIO_WHATSAPP_FROM = env("TWILIO_WHATSAPP_FROM", "")
TWILIO_API_BASE_URL = env("TWILIO_API_BASE_URL", "https://api.twilio.com").rstrip("/")
TWILIO_TIMEOUT_SECONDS = float(env("TWILIO_TIMEOUT_SECONDS", "10"))


def parse_email_url(url):
    """smtp://user:pass@host:port[?tls|?ssl] (smtps:// means ?ssl) -> Django's EMAIL_* settings."""
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"EMAIL_URL must start with smtp:// or smtps://, not {parts.scheme}://")
    query = parse_qs(parts.query, keep_blank_values=True)

    def flag(name):
        return name in query and (query[name][0] or "true").lower() in {"1", "true", "yes", "on"}

    use_ssl = parts.scheme == "smtps" or flag("ssl")
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or (465 if use_ssl else 587 if flag("tls") else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": flag("tls") and not use_ssl,
        "EMAIL_USE_SSL": use_ssl,
    }


EMAIL_URL = env("EMAIL_URL", "")
if EMAIL_URL:
    _email = parse_email_url(EMAIL_URL)
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST, EMAIL_PORT = _email["EMAIL_HOST"], _email["EMAIL_PORT"]
    EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_USER"], _email["EMAIL_HOST_PASSWORD"]
    EMAIL_USE_TLS, EMAIL_USE_SSL = _email["EMAIL_USE_TLS"], _email["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Tanbih <noreply@localhost>")

# --- Commerce -----------------------------------------------------------------
CART_ABANDON_MINUTES = env_int("CART_ABANDON_MINUTES", 30)
CART_RESTORE_URL = env("CART_RESTORE_URL", "")  # e.g. https://shop.example/cart/restore
STORE_URL = env("STORE_URL", f"{SITE_URL}/demo/store").rstrip("/")  # {{ shop_url }} in message templates
CART_RESTORE_MAX_AGE_DAYS = env_int("CART_RESTORE_MAX_AGE_DAYS", 30)
DEFAULT_CURRENCY = env("DEFAULT_CURRENCY", "SAR")
LIFECYCLE_LOYAL_MIN_ORDERS = env_int("LIFECYCLE_LOYAL_MIN_ORDERS", 3)
LIFECYCLE_AT_RISK_DAYS = env_int("LIFECYCLE_AT_RISK_DAYS", 60)
LIFECYCLE_LAPSED_DAYS = env_int("LIFECYCLE_LAPSED_DAYS", 120)

# --- Logging --------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Campaigns --------------------------------------------------------------------
# How often celery-beat runs the campaign scheduler (launch due campaigns, A/B winners, completion).
CAMPAIGN_TICK_SECONDS = env_int("CAMPAIGN_TICK_SECONDS", 15)
# "At each subscriber's best hour": a dotted path to a function returning a Subscriber annotation of the best
# local hour (0-23); by default the hour the predictions wrote on each shopper (docs/predictions.md). Shoppers
# without one get the campaign's local time, else 10:00; empty: everyone does.
CAMPAIGN_BEST_HOUR_PROVIDER = env("CAMPAIGN_BEST_HOUR_PROVIDER", "analytics.best_hour.best_hour_annotation")
# The review step's SMS cost estimate: price of one SMS segment, and its currency.
SMS_COST_PER_SEGMENT = env("SMS_COST_PER_SEGMENT", "0.05")
SMS_COST_CURRENCY = env("SMS_COST_CURRENCY", "USD")
STORE_TIMEZONE = env("STORE_TIMEZONE", "UTC")  # the timezone the marketer UI reads and shows dates and times in

# --- Journeys ---------------------------------------------------------------------
# How often celery-beat runs the journey tick (due enrolments advanced), and the periodic triggers.
JOURNEY_TICK_SECONDS = env_int("JOURNEY_TICK_SECONDS", 10)
JOURNEY_TRIGGER_SCAN_SECONDS = env_int("JOURNEY_TRIGGER_SCAN_SECONDS", 300)
# How long a tick's claim holds due enrolments: a worker that dies after claiming leaves them due again after it.
JOURNEY_CLAIM_LEASE_SECONDS = env_int("JOURNEY_CLAIM_LEASE_SECONDS", 600)
# Hosts a journey's webhook step may call (https; a leading dot allows subdomains). Empty: no webhook steps.
JOURNEY_WEBHOOK_ALLOWED_HOSTS = env_list("JOURNEY_WEBHOOK_ALLOWED_HOSTS", "")
# The key webhook calls are signed with (X-Tanbih-Signature); derived from SECRET_KEY when empty.
JOURNEY_WEBHOOK_SECRET = env("JOURNEY_WEBHOOK_SECRET", "")
JOURNEY_WEBHOOK_TIMEOUT_SECONDS = env_int("JOURNEY_WEBHOOK_TIMEOUT_SECONDS", 10)

# --- Analytics --------------------------------------------------------------------
# Attribution (docs/analytics.md): an order goes to the last message clicked within the click window, else to the
# last message displayed or delivered within the view window.
ANALYTICS_CLICK_WINDOW_HOURS = env_int("ANALYTICS_CLICK_WINDOW_HOURS", 24)
ANALYTICS_VIEW_WINDOW_HOURS = env_int("ANALYTICS_VIEW_WINDOW_HOURS", 1)
# How often celery-beat adds new message events to the daily rollups, and attributes orders the signal path missed.
ANALYTICS_ROLLUP_SECONDS = env_int("ANALYTICS_ROLLUP_SECONDS", 30)
ANALYTICS_SWEEP_SECONDS = env_int("ANALYTICS_SWEEP_SECONDS", 300)
# How often celery-beat recomputes the hold-out figures (lift) of campaign runs whose conversion window is open.
ANALYTICS_LIFT_SECONDS = env_int("ANALYTICS_LIFT_SECONDS", 600)

# --- Predictions (docs/predictions.md) --------------------------------------------
# The UTC hour celery-beat retrains the purchase / churn models and rescores every shopper (at :37).
PREDICTIONS_TRAIN_HOUR = env_int("PREDICTIONS_TRAIN_HOUR", 3)
# A model is trained only with at least this many rows of each outcome; fewer is recorded as "not enough data".
PREDICTIONS_MIN_CLASS_ROWS = env_int("PREDICTIONS_MIN_CLASS_ROWS", 20)
# Training learns from every shopper up to this many, else from every n-th one (memory: shoppers × snapshots rows).
PREDICTIONS_MAX_TRAINING_SHOPPERS = env_int("PREDICTIONS_MAX_TRAINING_SHOPPERS", 100_000)
# Best send hour: days of clicks and displays looked at, and the prior's weight k (how many engagements a
# shopper needs before their own hours outweigh the store-wide pattern).
PREDICTIONS_BEST_HOUR_DAYS = env_int("PREDICTIONS_BEST_HOUR_DAYS", 180)
PREDICTIONS_BEST_HOUR_PRIOR_WEIGHT = float(env("PREDICTIONS_BEST_HOUR_PRIOR_WEIGHT", "5"))
