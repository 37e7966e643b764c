from django.conf import settings
from django.http import JsonResponse


class BodySizeLimitMiddleware:
    """Refuse an oversized API body whole, with a JSON 413, before it is read.

    Django would otherwise answer a too-large body with a bare 400 when the
    view first touches request.body.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = settings.API_MAX_BODY_BYTES
            if length > limit:
                return JsonResponse(
                    {"errors": [{"field": None, "code": "payload_too_large",
                                 "message": f"The request body is {length} bytes; the limit is {limit} bytes."}]},
                    status=413,
                )
        return self.get_response(request)


class EnglishApiMiddleware:
    """The storefront API answers in English whatever the caller's Accept-Language.

    Its errors are for developers and their logs, and stay stable for code that
    matches them; marketer-facing pages follow the user's language. Placed after
    LocaleMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            from django.utils import translation

            with translation.override("en"):
                request.LANGUAGE_CODE = "en"
                return self.get_response(request)
        return self.get_response(request)
