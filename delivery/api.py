"""Browser-facing endpoints: notification reports from the service worker, in-app messages for the SDK."""
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from subscribers.api.auth import ApiKeyAuthentication, IsApiKey, check_browser_identity
from subscribers.api.sdk import SdkKeyAuthentication
from subscribers.api.serializers import ErrorSerializer
from subscribers.api.throttles import PublishableKeyThrottle, SecretKeyThrottle
from subscribers.services import resolve_subscriber

from . import outbox
from .models import DeliveryChannel, Message, MessageStatus, NotificationReportKind
from .reports import record_notification_report

INAPP_PAGE_SIZE = 10


class NotificationReportSerializer(serializers.Serializer):
    code = serializers.RegexField(
        r"^[A-Za-z0-9_.:-]{1,64}$",
        error_messages={"invalid": "The message code is 1–64 letters, digits, '_', '.', ':' or '-'."},
    )
    kind = serializers.ChoiceField(choices=NotificationReportKind.choices)
    action = serializers.RegexField(
        r"^[A-Za-z0-9_.:-]{1,64}$", required=False, allow_blank=True, allow_null=True,
        error_messages={"invalid": "The action id is 1–64 letters, digits, '_', '.', ':' or '-'."},
    )
    endpoint = serializers.URLField(
        max_length=1000, required=False, allow_blank=True, allow_null=True,
        help_text="The browser's push subscription endpoint, which ties the report to it.")
    occurred_at = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="When it happened in the browser; a time ahead of ours is replaced by the time of arrival.")

    def validate(self, data):
        if data.get("action") and data["kind"] != NotificationReportKind.CLICKED:
            raise serializers.ValidationError({"action": "Only a 'clicked' report names an action."})
        return data


class NotificationReportOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    kind = serializers.CharField()
    action = serializers.CharField()


class NotificationReportView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsApiKey]
    throttle_classes = [PublishableKeyThrottle, SecretKeyThrottle]

    @extend_schema(
        operation_id="notification_reports_create",
        tags=["browser"],
        request=NotificationReportSerializer,
        responses={
            201: NotificationReportOutSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid report: each error names the field."),
            401: OpenApiResponse(ErrorSerializer, description="No API key, or an unknown / revoked one."),
            403: OpenApiResponse(ErrorSerializer, description="An origin the publishable key does not allow."),
            429: OpenApiResponse(ErrorSerializer, description="Rate limit reached; see Retry-After."),
        },
        examples=[OpenApiExample("A click on an action button", request_only=True, value={
            "code": "msg-1024", "kind": "clicked", "action": "track",
            "endpoint": "https://fcm.googleapis.com/fcm/send/dXk…", "occurred_at": "2026-11-23T10:15:00Z"})],
        summary="Report that a web push notification was displayed, clicked or closed",
        description=(
            "Called by Tanbih's service worker with the publishable key (header `X-Tanbih-Key`). "
            "`code` is the message code that came in the push payload; `action` is the id of the "
            "action button clicked (only for `clicked`, empty for a click on the notification)."
        ),
    )
    def post(self, request):
        serializer = NotificationReportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        report = record_notification_report(
            code=data["code"], kind=data["kind"], action=data.get("action") or "",
            endpoint=data.get("endpoint") or "", user_agent=request.headers.get("User-Agent", ""),
            occurred_at=data.get("occurred_at"),
        )
        return Response(
            {"id": report.pk, "code": report.code, "kind": report.kind, "action": report.action},
            status=status.HTTP_201_CREATED,
        )


# --- In-app messages ----------------------------------------------------------------

class InAppIdentitySerializer(serializers.Serializer):
    anonymous_id = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                         help_text="The browser's anonymous id (set by the SDK).")
    external_id = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                        help_text="The store's customer id, for a signed-in shopper.")
    user_hash = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                      help_text="Hex HMAC-SHA256 of external_id with the key's identity secret.")

    def validate(self, data):
        if not data.get("anonymous_id") and not data.get("external_id"):
            raise serializers.ValidationError({"anonymous_id": "Send anonymous_id or external_id."})
        return data


