"""The notification report endpoint, called by the service worker in shoppers' browsers."""
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from subscribers.api.auth import ApiKeyAuthentication, IsApiKey
from subscribers.api.serializers import ErrorSerializer
from subscribers.api.throttles import PublishableKeyThrottle, SecretKeyThrottle

from .models import NotificationReportKind
from .reports import record_notification_report


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
