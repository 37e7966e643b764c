"""Thin Celery wrappers: load ids, call the domain function."""
from celery import shared_task

from . import imports, services


@shared_task(time_limit=300, soft_time_limit=280)
def detect_abandoned_carts():
    return services.detect_abandoned_carts()


@shared_task(time_limit=600, soft_time_limit=580)
def refresh_lifecycle_stages():
    return services.refresh_lifecycle_stages()


@shared_task(time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def import_file(job_id, skip_bad_rows=None):
    """Check and import the file of an ImportJob (routed to the ingest queue).

    Safe to deliver twice: the job is claimed with a conditional UPDATE.
    """
    return imports.run_import_job(job_id=job_id, skip_bad_rows=skip_bad_rows)