class InAppMessageSerializer(serializers.Serializer):
    code = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    image = serializers.CharField()
    button_label = serializers.CharField()
    button_url = serializers.CharField(help_text="A tracked link: following it records the click.")
    placement = serializers.CharField()
    locale = serializers.CharField(
        help_text="The language it was written in (ar, en): the SDK shows Arabic right to left.")
    sent_at = serializers.DateTimeField(allow_null=True)


class InAppListSerializer(serializers.Serializer):
    messages = InAppMessageSerializer(many=True)


def _inapp_subscriber(request, data):
    """The subscriber the browser may speak for, or None (nothing to show)."""
    external_id = data.get("external_id") or None
    anonymous_id = data.get("anonymous_id") or None
    if external_id:
        check_browser_identity(request, external_id=external_id, anonymous_id=anonymous_id,
                               user_hash=data.get("user_hash") or None)
        return resolve_subscriber(external_id=external_id, create=False)[0]
    return resolve_subscriber(anonymous_id=anonymous_id, create=False)[0]


def _inapp_out(message):
    content = message.content or {}
    button_url = ""
    if content.get("button_url"):
        index = outbox.tracked_links(content).index(content["button_url"])
        button_url = outbox.click_url(message, index)
    return {
        "code": message.code, "title": content.get("title") or "", "body": content.get("body") or "",
        "image": content.get("image") or "", "button_label": content.get("button_label") or "",
        "button_url": button_url, "placement": content.get("placement") or "banner", "locale": message.locale or "",
        "sent_at": message.sent_at,
    }


class InAppMessagesView(APIView):
    # A GET: a same-origin page (the demo store) sends no Origin header, so the Referer stands in.
    authentication_classes = [SdkKeyAuthentication]
    permission_classes = [IsApiKey]
    throttle_classes = [PublishableKeyThrottle, SecretKeyThrottle]

    @extend_schema(
        operation_id="inapp_messages_list", tags=["browser"], parameters=[InAppIdentitySerializer],
        responses={
            200: InAppListSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Neither anonymous_id nor external_id."),
            401: OpenApiResponse(ErrorSerializer, description="No API key, or an unknown / revoked one."),
            403: OpenApiResponse(ErrorSerializer, description="A wrong or missing user_hash, or a disallowed origin."),
        },
        summary="The shopper's pending in-app messages",
        description=(
            "Called by the storefront SDK on a page view with the publishable key. Returns in-app messages "
            "not yet shown to this shopper, newest first (at most "
            f"{INAPP_PAGE_SIZE}). Report each one shown with `POST /api/v1/inapp/<code>/seen`."
        ),
    )
    def get(self, request):
        identity = InAppIdentitySerializer(data=request.query_params)
        identity.is_valid(raise_exception=True)
        subscriber = _inapp_subscriber(request, identity.validated_data)
        messages = []
        if subscriber is not None:
            messages = [_inapp_out(m) for m in Message.objects.filter(
                subscriber=subscriber, channel=DeliveryChannel.INAPP, displayed_at__isnull=True,
                status__in=[MessageStatus.SENT, MessageStatus.DELIVERED],
            ).order_by("-sent_at", "-pk")[:INAPP_PAGE_SIZE]]
        return Response({"messages": messages})


class InAppSeenView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsApiKey]
    throttle_classes = [PublishableKeyThrottle, SecretKeyThrottle]

    @extend_schema(
        operation_id="inapp_messages_seen", tags=["browser"], request=InAppIdentitySerializer,
        responses={
            204: OpenApiResponse(description="Recorded (a repeat changes nothing)."),
            404: OpenApiResponse(ErrorSerializer, description="No such in-app message for this shopper."),
        },
        summary="Report that an in-app message was shown",
    )
    def post(self, request, code):
        identity = InAppIdentitySerializer(data=request.data)
        identity.is_valid(raise_exception=True)
        subscriber = _inapp_subscriber(request, identity.validated_data)
        if subscriber is None or not Message.objects.filter(
                code=code, subscriber=subscriber, channel=DeliveryChannel.INAPP).exists():
            raise NotFound("No such in-app message for this shopper.")
        outbox.mark_displayed(code=code)
        return Response(status=status.HTTP_204_NO_CONTENT)
