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
