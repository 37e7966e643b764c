"""Normalising and validating what stores send us about shoppers."""
import re
import zoneinfo

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

LOCALE_RE = re.compile(r"^([a-zA-Z]{2,3})(?:[-_]([a-zA-Z]{2}|\d{3}))?$")


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
    return f"{language.lower()}-{region.upper()}" if region else language.lower()


def normalize_timezone(raw):
    raw = (raw or "").strip()
    if raw in zoneinfo.available_timezones():
        return raw
    raise ValidationError(
        _("'%(value)s' is not an IANA timezone name (for example Asia/Riyadh, Africa/Cairo or Europe/London)."),
        code="invalid_timezone", params={"value": raw},
    )
