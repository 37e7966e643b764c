import time

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

# Which event names any active journey cares about, per process, refreshed at most this often: the
# ingest path pays one set lookup per event, and a task only for the events that matter.
INTEREST_TTL_SECONDS = 10


class JourneysConfig(AppConfig):
    name = "journeys"
    verbose_name = _("Journeys")
    _interest = (0.0, frozenset())

    def ready(self):
        from subscribers import signals

        signals.event_recorded.connect(self.on_event, dispatch_uid="journeys.on_event")
        signals.consent_changed.connect(self.on_consent, dispatch_uid="journeys.on_consent")

    def interesting(self, name):
        checked_at, names = self._interest
        if time.monotonic() - checked_at > INTEREST_TTL_SECONDS:
            from .engine import interesting_event_names

            names = frozenset(interesting_event_names())
            JourneysConfig._interest = (time.monotonic(), names)
        return name in names

    def on_event(self, sender, event_id, subscriber_id, name, **kwargs):
        if self.interesting(name):
            from .tasks import handle_event

            handle_event.delay(event_id)

    def on_consent(self, sender, subscriber_id, channel, granted, **kwargs):
        if not granted:
            from .tasks import consent_revoked

            consent_revoked.delay(subscriber_id, channel)

    @classmethod
    def forget_interest(cls):
        """Journeys changed: the next event reads the names again (called by the journey write paths)."""
        cls._interest = (0.0, frozenset())
