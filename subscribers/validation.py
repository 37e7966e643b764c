"""Normalising and validating what stores send us about shoppers."""
import functools
import re
import zoneinfo

import phonenumbers
from django.conf.locale import LANG_INFO
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

LOCALE_RE = re.compile(r"^([a-zA-Z]{2,3})(?:[-_]([a-zA-Z]{2}|\d{3}))?$")

# ISO 639-1, plus the three-letter languages Django ships translations for.
ISO_639_1 = frozenset(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz "
    "ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io "
    "is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr "
    "ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si "
    "sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh "
    "yi yo za zh zu".split()
)
KNOWN_LANGUAGES = ISO_639_1 | {code.split("-")[0] for code in LANG_INFO} | {"fil"}


@functools.lru_cache(maxsize=1)
def timezone_names():
    """The IANA names, listed once: listing the tz database costs ~6 ms each time."""
    return frozenset(zoneinfo.available_timezones())


def normalize_phone(raw, default_region=None):
    """Return the number in E.164 (+9665…) or raise ValidationError saying what is valid."""
    raw = (raw or "").strip()
    if not raw:
        return ""
    try:
        number = phonenumbers.parse(raw, (default_region or "").upper() or None)
    except phonenumbers.NumberParseException:
        raise ValidationError(
            _("'%(value)s' is not a phone number; send it in E.164 form, e.g. +966501234567."),
            code="invalid_phone", params={"value": raw},
        )
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(
            _("'%(value)s' is not a valid phone number for its country; send it in E.164 form, e.g. +966501234567."),
            code="invalid_phone", params={"value": raw},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_locale(raw):
    """'ar_SA' -> 'ar-SA'; raise ValidationError for anything that is not a language tag."""
    raw = (raw or "").strip()
    match = LOCALE_RE.match(raw)
    if not match:
        raise ValidationError(
            _("'%(value)s' is not a locale; use a language code such as 'ar', 'en' or 'ar-SA'."),
            code="invalid_locale", params={"value": raw},
        )
    language, region = match.groups()
    if language.lower() not in KNOWN_LANGUAGES:
        raise ValidationError(
            _("'%(value)s' is not a known language; use an ISO 639 language code such as 'ar', 'en' or 'ar-SA'."),
            code="unknown_locale", params={"value": raw},
        )
    return f"{language.lower()}-{region.upper()}" if region else language.lower()


def normalize_timezone(raw):
    raw = (raw or "").strip()
    if raw in timezone_names():
        return raw
    raise ValidationError(
        _("'%(value)s' is not an IANA timezone name (for example Asia/Riyadh, Africa/Cairo or Europe/London)."),
        code="invalid_timezone", params={"value": raw},
    )
