"""The storefront REST API (/api/v1/): thin views over subscribers.services.

Secret keys (the store's backend) may call everything. Publishable keys (the
browser SDK, from the key's allowed origins) may only identify, track one
event and register / unregister a push subscription, and may name a store
customer only with proof (see auth.check_browser_identity).
"""
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..models import AnonymousId, PushSubscriptionStatus, Source, Subscriber
from . import schema  # noqa: F401 - registers the API key security schemes
from .auth import MISSING_KEY_MESSAGE, ApiKeyAuthentication, IsApiKey, IsSecretKey, check_browser_identity, \
    is_publishable
from .errors import Conflict, PayloadTooLarge, field_error, flatten_errors
from .serializers import (
    BatchOutSerializer,
    BrowserEventSerializer,
    ConsentChangeOutSerializer,
    ConsentOutSerializer,
    ConsentsOutSerializer,
    ConsentUpdateOutSerializer,
    ConsentUpdateSerializer,
    ErrorSerializer,
    EventBatchSerializer,
    EventOutSerializer,
    EventSerializer,
    IdentifyOutSerializer,
    IdentifySerializer,
    PushSubscribeSerializer,
    PushSubscriptionOutSerializer,
    PushUnsubscribeSerializer,
    SubscriberOutSerializer,
    SubscriberUpsertSerializer,
)
from .throttles import PublishableKeyThrottle, SecretKeyThrottle


def _error(description):
    return OpenApiResponse(ErrorSerializer, description=description)


E400 = _error("Invalid input: each error names the field and says what is valid.")
E401 = _error("No API key, or an unknown / revoked one.")
E403 = _error("Wrong kind of key, an origin the publishable key does not allow, or a bad user_hash.")
E404 = _error("No subscriber with this external_id.")
E409 = _error("Conflict: the email or phone belongs to another customer, or a concurrent change.")
E413 = _error("The body is over API_MAX_BODY_BYTES, or the batch over API_MAX_BATCH_EVENTS events.")
E415 = _error("The body is not JSON (send Content-Type: application/json).")
E429 = _error("Rate limit reached; retry after the number of seconds in the Retry-After header.")
COMMON_ERRORS = {401: E401, 403: E403, 415: E415, 429: E429}


class StorefrontApiView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsSecretKey]
    throttle_classes = [PublishableKeyThrottle, SecretKeyThrottle]

    def permission_denied(self, request, message=None, code=None):
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated(MISSING_KEY_MESSAGE)
        super().permission_denied(request, message=message, code=code)

    def source(self):
        return Source.SDK if is_publishable(self.request) else Source.API


def get_known_subscriber(external_id, queryset=None):
    subscriber = (queryset if queryset is not None else Subscriber.objects).filter(external_id=external_id).first()
    if subscriber is None:
        raise field_error(exceptions.NotFound, "external_id", f"No subscriber has external_id '{external_id}'.",
                          "not_found")
    return subscriber


def subscriber_detail_queryset():
    """A profile with what the detail view shows, in three queries."""
    return Subscriber.objects.annotate(
        push_count=Count("push_subscriptions"),
        active_push_count=Count("push_subscriptions",
                                filter=Q(push_subscriptions__status=PushSubscriptionStatus.ACTIVE)),
    ).prefetch_related("consents", "anonymous_ids")


def subscriber_representation(subscriber_id):
    return SubscriberOutSerializer(subscriber_detail_queryset().get(pk=subscriber_id)).data


def check_contact_conflicts(external_id, traits):
    """An email or phone identifies one store customer: refuse to give it to a second one."""
    for field in ("email", "phone"):
        value = traits.get(field)
        if value and (Subscriber.objects.known().filter(**{f"{field}__iexact": value})
                      .exclude(external_id=external_id).exists()):
            raise field_error(Conflict, field, f"Another customer already has this {field}.", f"{field}_taken")


# --- Subscribers ---------------------------------------------------------------

