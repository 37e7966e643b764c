"""Settings for the journey scheduler benchmark: the product's settings with only the journey tick in beat.

The other periodic tasks (abandoned-cart detection, the campaign tick, the outbox's
dispatch) would run on the same two cores and write rows of their own during the
measurement; the journey tick is the product's own entry, unchanged.
"""
from config.settings import *  # noqa: F401,F403
from config.settings import CELERY_BEAT_SCHEDULE, LOGGING

DEBUG = False
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
CELERY_BEAT_SCHEDULE = {"journeys-tick": CELERY_BEAT_SCHEDULE["journeys-tick"]}
# The naive design's task (bench/journeys/naive.py) has a queue of its own.
CELERY_TASK_ROUTES = {**CELERY_TASK_ROUTES, "bench.journeys.naive.*": {"queue": "bench-naive"}}  # noqa: F405
