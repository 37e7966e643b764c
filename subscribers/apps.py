from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubscribersConfig(AppConfig):
    name = "subscribers"
    verbose_name = _("Subscribers")

    def ready(self):
        from corsheaders.signals import check_request_enabled
        from django.db.backends.signals import connection_created

        from . import checks  # noqa: F401
        from .api.cors import allow_publishable_key_origins
        from .sql_functions import register_sqlite_functions

        check_request_enabled.connect(allow_publishable_key_origins, dispatch_uid="tanbih-publishable-key-origins")
        connection_created.connect(register_sqlite_functions, dispatch_uid="tanbih-sqlite-functions")
