"""SMS and WhatsApp keywords: STOP and its Arabic equivalents, START, HELP.

A shopper who texts STOP is opted out at once, on the channel they wrote on
(STOPALL: SMS and WhatsApp both), and told so in their language. Carriers and
Twilio match a keyword only when it is the whole message; so do we, ignoring
case, surrounding punctuation and the spelling variants of Arabic (hamza on the
alef or not, a final ة written ه, diacritics, tatweel).
"""
import re
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from subscribers import services
from subscribers.models import Channel, Source, Subscriber

STOP, STOP_ALL, START, HELP = "stop", "stop_all", "start", "help"

KEYWORDS = {
    STOP: {"en": ["STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"],
           "ar": ["إلغاء", "الغاء", "توقف", "ايقاف", "إيقاف"]},
    STOP_ALL: {"en": ["STOPALL"], "ar": []},
    START: {"en": ["START", "UNSTOP", "YES"], "ar": ["ابدأ", "اشتراك"]},
    HELP: {"en": ["HELP", "INFO"], "ar": ["مساعدة"]},
}

REPLIES = {
    STOP: {
        "en": "You are unsubscribed and will receive no more messages from us here. Reply START to subscribe again.",
        "ar": "تم إلغاء اشتراكك ولن تصلك منا رسائل أخرى هنا. أرسل «ابدأ» أو START للاشتراك من جديد.",
    },
    START: {
        "en": "You are subscribed again. Reply STOP to unsubscribe, HELP for help.",
        "ar": "تمت إعادة اشتراكك. أرسل «إيقاف» أو STOP لإلغاء الاشتراك، و«مساعدة» أو HELP للمساعدة.",
    },
    HELP: {
        "en": "Messages about your orders and offers. Reply STOP to unsubscribe, START to subscribe again.",
        "ar": "رسائل عن طلباتك وعروضنا. أرسل «إيقاف» أو STOP لإلغاء الاشتراك، و«ابدأ» أو START للاشتراك من جديد.",
    },
    "unknown_sender": {
        "en": "We could not find your number among our subscribers. Reply HELP for help.",
        "ar": "لم نجد رقمك بين مشتركينا. أرسل «مساعدة» أو HELP للمساعدة.",
    },
}

_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")  # harakat and tatweel
_EDGE_PUNCTUATION = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)


def normalize(text):
    """Fold case and the Arabic spelling variants so that a keyword compares equal to its variants."""
    text = _EDGE_PUNCTUATION.sub("", (text or "").strip())
    text = _DIACRITICS.sub("", text)
    text = re.sub("[إأآٱ]", "ا", text).replace("ة", "ه").replace("ى", "ي")
    return text.casefold()


_LOOKUP = {
    normalize(word): (action, language)
    for action, words in KEYWORDS.items()
    for language, spelled in words.items()
    for word in spelled
}


@dataclass(frozen=True)
class Keyword:
    action: str  # stop | stop_all | start | help
    language: str  # the language the keyword was written in


def classify(body):
    """The keyword that the whole message `body` is, or None."""
    match = _LOOKUP.get(normalize(body))
    return Keyword(*match) if match else None


def reply_language(keyword, subscribers):
    """Arabic for an Arabic keyword; otherwise the shopper's own language (English when unknown)."""
    if keyword is not None and keyword.language == "ar":
        return "ar"
    for subscriber in subscribers:
        return "ar" if (subscriber.locale or "").lower().startswith("ar") else "en"
    return keyword.language if keyword else "en"


def subscribers_with_phone(phone):
    return list(Subscriber.objects.filter(phone=phone).order_by("-last_seen_at", "-pk"))


def handle_inbound(*, channel, phone, body, message_sid="", at=None):
    """An SMS or WhatsApp message from a shopper: store it, act on a keyword, return the reply text.

    Every subscriber with this phone number (E.164) gets the event and the
    consent change: a number that texted STOP must get nothing from any
    profile that holds it. Returns "" when nothing should be answered.
    """
    at = at or timezone.now()
    subscribers = subscribers_with_phone(phone)
    keyword = classify(body)
    evidence = {"body": body, "from": phone, "message_sid": message_sid, "channel": channel}
    event_name = f"{channel}_received"
    with transaction.atomic():
        for subscriber in subscribers:
            services.record_event(
                subscriber=subscriber, name=event_name, source=Source.WEBHOOK, occurred_at=at,
                event_id=f"twilio:{message_sid}:{subscriber.pk}" if message_sid else None,
                properties={"body": body, "message_sid": message_sid,
                            **({"keyword": keyword.action} if keyword else {})},
            )
            if keyword is None:
                continue
            if keyword.action in (STOP, STOP_ALL):
                channels = (Channel.SMS, Channel.WHATSAPP) if keyword.action == STOP_ALL else (channel,)
                for revoked in channels:
                    services.revoke_consent(subscriber=subscriber, channel=revoked, source=Source.KEYWORD,
                                            evidence=evidence, at=at)
            elif keyword.action == START:
                services.grant_consent(subscriber=subscriber, channel=channel, source=Source.KEYWORD,
                                       evidence=evidence, at=at)
    if keyword is None:
        return ""
    language = reply_language(keyword, subscribers)
    if not subscribers and keyword.action == START:
        return REPLIES["unknown_sender"][language]
    action = STOP if keyword.action == STOP_ALL else keyword.action
    return REPLIES[action][language]
