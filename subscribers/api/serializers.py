"""Input and output shapes of the storefront API.

Input serializers only validate and normalise (phone to E.164, locale tags,
IANA timezones); the writes happen in subscribers.services, called by the views.
"""
import base64
import binascii
import json
from datetime import timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from ..models import EVENT_NAME_PATTERN, Channel, Source
from ..push_endpoints import validate_push_endpoint
from ..validation import normalize_locale, normalize_phone, normalize_timezone

# How far in the future an event's occurred_at may be (clock skew between the
# store's servers or a shopper's browser and ours).
EVENT_FUTURE_SKEW = timedelta(seconds=settings.API_EVENT_FUTURE_SKEW_SECONDS)
# Largest `properties` object of one event, as compact JSON.
EVENT_MAX_PROPERTIES_BYTES = settings.API_EVENT_MAX_PROPERTIES_BYTES
EVIDENCE_MAX_BYTES = 8 * 1024
ATTRIBUTES_MAX_BYTES = 16 * 1024

ID_FIELD = dict(max_length=128, trim_whitespace=True)


def _json_size(value):
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def _raise_as_drf(exc):
    raise serializers.ValidationError([serializers.ErrorDetail(m, code=exc.code or "invalid") for m in exc.messages])


class BoundedJSONObjectField(serializers.JSONField):
    """A JSON object (not a list or a scalar) of at most `max_bytes` as compact JSON."""

    def __init__(self, *, max_bytes, **kwargs):
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if data is None:
            return data
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object, e.g. {\"key\": \"value\"}.", code="not_an_object")
        size = _json_size(data)
        if size > self.max_bytes:
            raise serializers.ValidationError(
                f"Is {size} bytes as JSON; the limit is {self.max_bytes} bytes.", code="too_large")
        return data


class ErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The input at fault (null: the whole request).")
    code = serializers.CharField(help_text="A stable machine-readable reason, e.g. invalid_phone.")
    message = serializers.CharField(help_text="What is wrong and what is valid, for people.")


class ErrorSerializer(serializers.Serializer):
    errors = ErrorItemSerializer(many=True)


# --- Subscribers ---------------------------------------------------------------

class ProfileSerializer(serializers.Serializer):
    """Profile traits. Only the fields sent are changed; null clears a field."""

    email = serializers.EmailField(
        required=False, allow_blank=True, allow_null=True, max_length=254,
        error_messages={"invalid": "Enter a valid email address, such as name@example.com."},
    )
    phone = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=32,
        help_text="E.164 (+966501234567), or a national number together with `country`.",
    )
    country = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=2,
        help_text="ISO 3166-1 alpha-2 (SA, AE, EG, GB, US); also the default region for a national phone number.",
    )
    city = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=120)
    first_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=150)
    locale = serializers.CharField(required=False, max_length=10, help_text="A language tag: ar, en, ar-SA.")
    timezone = serializers.CharField(required=False, max_length=64, help_text="IANA name, e.g. Asia/Riyadh.")
    latitude = serializers.FloatField(required=False, allow_null=True, min_value=-90, max_value=90)
    longitude = serializers.FloatField(required=False, allow_null=True, min_value=-180, max_value=180)
    birthday = serializers.DateField(required=False, allow_null=True)
    gender = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=20)
    attributes = BoundedJSONObjectField(
        required=False, max_bytes=ATTRIBUTES_MAX_BYTES,
        help_text="Custom attributes, merged into the stored ones; a null value removes an attribute.",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100,
        help_text="Replaces the stored tags.",
    )
    subscribed_page_url = serializers.URLField(required=False, allow_blank=True, max_length=2000)
    subscribed_category = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate_country(self, value):
        if not value:
            return ""
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise serializers.ValidationError(
                f"'{value}' is not a country code; use ISO 3166-1 alpha-2 such as SA, AE, EG or GB.",
                code="invalid_country")
        return value

    def validate_locale(self, value):
        try:
            return normalize_locale(value)
        except DjangoValidationError as exc:
            _raise_as_drf(exc)

    def validate_timezone(self, value):
        try:
            return normalize_timezone(value)
        except DjangoValidationError as exc:
            _raise_as_drf(exc)

    def validate(self, attrs):
        if attrs.get("phone"):
            try:
                attrs["phone"] = normalize_phone(attrs["phone"], default_region=attrs.get("country") or None)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(
                    {"phone": [serializers.ErrorDetail(m, code=exc.code) for m in exc.messages]})
        if attrs.get("email"):
            local, _, domain = attrs["email"].rpartition("@")
            attrs["email"] = f"{local}@{domain.lower()}"
        return attrs


class SubscriberUpsertSerializer(ProfileSerializer):
    external_id = serializers.CharField(help_text="The customer's id in the store.", **ID_FIELD)
    anonymous_id = serializers.CharField(
        required=False, help_text="A browser id to tie to this customer (its anonymous profile is merged).",
        **ID_FIELD)


class ConsentOutSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    status = serializers.CharField()
    granted_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField()
    updated_at = serializers.DateTimeField()


class ConsentChangeOutSerializer(serializers.Serializer):
    channel = serializers.CharField()
    status = serializers.CharField()
    source = serializers.CharField()
    evidence = serializers.JSONField()
    occurred_at = serializers.DateTimeField()


class CommerceOutSerializer(serializers.Serializer):
    orders_count = serializers.IntegerField()
    total_spent = serializers.DecimalField(max_digits=14, decimal_places=2)
    average_order_value = serializers.DecimalField(max_digits=14, decimal_places=2)
    first_order_at = serializers.DateTimeField(allow_null=True)
    last_order_at = serializers.DateTimeField(allow_null=True)
    lifecycle_stage = serializers.CharField()


class PushCountsSerializer(serializers.Serializer):
    active = serializers.IntegerField()
    total = serializers.IntegerField()


class SubscriberOutSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    anonymous_ids = serializers.SerializerMethodField()
    email = serializers.CharField()
    phone = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    locale = serializers.CharField()
    timezone = serializers.CharField()
    country = serializers.CharField()
    city = serializers.CharField()
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)
    birthday = serializers.DateField(allow_null=True)
    gender = serializers.CharField()
    attributes = serializers.JSONField()
    tags = serializers.ListField(child=serializers.CharField())
    subscribed_page_url = serializers.CharField()
    subscribed_category = serializers.CharField()
    consents = ConsentOutSerializer(many=True)
    push_subscriptions = serializers.SerializerMethodField()
    commerce = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField(allow_null=True)

    def get_anonymous_ids(self, subscriber) -> list[str]:
        return sorted(link.value for link in subscriber.anonymous_ids.all())

    @staticmethod
    def _push_counts(subscriber):
        return {"active": subscriber.active_push_count, "total": subscriber.push_count}

    def get_push_subscriptions(self, subscriber) -> PushCountsSerializer:
        return PushCountsSerializer(self._push_counts(subscriber)).data

    def get_commerce(self, subscriber) -> CommerceOutSerializer:
        return CommerceOutSerializer(subscriber).data


# --- Identify ------------------------------------------------------------------

class IdentifySerializer(serializers.Serializer):
    anonymous_id = serializers.CharField(help_text="The browser's anonymous id (the SDK keeps it).", **ID_FIELD)
    external_id = serializers.CharField(help_text="The store customer id the shopper logged in as.", **ID_FIELD)
    user_hash = serializers.CharField(
        required=False, max_length=128,
        help_text="HMAC-SHA256 of external_id with the publishable key's identity secret, hex; "
                  "computed on the store's server. Needed with a publishable key that requires verification.",
    )
    traits = ProfileSerializer(required=False, help_text="Profile traits to set on the known profile.")


class IdentifyOutSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    anonymous_id = serializers.CharField()
    merged = serializers.BooleanField(help_text="True when an anonymous profile was merged into the customer now.")


# --- Events --------------------------------------------------------------------

class EventSerializer(serializers.Serializer):
    name = serializers.RegexField(
        EVENT_NAME_PATTERN, max_length=80,
        error_messages={"invalid": "Event names are 1–80 characters: lowercase letters, digits, '_', '.', '-', "
                                   "starting with a letter (e.g. product_viewed, cart_updated)."},
    )
    event_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True,
        help_text="Your unique id for this event; sending it again is accepted and ignored.", **ID_FIELD)
    properties = BoundedJSONObjectField(required=False, allow_null=True, max_bytes=EVENT_MAX_PROPERTIES_BYTES)
    occurred_at = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text=f"ISO 8601 with offset; defaults to now; at most {int(EVENT_FUTURE_SKEW.total_seconds())} "
                  "seconds in the future.")
    external_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, **ID_FIELD)
    anonymous_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, **ID_FIELD)

    def validate_occurred_at(self, value):
        if value and value > timezone.now() + EVENT_FUTURE_SKEW:
            raise serializers.ValidationError(
                f"Is in the future; send the time the event happened (at most "
                f"{int(EVENT_FUTURE_SKEW.total_seconds())} seconds ahead of our clock).", code="in_future")
        return value

    def validate(self, attrs):
        if not attrs.get("external_id") and not attrs.get("anonymous_id"):
            raise serializers.ValidationError(
                {"external_id": [serializers.ErrorDetail(
                    "Name who did it: external_id (store customer id) and/or anonymous_id (browser id).",
                    code="required")]})
        return attrs


class BrowserEventSerializer(EventSerializer):
    user_hash = serializers.CharField(
        required=False, max_length=128,
        help_text="With a publishable key and external_id: HMAC-SHA256 of external_id (see identify).")


class EventOutSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["created", "duplicate"])
    event_id = serializers.CharField(allow_null=True)


# Documents the body only: the view validates each event on its own to report it by index.
class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, help_text="1 to API_MAX_BATCH_EVENTS events.")


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the event in the request.")
    status = serializers.ChoiceField(choices=["created", "duplicate", "error"])
    event_id = serializers.CharField(allow_null=True)
    errors = ErrorItemSerializer(many=True, required=False, help_text="Only for status 'error'.")


class BatchOutSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = serializers.IntegerField()
    results = BatchItemResultSerializer(many=True)


# --- Push subscriptions --------------------------------------------------------

def _decode_base64url(value):
    value = value.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


class PushKeysSerializer(serializers.Serializer):
    p256dh = serializers.CharField(max_length=200, help_text="The browser's P-256 public key, base64url.")
    auth = serializers.CharField(max_length=100, help_text="The 16-byte auth secret, base64url.")

    def validate_p256dh(self, value):
        raw = _decode_base64url(value)
        if raw is None or len(raw) != 65 or raw[0] != 4:
            raise serializers.ValidationError(
                "Must be the subscription's p256dh key: an uncompressed P-256 point (65 bytes), base64url.",
                code="invalid_key")
        return value.strip()

    def validate_auth(self, value):
        raw = _decode_base64url(value)
        if raw is None or len(raw) != 16:
            raise serializers.ValidationError(
                "Must be the subscription's auth secret: 16 bytes, base64url.", code="invalid_key")
        return value.strip()


class EndpointField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=1000, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return validate_push_endpoint(value)
        except DjangoValidationError as exc:
            _raise_as_drf(exc)


class PushSubscribeSerializer(serializers.Serializer):
    endpoint = EndpointField(help_text="PushSubscription.endpoint: https on an allowed push service.")
    keys = PushKeysSerializer()
    user_agent = serializers.CharField(required=False, allow_blank=True, max_length=500,
                                       help_text="Defaults to the request's User-Agent.")
    page_url = serializers.URLField(required=False, allow_blank=True, max_length=2000,
                                    help_text="The page where the shopper subscribed.")
    category = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                     help_text="The store category of that page (electronics, fashion…).")
    external_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, **ID_FIELD)
    anonymous_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, **ID_FIELD)
    user_hash = serializers.CharField(required=False, max_length=128,
                                      help_text="With a publishable key and external_id (see identify).")
    timezone = serializers.CharField(
        required=False, max_length=64,
        help_text="The browser's IANA timezone; fills an anonymous profile (a known one keeps the store's).")
    locale = serializers.CharField(required=False, max_length=10,
                                   help_text="The browser's language; fills an anonymous profile.")

    validate_timezone = ProfileSerializer.validate_timezone
    validate_locale = ProfileSerializer.validate_locale

    def validate(self, attrs):
        if not attrs.get("external_id") and not attrs.get("anonymous_id"):
            raise serializers.ValidationError(
                {"external_id": [serializers.ErrorDetail(
                    "Name whose browser this is: external_id and/or anonymous_id.", code="required")]})
        return attrs


class PushUnsubscribeSerializer(serializers.Serializer):
    endpoint = serializers.CharField(max_length=1000)


class PushSubscriptionOutSerializer(serializers.Serializer):
    endpoint = serializers.CharField()
    status = serializers.CharField()
    browser = serializers.CharField()
    created_at = serializers.DateTimeField()


# --- Consent -------------------------------------------------------------------

class ConsentUpdateSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(
        choices=Channel.choices,
        error_messages={"invalid_choice": f"'{{input}}' is not a channel; use one of {', '.join(Channel.values)}."},
    )
    granted = serializers.BooleanField(help_text="true: opt-in; false: opt-out (takes effect at once).")
    source = serializers.ChoiceField(
        choices=Source.choices, default=Source.API,
        error_messages={"invalid_choice": f"'{{input}}' is not a source; use one of {', '.join(Source.values)}."},
    )
    evidence = BoundedJSONObjectField(
        required=False, max_bytes=EVIDENCE_MAX_BYTES,
        help_text="What proves it: form, checkbox text, IP, keyword message…",
    )
    occurred_at = serializers.DateTimeField(required=False, help_text="When the shopper decided; defaults to now.")

    def validate_occurred_at(self, value):
        if value > timezone.now() + EVENT_FUTURE_SKEW:
            raise serializers.ValidationError("Is in the future.", code="in_future")
        return value


class ConsentUpdateOutSerializer(ConsentOutSerializer):
    changed = serializers.BooleanField(help_text="False when the consent already had this status.")


class ConsentsOutSerializer(serializers.Serializer):
    consents = ConsentOutSerializer(many=True)
    history = ConsentChangeOutSerializer(many=True)
