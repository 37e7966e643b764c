from django.conf import settings
from django.core.checks import Error, Warning, register


@register(deploy=True)
def check_production_settings(app_configs, **kwargs):
    problems = []
    if settings.SECRET_KEY.startswith("tanbih-insecure"):
        problems.append(Error("SECRET_KEY is the development default.", hint="Set SECRET_KEY in the environment.",
                              id="tanbih.E001"))
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        problems.append(Warning("SQLite is for trying Tanbih out.", hint="Set DATABASE_URL to PostgreSQL.",
                                id="tanbih.W001"))
    if not settings.REDIS_URL:
        problems.append(Warning("No REDIS_URL: the embedded filesystem broker is for one machine only.",
                                hint="Set REDIS_URL.", id="tanbih.W002"))
    return problems
