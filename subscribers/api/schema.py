"""How drf-spectacular describes our API keys in the OpenAPI schema."""
from drf_spectacular.drainage import set_override
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from .auth import ApiKeyAuthentication, IsSecretKey


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "subscribers.api.auth.ApiKeyAuthentication"
    match_subclasses = True
    name = ["secretKey", "publishableKey"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer",
             "description": "Secret key (tnb_sk_…) for the store's backend. Never put it in a browser."},
            {"type": "apiKey", "in": "header", "name": "X-Tanbih-Key",
             "description": "Publishable key (tnb_pk_…) for the storefront SDK; works only from the key's "
                            "allowed origins (Origin header) and only for identify, track and push subscribe."},
        ]

    def get_security_requirement(self, auto_schema):
        if any(isinstance(p, IsSecretKey) for p in auto_schema.view.get_permissions()):
            return {"secretKey": []}
        return [{"secretKey": []}, {"publishableKey": []}]


# Subclasses (e.g. the SDK's, which also reads the Referer) are the same two
# security schemes: don't warn that their components share these names.
set_override(ApiKeyAuthentication, "suppress_collision_warning", True)
