"""A large import runs on a real Celery worker (the ingest queue) while the admin watches its progress."""
import csv
import io
import threading

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.core.files.base import ContentFile
from django.urls import reverse

from config.celery import app
from subscribers import imports, tasks
from subscribers.models import ImportJob, ImportJobStatus, Subscriber


@pytest.fixture
def ingest_worker():
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=["ingest"],
                      shutdown_timeout=20):
        yield


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_uploaded_file_is_imported_by_the_worker_in_chunks(admin_client, ingest_worker, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK_SIZE", 50)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["external_id", "phone", "country", "timezone"])
    for n in range(1, 301):
        writer.writerow([f"w-{n}", f"050{n:07d}" if n != 150 else "nope", "SA", "Asia/Riyadh"])

    finished = threading.Event()

    def on_task_done(sender=None, **kwargs):
        if getattr(sender, "name", "") == tasks.import_file.name:
            finished.set()
    # Wait on the worker's signal rather than polling: the SQLite test database
    # (shared in-memory cache) locks whole tables between threads.
    task_postrun.connect(on_task_done, weak=False)
    try:
        response = admin_client.post(reverse("admin:subscribers_importjob_upload"), {
            "resource": "subscribers", "on_bad_rows": "skip",
            "file": ContentFile(out.getvalue().encode(), name="big.csv")})
        assert response.status_code == 302
        assert finished.wait(timeout=300)
    finally:
        task_postrun.disconnect(on_task_done)

    job = ImportJob.objects.get()
    state = admin_client.get(reverse("admin:subscribers_importjob_status", args=[job.pk])).json()
    assert (job.status, job.total_rows, job.processed_rows) == (ImportJobStatus.DONE, 300, 300)
    assert (job.created_rows, job.error_rows) == (299, 1)
    assert job.errors[0]["row"] == 150 and job.errors[0]["field"] == "phone"
    assert state["finished"] and state["percent"] == 100
    assert Subscriber.objects.count() == 299
