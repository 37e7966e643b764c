"""The publishable key of the demo storefront that Tanbih serves at /demo/store/."""
from urllib.parse import urlsplit

from .models import ApiKey, ApiKeyKind

DEMO_KEY_NAME = "Demo storefront"
_LOOPBACK_TWINS = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}


def _origins_with_loopback_twins(origins):
    """http://127.0.0.1:8000 also allows http://localhost:8000 (newcomers type either)."""
    out = []
    for origin in origins:
        parts = urlsplit(origin.rstrip("/"))
        if not parts.scheme or not parts.hostname:
            raise ValueError(f"'{origin}' is not an origin such as http://127.0.0.1:8000")
        port = f":{parts.port}" if parts.port else ""
        candidates = [f"{parts.scheme}://{parts.hostname}{port}"]
        twin = _LOOPBACK_TWINS.get(parts.hostname)
        if twin:
            candidates.append(f"{parts.scheme}://{twin}{port}")
        out.extend(c for c in candidates if c not in out)
    return out


def demo_publishable_key():
    """The demo storefront's key, or None when no demo store was loaded."""
    return (
        ApiKey.objects.filter(name=DEMO_KEY_NAME, kind=ApiKeyKind.PUBLISHABLE, is_active=True)
        .order_by("pk").first()
    )


def ensure_demo_publishable_key(origin, *more_origins):
    """Create (once) the demo storefront's publishable key and allow it from `origin`.

    Call it from the demo loader with settings.SITE_URL; the raw key is the
    returned key's `publishable_key`. Repeating the call only adds origins.
    """
    origins = _origins_with_loopback_twins([origin, *more_origins])
    key = demo_publishable_key()
    if key is None:
        key, _ = ApiKey.create_publishable(DEMO_KEY_NAME, allowed_origins=origins)
        return key
    missing = [o for o in origins if o not in key.allowed_origins]
    if missing:
        key.allowed_origins = [*key.allowed_origins, *missing]
        key.save(update_fields=["allowed_origins"])
    return key