class SubscriberUpsertView(StorefrontApiView):
    @extend_schema(
        operation_id="subscribers_upsert",
        tags=["subscribers"],
        summary="Create or update a subscriber by store customer id",
        description=(
            "Only the fields sent change; `attributes` are merged (a null value removes one) and `tags` "
            "replaced. A phone is stored in E.164; a national number needs `country`. Passing `anonymous_id` "
            "ties a browser to the customer and merges its anonymous profile. Answers 201 when the profile "
            "was created, 200 when it was updated."
        ),
        request=SubscriberUpsertSerializer,
        responses={201: SubscriberOutSerializer, 200: SubscriberOutSerializer, 400: E400, 409: E409,
                   413: E413, **COMMON_ERRORS},
        examples=[OpenApiExample("A customer", request_only=True, value={
            "external_id": "cust-1001", "email": "layla@example.com", "phone": "0501234567", "country": "SA",
            "first_name": "ليلى", "locale": "ar-SA", "timezone": "Asia/Riyadh",
            "attributes": {"vip": True}, "tags": ["newsletter"]})],
    )
    def post(self, request):
        serializer = SubscriberUpsertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        traits = dict(serializer.validated_data)
        external_id = traits.pop("external_id")
        anonymous_id = traits.pop("anonymous_id", None)
        check_contact_conflicts(external_id, traits)
        subscriber, created = services.upsert_subscriber(
            external_id=external_id, anonymous_id=anonymous_id, source=self.source(), **traits)
        return Response(subscriber_representation(subscriber.pk),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SubscriberDetailView(StorefrontApiView):
    @extend_schema(
        operation_id="subscribers_retrieve",
        tags=["subscribers"],
        summary="Read a subscriber",
        description="The profile, its browser ids, current consent per channel, how many push subscriptions "
                    "it has (active / all) and its commerce figures.",
        responses={200: SubscriberOutSerializer, 404: E404, **COMMON_ERRORS},
    )
    def get(self, request, external_id):
        return Response(SubscriberOutSerializer(get_known_subscriber(external_id, subscriber_detail_queryset())).data)

    @extend_schema(
        operation_id="subscribers_erase",
        tags=["privacy"],
        summary="Erase a subscriber (GDPR)",
        description="Deletes the profile and everything about it: browser ids, consents and their history, "
                    "push subscriptions, events, carts and orders. Cannot be undone.",
        responses={204: None, 404: E404, **COMMON_ERRORS},
    )
    def delete(self, request, external_id):
        services.erase_subscriber(subscriber=get_known_subscriber(external_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubscriberExportView(StorefrontApiView):
    @extend_schema(
        operation_id="subscribers_export",
        tags=["privacy"],
        summary="Export everything about a subscriber (GDPR access)",
        description="Profile, browser ids, consents with their full history, push subscriptions, every event, "
                    "carts and orders, as one JSON document.",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The subscriber's data."),
                   404: E404, **COMMON_ERRORS},
    )
    def get(self, request, external_id):
        subscriber = get_known_subscriber(external_id)
        return Response(services.export_subscriber_data(subscriber=subscriber))


class SubscriberConsentsView(StorefrontApiView):
    @extend_schema(
        operation_id="subscribers_consents_list",
        tags=["consent"],
        summary="Read a subscriber's consent and its history",
        responses={200: ConsentsOutSerializer, 404: E404, **COMMON_ERRORS},
    )
    def get(self, request, external_id):
        subscriber = get_known_subscriber(external_id)
        return Response({
            "consents": ConsentOutSerializer(subscriber.consents.order_by("channel"), many=True).data,
            "history": ConsentChangeOutSerializer(subscriber.consent_changes.all(), many=True).data,
        })

    @extend_schema(
        operation_id="subscribers_consents_update",
        tags=["consent"],
        summary="Grant or revoke consent on a channel",
        description=(
            "`granted: false` takes effect at once. SMS and WhatsApp need a phone on the profile and email an "
            "address. Every change is kept in the history with its source and evidence; repeating the current "
            "status changes nothing (`changed: false`)."
        ),
        request=ConsentUpdateSerializer,
        responses={200: ConsentUpdateOutSerializer, 400: E400, 404: E404, **COMMON_ERRORS},
        examples=[OpenApiExample("SMS opt-in at checkout", request_only=True, value={
            "channel": "sms", "granted": True, "source": "api",
            "evidence": {"form": "checkout", "text": "Send me order updates by SMS"}})],
    )
    def post(self, request, external_id):
        subscriber = get_known_subscriber(external_id)
        serializer = ConsentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        change = services.grant_consent if data["granted"] else services.revoke_consent
        try:
            consent, changed = change(subscriber=subscriber, channel=data["channel"], source=data["source"],
                                      evidence=data.get("evidence"), at=data.get("occurred_at"))
        except DjangoValidationError as exc:
            raise field_error(exceptions.ValidationError, "channel", " ".join(exc.messages), exc.code)
        return Response({**ConsentOutSerializer(consent).data, "changed": changed})


# --- Identify ------------------------------------------------------------------

class IdentifyView(StorefrontApiView):
    permission_classes = [IsApiKey]

    @extend_schema(
        operation_id="identify",
        tags=["browser"],
        summary="Tie a browser to a store customer (anonymous -> known)",
        description=(
            "The anonymous profile of `anonymous_id` — its events, carts, push subscriptions and consent — "
            "is merged into the customer `external_id` (created if new). Repeating it changes nothing. "
            "With a publishable key that requires identity verification, `user_hash` must be the hex "
            "HMAC-SHA256 of `external_id` with the key's identity secret, computed on the store's server."
        ),
        request=IdentifySerializer,
        responses={200: IdentifyOutSerializer, 400: E400, 409: E409, **COMMON_ERRORS},
    )
    def post(self, request):
        serializer = IdentifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        external_id, anonymous_id = data["external_id"], data["anonymous_id"]
        check_browser_identity(request, external_id=external_id, anonymous_id=anonymous_id,
                               user_hash=data.get("user_hash"), linking=True)
        traits = dict(data.get("traits") or {})
        check_contact_conflicts(external_id, traits)
        owner = AnonymousId.objects.filter(value=anonymous_id).values_list("subscriber__external_id", flat=True)
        merged = list(owner) == [None]  # the browser has an anonymous profile that is about to be merged
        services.identify_subscriber(anonymous_id=anonymous_id, external_id=external_id, source=self.source(),
                                     **traits)
        return Response({"external_id": external_id, "anonymous_id": anonymous_id, "merged": merged})


# --- Events --------------------------------------------------------------------

class EventView(StorefrontApiView):
    permission_classes = [IsApiKey]

    @extend_schema(
        operation_id="events_track",
        tags=["events"],
        summary="Track one event",
        description=(
            "Stores the event before anything reacts to it; carts and orders follow the standard commerce "
            "events (docs/events.md). A repeated `event_id` is accepted and ignored: 201 when stored, 200 "
            "with status `duplicate` when it was already there. With a publishable key the event may name "
            "`anonymous_id`, or `external_id` with its `user_hash`."
        ),
        request=BrowserEventSerializer,
        responses={201: EventOutSerializer, 200: EventOutSerializer, 400: E400, 413: E413, **COMMON_ERRORS},
        examples=[OpenApiExample("A product view", request_only=True, value={
            "name": "product_viewed", "event_id": "evt-7f3a", "external_id": "cust-1001",
            "occurred_at": "2026-11-23T10:15:00+03:00",
            "properties": {"product_id": "p-42", "title": "سماعات لاسلكية", "price": "249.00", "currency": "SAR"}})],
    )
    def post(self, request):
        serializer = BrowserEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        external_id, anonymous_id = data.get("external_id") or None, data.get("anonymous_id") or None
        check_browser_identity(request, external_id=external_id, anonymous_id=anonymous_id,
                               user_hash=data.get("user_hash"))
        subscriber, _ = services.resolve_subscriber(external_id=external_id, anonymous_id=anonymous_id)
        event, created = services.record_event(
            subscriber=subscriber, name=data["name"], properties=data.get("properties"),
            event_id=data.get("event_id") or None, occurred_at=data.get("occurred_at"), source=self.source(),
        )
        return Response({"status": "created" if created else "duplicate", "event_id": event.event_id},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class EventBatchView(StorefrontApiView):
    @extend_schema(
        operation_id="events_track_batch",
        tags=["events"],
        summary="Track a batch of events",
        description=(
            "Up to API_MAX_BATCH_EVENTS (1,000) events, each shaped as for /events. Answers **200 whenever "
            "the batch was read**, with one result per event in request order: `created`, `duplicate` (its "
            "`event_id` was stored before, or appears earlier in this batch) or `error` with the errors of "
            "that event. Valid events are stored even when others are not; resending the whole batch is "
            "safe when every event carries an `event_id`. A body that is not {\"events\": [...]} is refused "
            "with 400, more events than the limit with 413, both as a whole."
        ),
        request=EventBatchSerializer,
        responses={200: OpenApiResponse(BatchOutSerializer, description="The batch was read; see each result."),
                   400: E400, 413: E413, **COMMON_ERRORS},
    )
    def post(self, request):
        events = request.data.get("events") if isinstance(request.data, dict) else None
        if not isinstance(events, list) or not events:
            raise field_error(exceptions.ValidationError, "events",
                              'Send {"events": [...]} with 1 to '
                              f'{settings.API_MAX_BATCH_EVENTS} events.', "invalid_batch")
        if len(events) > settings.API_MAX_BATCH_EVENTS:
            raise field_error(PayloadTooLarge, "events",
                              f"The batch has {len(events)} events; the limit is {settings.API_MAX_BATCH_EVENTS}. "
                              "Nothing was stored; split it.", "batch_too_large")
        results = [None] * len(events)
        valid_indexes, valid_items = [], []
        # One serializer validates every item: building one per item (DRF deep-copies
        # its fields each time) cost more than storing the whole batch.
        validator = EventSerializer()
        for index, raw in enumerate(events):
            try:
                if not isinstance(raw, dict):
                    raise exceptions.ValidationError(exceptions.ErrorDetail(
                        "Each event must be a JSON object with at least a name.", code="invalid"))
                item = validator.run_validation(raw)
            except exceptions.ValidationError as exc:
                event_id = raw.get("event_id") if isinstance(raw, dict) else None
                results[index] = {"index": index, "status": "error",
                                  "event_id": event_id if isinstance(event_id, str) else None,
                                  "errors": flatten_errors(exc.detail)}
            else:
                valid_indexes.append(index)
                valid_items.append(item)
        stored = services.record_events(items=valid_items, source=self.source()) if valid_items else []
        for index, item, outcome in zip(valid_indexes, valid_items, stored):
            results[index] = {"index": index, "status": outcome["status"], "event_id": item.get("event_id") or None}
        counts = {"created": 0, "duplicate": 0, "error": 0}
        for result in results:
            counts[result["status"]] += 1
        return Response({"created": counts["created"], "duplicates": counts["duplicate"],
                         "errors": counts["error"], "results": results})


# --- Push subscriptions --------------------------------------------------------

class PushSubscriptionView(StorefrontApiView):
    permission_classes = [IsApiKey]

    @extend_schema(
        operation_id="push_subscriptions_register",
        tags=["browser"],
        summary="Register a browser's web push subscription",
        description=(
            "The browser's PushSubscription (endpoint and keys) with the page and category where the shopper "
            "subscribed; records push consent. The endpoint must be https on an allowed push service "
            "(PUSH_ALLOWED_HOSTS); private, loopback and link-local addresses are refused unless listed in "
            "PUSH_ALLOWED_ENDPOINTS. 201 for a new subscription, 200 when a known endpoint was refreshed "
            "(it then belongs to this shopper and is active again)."
        ),
        request=PushSubscribeSerializer,
        responses={201: PushSubscriptionOutSerializer, 200: PushSubscriptionOutSerializer, 400: E400,
                   **COMMON_ERRORS},
    )
    def post(self, request):
        serializer = PushSubscribeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        external_id, anonymous_id = data.get("external_id") or None, data.get("anonymous_id") or None
        check_browser_identity(request, external_id=external_id, anonymous_id=anonymous_id,
                               user_hash=data.get("user_hash"))
        subscriber, _ = services.resolve_subscriber(external_id=external_id, anonymous_id=anonymous_id)
        browser_guesses = {name: data[name] for name in ("timezone", "locale") if data.get(name)}
        if browser_guesses and subscriber.is_anonymous:
            # The browser is all we know of an anonymous shopper; a customer's
            # profile keeps what the store or identify() set.
            subscriber, _ = services.upsert_subscriber(anonymous_id=anonymous_id, source=self.source(),
                                                       **browser_guesses)
        try:
            push, created = services.register_push_subscription(
                subscriber=subscriber, endpoint=data["endpoint"], p256dh=data["keys"]["p256dh"],
                auth=data["keys"]["auth"],
                user_agent=data.get("user_agent") or request.headers.get("User-Agent", ""),
                page_url=data.get("page_url", ""), category=data.get("category", ""), source=self.source(),
            )
        except DjangoValidationError as exc:
            # The SSRF guard runs again inside the service (settings may have changed).
            raise field_error(exceptions.ValidationError, "endpoint", " ".join(exc.messages), exc.code)
        return Response(PushSubscriptionOutSerializer(push).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PushUnsubscribeView(StorefrontApiView):
    permission_classes = [IsApiKey]

    @extend_schema(
        operation_id="push_subscriptions_unsubscribe",
        tags=["browser"],
        summary="Unregister a push subscription by its endpoint",
        description="The shopper turned notifications off in this browser. Push consent is revoked when it "
                    "was the shopper's last active subscription. Repeating it changes nothing.",
        request=PushUnsubscribeSerializer,
        responses={200: PushSubscriptionOutSerializer, 400: E400,
                   404: _error("No push subscription has this endpoint."), **COMMON_ERRORS},
    )
    def post(self, request):
        serializer = PushUnsubscribeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        push = services.unregister_push_subscription(endpoint=serializer.validated_data["endpoint"],
                                                     source=self.source())
        if push is None:
            raise field_error(exceptions.NotFound, "endpoint", "No push subscription has this endpoint.",
                              "not_found")
        return Response(PushSubscriptionOutSerializer(push).data)
