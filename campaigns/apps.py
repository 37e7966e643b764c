from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self):
        from delivery.policy import register_source_gate

        from . import engine
        from .models import SOURCE_TYPE

        # A paused campaign's due messages are held, a cancelled one's stopped, at send time.
        register_source_gate(SOURCE_TYPE, engine.gate)
