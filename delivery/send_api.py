"""The store's backend sends one message: `POST /api/v1/messages` (secret key).

"Your order has shipped", "your code is 4411": a template, a customer, a
channel and the data the template needs. The call is idempotent on the
store's `idempotency_key` (a retried request returns the same messages and
sends nothing twice), renders before it writes anything (a missing variable is
a 400 naming it, and nothing is queued), and sends on the transactional lane,
never behind a broadcast. `GET /api/v1/messages/<code>` says what became of it.
"""
import uuid
from datetime import timedelta

from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from subscribers.api.errors import Conflict, field_error
from subscribers.api.serializers import BoundedJSONObjectField, ErrorSerializer
from subscribers.api.views import COMMON_ERRORS, E400, E413, StorefrontApiView, get_known_subscriber
from subscribers.models import Cart, Order, PushSubscriptionStatus

from . import outbox, rendering
from .models import DeliveryChannel, Message, MessageEvent, MessageTemplate

SOURCE_TYPE = "api"
MAX_SEND_AHEAD_DAYS = 30
MAX_DATA_BYTES = 16 * 1024


class SendMessageSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=128, help_text="The store's customer id.")
    template = serializers.SlugField(max_length=80, help_text="The template's slug, e.g. `order-shipped`.")
    channel = serializers.ChoiceField(
        choices=DeliveryChannel.values,
        help_text="push (one message per browser the customer allowed), sms, whatsapp, email or inapp.")
    idempotency_key = serializers.CharField(
        max_length=64, required=False, allow_blank=False,
        help_text=("Your id for this send, e.g. `order-1001-shipped`. A retry with the same key returns the "
                   "same messages and sends nothing again. Without one, every call sends."))
    order_id = serializers.CharField(max_length=128, required=False,
                                     help_text="An order of this customer (its external id): `order` in the template.")
    cart_id = serializers.CharField(max_length=128, required=False,
                                    help_text="A cart of this customer (its external id): `cart` in the template.")
    data = BoundedJSONObjectField(
        required=False, default=dict, max_bytes=MAX_DATA_BYTES,
        help_text="Other template variables, e.g. {\"discount_code\": \"SAVE10\", \"product\": {…}}.")
    transactional = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text=("Exempt from frequency caps and quiet hours (order updates, codes). Defaults to the "
                   "template's own setting."))
    send_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                        help_text="Send later (ISO 8601 with an offset); at most 30 days ahead.")

    def validate_send_at(self, value):
        if value is not None and value > timezone.now() + timedelta(days=MAX_SEND_AHEAD_DAYS):
            raise serializers.ValidationError(f"At most {MAX_SEND_AHEAD_DAYS} days ahead.", code="too_far")
        return value


class MessageEventOutSerializer(serializers.Serializer):
    kind = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    detail = serializers.JSONField()


class MessageOutSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The message's public code.")
    channel = serializers.CharField()
    template = serializers.CharField(source="template.slug", allow_null=True, default=None)
    locale = serializers.CharField()
    status = serializers.CharField(help_text="queued, held, sending, sent, delivered, failed, suppressed, …")
    status_reason = serializers.CharField()
    error = serializers.CharField()
    transactional = serializers.BooleanField(source="is_transactional")
    attempts = serializers.IntegerField()
    queued_at = serializers.DateTimeField()
    send_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    displayed_at = serializers.DateTimeField(allow_null=True)
    clicked_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)


class MessageDetailOutSerializer(MessageOutSerializer):
    content = serializers.JSONField(help_text="What was rendered for this customer.")
    events = MessageEventOutSerializer(many=True, source="history.all")


class SendOutSerializer(serializers.Serializer):
    created = serializers.BooleanField(help_text="False when an earlier call with the same key made them.")
    messages = MessageOutSerializer(many=True)


def _context(subscriber, data):
    context = dict(data.get("data") or {})
    if data.get("order_id"):
        order = Order.objects.filter(subscriber=subscriber, external_id=data["order_id"]).first()
        if order is None:
            raise field_error(ValidationError, "order_id", "This customer has no order with this id.", "not_found")
        context["order"] = order
    if data.get("cart_id"):
        cart = Cart.objects.filter(subscriber=subscriber, external_id=data["cart_id"]).first()
        if cart is None:
            raise field_error(ValidationError, "cart_id", "This customer has no cart with this id.", "not_found")
        context["cart"] = cart
    return context


