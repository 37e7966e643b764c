"""WhatsApp through Twilio: free text inside the 24-hour session, an approved template outside it.

WhatsApp lets a business send free text only within 24 hours of the shopper's
last message to it (the session window); otherwise only a template approved by
Meta, which Twilio knows by its Content SID. We learn of the shopper's messages
from the inbound webhook, stored as "whatsapp_received" events.
"""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from subscribers.models import Event

from .base import DeliveryError
from .twilio_common import OUTSIDE_WHATSAPP_WINDOW, WHATSAPP_PREFIX, TwilioBackend, content_variables_json

SESSION_WINDOW = timedelta(hours=24)
INBOUND_EVENT = "whatsapp_received"


def whatsapp_address(number):
    number = (number or "").strip()
    return number if number.startswith(WHATSAPP_PREFIX) else f"{WHATSAPP_PREFIX}{number}"


def in_session_window(subscriber, *, now=None):
    """Whether the shopper wrote to us on WhatsApp in the last 24 hours."""
    now = now or timezone.now()
    return Event.objects.filter(subscriber=subscriber, name=INBOUND_EVENT,
                                occurred_at__gt=now - SESSION_WINDOW).exists()


class TwilioWhatsAppBackend(TwilioBackend):
    channel = "whatsapp"

    def has_sender(self):
        return bool(settings.TWILIO_WHATSAPP_FROM or settings.TWILIO_MESSAGING_SERVICE_SID)

    def message_fields(self, message):
        content = message.content or {}
        fields = {"to": whatsapp_address(self.recipient(message))}
        # An explicit WhatsApp sender wins over the Messaging Service, whose pool
        # may hold SMS numbers only.
        if settings.TWILIO_WHATSAPP_FROM:
            fields["from_"] = whatsapp_address(settings.TWILIO_WHATSAPP_FROM)
        else:
            fields["messaging_service_sid"] = settings.TWILIO_MESSAGING_SERVICE_SID
        body = content.get("body", "")
        content_sid = content.get("content_sid", "")
        if body and in_session_window(message.subscriber):
            fields["body"] = body
        elif content_sid:
            fields["content_sid"] = content_sid
            fields["content_variables"] = content_variables_json(content.get("content_variables"))
        else:
            # Twilio would accept it and fail it later with 63016; we know already.
            raise DeliveryError("The shopper has not written in the last 24 hours and the template has no "
                                "approved WhatsApp template (Content SID) for messages outside that window",
                                permanent=True, code=OUTSIDE_WHATSAPP_WINDOW)
        return fields
