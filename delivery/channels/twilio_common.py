"""What SMS and WhatsApp share: the Twilio client, its error mapping and the callback URLs.

Twilio's Messages API has no idempotency key: a create that timed out after the
request left may have sent the message, and sending again may text the shopper
twice. Such a send is reported as unknown (DeliveryError(unknown=True)), never
retried blindly; only failures that certainly sent nothing (connection refused,
connect timeout, 429, 5xx) are transient.
"""
import abc
import json
import threading

import requests
from urllib3.exceptions import NewConnectionError
from django.conf import settings
from django.urls import reverse
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.rest import Client

from .base import ChannelBackend, DeliveryError, SendResult


# Twilio error codes that no retry can fix (https://www.twilio.com/docs/api/errors).
OPTED_OUT = "21610"  # the shopper texted STOP to this sender: the outbox revokes consent
INVALID_NUMBERS = {"21211", "21614", "21217", "21612"}  # not a valid / not a mobile / unreachable number
OUTSIDE_WHATSAPP_WINDOW = "63016"  # free text outside the 24-hour session without an approved template
PERMANENT_CODES = {OPTED_OUT, OUTSIDE_WHATSAPP_WINDOW} | INVALID_NUMBERS

WHATSAPP_PREFIX = "whatsapp:"


class RecordingHttpClient(TwilioHttpClient):
    """Twilio's HTTP client, keeping the last response per thread.

    The twilio library's exceptions carry the status and error code but not the
    headers, and Retry-After is a header. Backends are shared by a worker's
    threads, hence per-thread.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._local = threading.local()

    def request(self, *args, **kwargs):
        self._local.response = None
        response = super().request(*args, **kwargs)
        self._local.response = response
        return response

    @property
    def last_headers(self):
        response = getattr(self._local, "response", None)
        return dict(response.headers or {}) if response is not None else {}


def build_client():
    """A twilio Client for the configured account, pointed at TWILIO_API_BASE_URL."""
    http_client = RecordingHttpClient(timeout=settings.TWILIO_TIMEOUT_SECONDS)
    client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)
    # Every Messages API call goes through the api domain; tests and self-hosters
    # with a proxy point it elsewhere.
    client.api.base_url = settings.TWILIO_API_BASE_URL
    return client


def status_callback_url(message):
    """Where Twilio reports what became of `message` (SITE_URL: the address Twilio can reach)."""
    return settings.SITE_URL + reverse("delivery-webhooks:twilio-status", args=[message.code])


def inbound_url():
    return settings.SITE_URL + reverse("delivery-webhooks:twilio-inbound")


def is_valid_signature(request):
    """Whether a webhook request was signed by Twilio with our Auth Token.

    Twilio signs the URL it requested: behind a proxy that is the public
    SITE_URL address, not what Django sees as its host.
    """
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not settings.TWILIO_AUTH_TOKEN:
        return False
    url = settings.SITE_URL + request.get_full_path()
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings", ""))
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST, signature, algorithm)


def _retry_after(headers):
    value = {key.lower(): val for key, val in headers.items()}.get("retry-after")
    try:
        return max(0, int(float(value))) if value is not None else None
    except ValueError:
        return None


def delivery_error_from(error, headers=None):
    """Map what the twilio library raised to a DeliveryError (permanent, transient or unknown)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return DeliveryError(f"Twilio did not accept the connection: {error}")
    if isinstance(error, requests.exceptions.Timeout):
        return DeliveryError("Twilio did not answer in time; the message may have been sent", unknown=True,
                             code="timeout")
    if isinstance(error, requests.exceptions.ConnectionError):
        # Refused or unresolvable: nothing left. A connection dropped mid-request may have sent it.
        reason = error.args[0] if error.args else None
        reason = getattr(reason, "reason", reason)
        if isinstance(reason, NewConnectionError):  # refused, unresolvable (NameResolutionError)
            return DeliveryError(f"Twilio is unreachable: {error}")
        return DeliveryError(f"The connection to Twilio broke during the request: {error}", unknown=True,
                             code="connection")
    status = getattr(error, "status", None) or 0
    code = str(getattr(error, "code", "") or "")
    text = str(getattr(error, "msg", "") or getattr(error, "title", "") or error)
    detail = f"Twilio {status} {code}: {text}".strip()
    if code in PERMANENT_CODES:
        return DeliveryError(detail, permanent=True, code=code)
    if status == 429 or status >= 500:
        return DeliveryError(detail, retry_after=_retry_after(headers or {}), code=code or str(status))
    if 400 <= status < 500:
        # Bad parameters, a sender we may not use, bad credentials: sending it again can't help.
        return DeliveryError(detail, permanent=True, code=code or str(status))
    return DeliveryError(detail, code=code)


class TwilioBackend(ChannelBackend):
    """Shared sending for TwilioSmsBackend and TwilioWhatsAppBackend: subclasses build the fields."""

    provider = "twilio"

    def __init__(self):
        self._client = None
        self._client_lock = threading.Lock()

    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                self._client = build_client()
            return self._client

    def is_configured(self):
        return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and self.has_sender())

    def has_sender(self):
        return bool(settings.TWILIO_MESSAGING_SERVICE_SID or settings.TWILIO_FROM_NUMBER)

    def recipient(self, message):
        return message.to or message.subscriber.phone

    @abc.abstractmethod
    def message_fields(self, message):
        """The create() keyword arguments for this message, without StatusCallback."""

    def send(self, message):
        if not self.is_configured():
            raise DeliveryError(f"{self.channel} is not configured: set the Twilio credentials and a sender",
                                permanent=True, code="not_configured")
        fields = self.message_fields(message)
        fields["status_callback"] = status_callback_url(message)
        client = self.client
        try:
            created = client.messages.create(**fields)
        except (TwilioException, requests.exceptions.RequestException) as error:
            raise delivery_error_from(error, client.http_client.last_headers) from error
        return SendResult(provider_id=created.sid, status="sent",
                          detail={"twilio_status": created.status, "segments": created.num_segments})


def content_variables_json(variables):
    """Twilio wants ContentVariables as a JSON string with string values."""
    return json.dumps({str(key): "" if value is None else str(value) for key, value in (variables or {}).items()},
                      ensure_ascii=False)
