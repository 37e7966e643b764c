"""What the browser SDK needs before it can prompt: the VAPID public key and the prompt's texts."""
from urllib.parse import urlsplit

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import ApiKeyKind, PushPromptConfig
from .auth import ApiKeyAuthentication, ApiKeyUser, IsApiKey, _lookup
from .serializers import ErrorSerializer
from .throttles import PublishableKeyThrottle, SecretKeyThrottle


def _origin_of(url):
    parts = urlsplit(url or "")
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


class SdkKeyAuthentication(ApiKeyAuthentication):
    """The publishable key, from an allowed origin.

    Browsers send no Origin header on a same-origin GET (the demo storefront
    served by Tanbih itself), so the Referer's origin stands in for it then.
    """

    def authenticate(self, request):
        raw = request.headers.get("X-Tanbih-Key", "").strip()
        if not raw:
            return super().authenticate(request)
        key = _lookup(raw)
        if key.kind == ApiKeyKind.PUBLISHABLE:
            origin = request.headers.get("Origin") or _origin_of(request.headers.get("Referer"))
            if not key.allows_origin(origin):
                raise exceptions.PermissionDenied(
                    f"This publishable key may not be used from origin '{origin or '(none)'}'."
                )
        return ApiKeyUser(key), key


def prompt_texts(config):
    return {
        lang: {
            "title": getattr(config, f"title_{lang}"),
            "body": getattr(config, f"body_{lang}"),
            "accept": getattr(config, f"accept_{lang}"),
            "decline": getattr(config, f"decline_{lang}"),
        }
        for lang in ("en", "ar")
    }


class PromptTextsSerializer(serializers.Serializer):
    title = serializers.CharField()
    body = serializers.CharField()
    accept = serializers.CharField()
    decline = serializers.CharField()


class PromptTextsByLanguageSerializer(serializers.Serializer):
    en = PromptTextsSerializer()
    ar = PromptTextsSerializer()


class PromptSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="False when the marketer turned it off or no VAPID key is set.")
    delay_seconds = serializers.IntegerField()
    page_patterns = serializers.ListField(
        child=serializers.CharField(), help_text="Path prefixes, or patterns with *; empty: every page.")
    reprompt_after_days = serializers.IntegerField()
    texts = PromptTextsByLanguageSerializer()


class SdkConfigSerializer(serializers.Serializer):
    vapid_public_key = serializers.CharField(help_text="base64url; empty when web push is not configured.")
    prompt = PromptSerializer()


class SdkConfigView(APIView):
    authentication_classes = [SdkKeyAuthentication]
    permission_classes = [IsApiKey]
    throttle_classes = [PublishableKeyThrottle, SecretKeyThrottle]

    @extend_schema(
        operation_id="sdk_config",
        tags=["browser"],
        summary="Configuration for the storefront SDK",
        description=(
            "The VAPID public key to subscribe with and the soft opt-in prompt set by the marketer "
            "(texts in Arabic and English, delay, pages where it may appear, days before asking again "
            "after 'not now'). Called by sdk.js with the publishable key."
        ),
        responses={
            200: SdkConfigSerializer,
            401: OpenApiResponse(ErrorSerializer, description="No API key, or an unknown / revoked one."),
            403: OpenApiResponse(ErrorSerializer, description="An origin the publishable key does not allow."),
            429: OpenApiResponse(ErrorSerializer, description="Rate limit reached; see Retry-After."),
        },
    )
    def get(self, request):
        config = PushPromptConfig.current()
        data = {
            "vapid_public_key": settings.VAPID_PUBLIC_KEY,
            "prompt": {
                # Without a VAPID key no browser can subscribe: asking would be a broken promise.
                "enabled": bool(config.enabled and settings.VAPID_PUBLIC_KEY),
                "delay_seconds": config.delay_seconds,
                "page_patterns": [str(p) for p in (config.page_patterns or [])],
                "reprompt_after_days": config.reprompt_after_days,
                "texts": prompt_texts(config),
            },
        }
        response = Response(data)
        # Shoppers load it on every page; a short private cache spares the round trip.
        response["Cache-Control"] = "private, max-age=60"
        return response
