import pytest


@pytest.fixture(autouse=True)
def _eager_tasks_by_default(request, settings, tmp_path):
    """Unit tests run Celery tasks inline; tests marked `worker` use a real worker."""
    from config.celery import app

    settings.MEDIA_ROOT = tmp_path / "media"
    eager = request.node.get_closest_marker("worker") is None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def race():
    """Run callables at the same moment, each in its own thread on its own database connection: -> the
    exceptions they raised (an empty list when every one finished).

    PostgreSQL only: the SQLite test database lives in shared memory, where writers lock whole tables across
    threads, so the races these tests guard against are PostgreSQL's (CI's and production's). The
    file-backed SQLite of `make run` waits on its lock instead.
    """
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need the PostgreSQL test database")

    def run(*work):
        errors, barrier = [], threading.Barrier(len(work))

        def one(job):
            try:
                barrier.wait()
                job()
            except Exception as error:  # noqa: BLE001 - returned to the test, which asserts on them
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=one, args=(job,)) for job in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors
    return run
