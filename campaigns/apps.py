from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self):
        from django.db.models.signals import post_migrate

        from delivery.policy import register_source_gate

        from .roles import ensure_roles

        # The Marketers and Viewers groups. Each app's permissions are created in its own post_migrate, so this
        # runs after every app's (idempotent, a few queries) and the last run sees them all.
        post_migrate.connect(ensure_roles, dispatch_uid="campaigns.ensure_roles")

        from . import engine
        from .models import SOURCE_TYPE

        # A paused campaign's due messages are held, a cancelled one's stopped, at send time.
        register_source_gate(SOURCE_TYPE, engine.gate)
