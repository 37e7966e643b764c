from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = _("Analytics")

    def ready(self):
        from subscribers import signals

        signals.event_recorded.connect(self.on_event, dispatch_uid="analytics.on_event")

    @staticmethod
    def on_event(sender, event_id, subscriber_id, name, **kwargs):
        """An order arrived (the signal comes after commit): attribute it in a task."""
        if name == "order_placed":
            from .tasks import attribute_order_event

            attribute_order_event.delay(event_id)
