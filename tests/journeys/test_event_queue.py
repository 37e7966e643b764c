"""A shopper's event is answered on a queue of its own, never behind a backlog of sends or journey ticks."""
from django.conf import settings

from config.celery import app
from subscribers.management.commands import run_tanbih

EVENT_REACTIONS = ("journeys.tasks.handle_event", "journeys.tasks.consent_revoked",
                   "analytics.tasks.attribute_order_event")


def queue_of(task_name):
    return app.amqp.router.route({}, task_name)["queue"].name


def test_the_reactions_to_an_event_are_routed_to_the_events_queue():
    assert {name: queue_of(name) for name in EVENT_REACTIONS} == dict.fromkeys(EVENT_REACTIONS, "events")


def test_the_journey_tick_and_the_sends_stay_off_the_events_queue():
    assert queue_of("journeys.tasks.tick") == "schedule"
    assert queue_of("journeys.tasks.scan_triggers") == "schedule"
    assert queue_of("delivery.tasks.send_transactional") == "send"


def test_run_tanbih_consumes_every_routed_queue_with_the_events_queue_on_a_worker_of_its_own():
    main = run_tanbih.worker_command(2)
    events = run_tanbih.worker_command(run_tanbih.EVENT_CONCURRENCY, run_tanbih.EVENT_QUEUES, "events")
    main_queues = set(main[main.index("--queues") + 1].split(","))
    event_queues = events[events.index("--queues") + 1].split(",")
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}

    assert event_queues == ["events"]
    assert "events" not in main_queues
    assert routed <= main_queues | set(event_queues)
