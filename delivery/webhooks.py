"""What providers and shoppers send back: Twilio status callbacks and inbound messages, email unsubscribes.

Each view checks who is asking (Twilio's signature, our signed link), parses,
and hands over to the outbox or the keyword handling.
"""
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseForbidden, HttpResponseNotFound
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from twilio.twiml.messaging_response import MessagingResponse

from subscribers.models import Channel, Source
from subscribers.validation import normalize_phone

from . import keywords
from .channels.email import is_valid_unsubscribe_signature
from .channels.twilio_common import WHATSAPP_PREFIX, is_valid_signature
from .models import Message


# Twilio's MessageStatus values -> the outbox's provider statuses. The others
# (queued, accepted, scheduled, sending, receiving, received, canceled) say
# nothing the outbox does not know yet.
TWILIO_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",  # WhatsApp: read implies delivered
    "undelivered": "undelivered",
    "failed": "failed",
}


@dataclass(frozen=True)
class StatusUpdate:
    provider_id: str
    status: str
    error_code: str = ""
    error_message: str = ""


def parse_status_callback(params):
    """The outbox update a Twilio status callback means, or None when it means nothing to record."""
    status = TWILIO_STATUSES.get((params.get("MessageStatus") or params.get("SmsStatus") or "").lower())
    provider_id = params.get("MessageSid") or params.get("SmsSid") or ""
    if status is None or not provider_id:
        return None
    error_code = params.get("ErrorCode") or ""
    return StatusUpdate(provider_id=provider_id, status=status,
                        error_code=error_code if status in ("failed", "undelivered") else "",
                        error_message=params.get("ErrorMessage") or "")


@csrf_exempt
@require_POST
def twilio_status(request, code):
    """Twilio's StatusCallback for the message `code`. Always 200 once signed: a non-2xx makes Twilio retry."""
    if not is_valid_signature(request):
        return HttpResponseForbidden("Invalid X-Twilio-Signature")
    update = parse_status_callback(request.POST)
    if update is not None:
        from . import outbox

        outbox.record_provider_status(provider="twilio", provider_id=update.provider_id, status=update.status,
                                      code=code, error_code=update.error_code, error_message=update.error_message)
    return HttpResponse(status=200, content_type="text/plain")


def _twiml(reply):
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return HttpResponse(str(response), content_type="text/xml; charset=utf-8")


@csrf_exempt
@require_POST
def twilio_inbound(request):
    """An SMS or WhatsApp message from a shopper (the number's or the sender's incoming-message webhook)."""
    if not is_valid_signature(request):
        return HttpResponseForbidden("Invalid X-Twilio-Signature")
    sender = request.POST.get("From", "")
    channel = Channel.WHATSAPP if sender.startswith(WHATSAPP_PREFIX) else Channel.SMS
    phone = sender.removeprefix(WHATSAPP_PREFIX)
    try:
        phone = normalize_phone(phone)
    except ValidationError:
        # Short codes and alphanumeric senders are no shopper's number.
        return _twiml("")
    reply = keywords.handle_inbound(channel=channel, phone=phone, body=request.POST.get("Body", ""),
                                    message_sid=request.POST.get("MessageSid", ""))
    return _twiml(reply)


UNSUBSCRIBE_TEXT = {
    "en": {
        "title": "Unsubscribe from our emails",
        "question": "Stop sending emails to %(address)s?",
        "button": "Unsubscribe",
        "done_title": "You are unsubscribed",
        "done": "We will send no more emails to %(address)s.",
    },
    "ar": {
        "title": "إلغاء الاشتراك في رسائلنا البريدية",
        "question": "هل تريد إيقاف الرسائل البريدية إلى %(address)s؟",
        "button": "إلغاء الاشتراك",
        "done_title": "تم إلغاء اشتراكك",
        "done": "لن نرسل بعد الآن رسائل بريدية إلى %(address)s.",
    },
}


def _masked(address):
    """l***@example.com: enough for the shopper to recognise, little for whoever the link was forwarded to."""
    local, _at, domain = (address or "").partition("@")
    return f"{local[:1]}***@{domain}" if domain else ""


@csrf_exempt  # the signed link is the credential; mail providers POST without a token (RFC 8058)
@require_http_methods(["GET", "POST"])
def email_unsubscribe(request, code, signature):
    """The List-Unsubscribe link: GET asks to confirm (link scanners must not unsubscribe), POST unsubscribes."""
    if not is_valid_unsubscribe_signature(code, signature):
        return HttpResponseNotFound("This unsubscribe link is not valid.")
    message = Message.objects.select_related("subscriber").filter(code=code).first()
    if message is None:
        return HttpResponseNotFound("This unsubscribe link is not valid.")
    if request.method == "POST":
        from . import outbox

        outbox.record_unsubscribe(code=code, channel=Channel.EMAIL, source=Source.WEBHOOK)
    lang = "ar" if (message.subscriber.locale or "").lower().startswith("ar") else "en"
    text = UNSUBSCRIBE_TEXT[lang]
    address = _masked(message.to or message.subscriber.email)
    response = render(request, "delivery/unsubscribe.html", {
        "lang": lang, "dir": "rtl" if lang == "ar" else "ltr", "text": text,
        "done": request.method == "POST",
        "question": text["question"] % {"address": address},
        "done_message": text["done"] % {"address": address},
    })
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response
