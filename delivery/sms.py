"""SMS length: which encoding a text needs and how many segments it is billed as.

GSM 03.38 packs 7-bit characters: 160 in a single message, 153 per part once a
text is split (the user-data header takes the rest). Characters of the
extension table ({ } [ ] ~ \\ | ^ € and form feed) are sent as an escape plus
the character, so they count twice, and a splitter never cuts such a pair in
two. Any character outside both tables (Arabic, emoji, most accents) makes the
whole message UCS-2: 70 UTF-16 code units in one message, 67 per part; an
emoji outside the Basic Multilingual Plane is a surrogate pair (two units) and
is never cut in two either.
"""
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class SmsInfo:
    """`characters` counts what the network counts: septets for GSM-7, UTF-16 units for UCS-2."""

    encoding: str
    characters: int
    segments: int

    @property
    def per_segment(self):
        single, part = (GSM7_SINGLE, GSM7_PART) if self.encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
        return single if self.segments <= 1 else part


def is_gsm7(text):
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def sms_info(text):
    """The encoding, length and segment count of an SMS body, as a carrier bills it."""
    text = text or ""
    if is_gsm7(text):
        units = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SmsInfo("GSM-7", sum(units), _segments(units, GSM7_SINGLE, GSM7_PART))
    units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsInfo("UCS-2", sum(units), _segments(units, UCS2_SINGLE, UCS2_PART))


def _segments(units, single, part):
    total = sum(units)
    if total == 0:
        return 0
    if total <= single:
        return 1
    # Fill parts greedily; a character whose units would straddle two parts moves whole to the next.
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments += 1
            used = 0
        used += size
    return segments