def _targets(subscriber, channel):
    """The push subscriptions to write one message each for ([None] for other channels)."""
    if channel != DeliveryChannel.PUSH:
        return [None]
    browsers = list(subscriber.push_subscriptions.filter(status=PushSubscriptionStatus.ACTIVE).order_by("pk"))
    if not browsers:
        raise field_error(Conflict, "channel", "This customer has no browser subscribed to push.", "not_reachable")
    return browsers


def _render_first(template, channel, subscriber, context):
    """Render before writing: a missing variable or content is the caller's 400, and nothing is queued."""
    if not template.contents.filter(channel=channel).exists():
        raise field_error(ValidationError, "channel", f"The template has no {channel} content.", "no_content")
    try:
        rendering.render_message(template=template, channel=channel, subscriber=subscriber, context=context)
    except rendering.RenderError as problem:
        field = "data" if problem.code == "missing_variable" else "template"
        raise field_error(ValidationError, field, str(problem), problem.code or "render_error") from None


class SendMessageView(StorefrontApiView):
    @extend_schema(
        operation_id="messages_send", tags=["messages"],
        summary="Send one message to a customer (transactional)",
        description=(
            "Renders the template for the customer (their locale, the order or cart named, `data`) and queues "
            "it on the transactional lane; a worker sends it within seconds, or at `send_at`. Policies still "
            "apply at send time (consent, the suppression list; caps and quiet hours unless transactional): a "
            "message they stop is kept with status `suppressed` or `held` and its reason. Answers 202 with "
            "the messages written, or 200 with the same messages when `idempotency_key` was used before."
        ),
        request=SendMessageSerializer,
        responses={
            202: SendOutSerializer, 200: SendOutSerializer, 400: E400, 413: E413,
            404: OpenApiResponse(ErrorSerializer, description="No customer with this external_id, or no such template."),
            409: OpenApiResponse(ErrorSerializer, description=(
                "No browser subscribed to push for a push message, or the idempotency_key was used for "
                "another template, channel or customer.")),
            **COMMON_ERRORS,
        },
        examples=[OpenApiExample("Order shipped", request_only=True, value={
            "external_id": "cust-1001", "template": "order-shipped", "channel": "sms",
            "order_id": "1001", "idempotency_key": "order-1001-shipped"})],
    )
    def post(self, request):
        serializer = SendMessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subscriber = get_known_subscriber(data["external_id"])
        template = MessageTemplate.objects.filter(slug=data["template"]).first()
        if template is None:
            raise field_error(NotFound, "template", f"No template has the slug '{data['template']}'.", "not_found")
        channel = data["channel"]
        key = data.get("idempotency_key")
        if key:
            earlier = list(Message.objects.filter(source_type=SOURCE_TYPE, source_id=key)
                           .select_related("template").order_by("pk"))
            if earlier:
                return self._replay(earlier, subscriber, template, channel)
        context = _context(subscriber, data)
        _render_first(template, channel, subscriber, context)
        transactional = template.is_transactional if data["transactional"] is None else data["transactional"]
        messages = [
            outbox.send_message(
                subscriber=subscriber, channel=channel, template=template, context=context,
                source_type=SOURCE_TYPE, source_id=key or uuid.uuid4().hex, transactional=transactional,
                send_at=data["send_at"], push_subscription=browser)
            for browser in _targets(subscriber, channel)
        ]
        return Response({"created": True, "messages": MessageOutSerializer(messages, many=True).data},
                        status=status.HTTP_202_ACCEPTED)

    def _replay(self, earlier, subscriber, template, channel):
        first = earlier[0]
        if (first.subscriber_id, first.template_id, first.channel) != (subscriber.pk, template.pk, channel):
            raise field_error(Conflict, "idempotency_key",
                              "This key was used for another customer, template or channel.", "key_reused")
        return Response({"created": False, "messages": MessageOutSerializer(earlier, many=True).data},
                        status=status.HTTP_200_OK)


class MessageDetailView(StorefrontApiView):
    @extend_schema(
        operation_id="messages_read", tags=["messages"],
        summary="What became of a message",
        description="Its status, timestamps, rendered content and every event (sent, delivered, clicked, …).",
        responses={200: MessageDetailOutSerializer,
                   404: OpenApiResponse(ErrorSerializer, description="No message with this code."),
                   **COMMON_ERRORS},
    )
    def get(self, request, code):
        message = (Message.objects.select_related("template")
                   .prefetch_related(Prefetch("history", queryset=MessageEvent.objects.order_by("occurred_at", "pk")))
                   .filter(code=code).first())
        if message is None:
            raise field_error(NotFound, "code", "No message has this code.", "not_found")
        return Response(MessageDetailOutSerializer(message).data)
