"""SMS through Twilio's Messages API (a Messaging Service or a From number)."""
from django.conf import settings

from .twilio_common import TwilioBackend


class TwilioSmsBackend(TwilioBackend):
    channel = "sms"

    def message_fields(self, message):
        fields = {"to": self.recipient(message), "body": message.content.get("body", "")}
        # A Messaging Service picks the sender from its pool and applies its
        # opt-out handling; a bare From number is the simple setup.
        if settings.TWILIO_MESSAGING_SERVICE_SID:
            fields["messaging_service_sid"] = settings.TWILIO_MESSAGING_SERVICE_SID
        else:
            fields["from_"] = settings.TWILIO_FROM_NUMBER
        return fields
