"""Settings for the ingest benchmark: the product's settings plus the naive baseline's URLs.

The baseline view lives only here (bench/ingest/baseline.py), never in the product.
"""
from config.settings import *  # noqa: F401,F403
from config.settings import LOGGING, REST_FRAMEWORK

DEBUG = False
ROOT_URLCONF = "bench.ingest.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# The product's throttle runs (its cost is part of what we measure) with a limit
# the benchmark never reaches.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"publishable": "1000000/min",
                                                                "secret": "1000000/min"}}
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"},
           "loggers": {**LOGGING.get("loggers", {}), "django.request": {"level": "ERROR"}}}
