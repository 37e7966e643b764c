"""Thin Celery wrappers: load ids, call the domain function."""
from celery import shared_task

from . import services


@shared_task(time_limit=300, soft_time_limit=280)
def detect_abandoned_carts():
    return services.detect_abandoned_carts()


@shared_task(time_limit=600, soft_time_limit=580)
def refresh_lifecycle_stages():
    return services.refresh_lifecycle_stages()
