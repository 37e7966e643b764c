"""Tracked links: the links a message has, their signed /c/ addresses, and rewriting text and HTML to use them.

Link n of a message is `SITE_URL/c/<code>/<n>.<signature>`, where n counts the
content's links in a fixed order: the push click URL, the in-app button, the
push actions, then `content["links"]`. When a message is written, the links in
an SMS body, a WhatsApp session text and an email (HTML `<a href>` and the URLs
of the text part) are replaced by their tracking links, and the originals are
appended to `content["links"]`, where the click view finds them.

Rewriting is done on the rendered text, and does no database query: a broadcast
rewrites thousands of messages with the same body, so the places where links
sit are found once per distinct text (a compiled regex, cached) and each message
only fills in its own signed addresses.
"""
import base64
import hashlib
import hmac
import re
from functools import lru_cache
from html import escape, unescape
from html.entities import html5 as HTML5_ENTITIES
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .sms import sms_info

# Channels whose links are tracked unless DELIVERY_TRACK_LINKS says otherwise (push and in-app
# links are tracked by other means: the service worker's reports and the in-app API).
TRACKABLE_CHANNELS = ("sms", "whatsapp", "email")

# A URL in text runs to whitespace or a character that cannot appear in a bare URL.
_TEXT_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
# Punctuation that ends a sentence rather than the URL ("see https://x.example/a.", Arabic commas too).
_TRAILING = ".,;:!?\u060c\u061b\u061f\u06d4\u2026)]}\u00bb\u201d*"
_CLOSING = {")": "(", "]": "[", "}": "{"}
# An <a> start tag; quoted attribute values may hold ">" (tolerant of any other markup around it).
_A_TAG = re.compile(r"<a(?=[\s/>])(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
# One attribute of a start tag: name, then an optional value (double-, single- or un-quoted).
_ATTRIBUTE = re.compile(r"([^\s\"'>/=]+)(\s*=\s*)?(\"[^\"]*\"|'[^']*'|[^\s\"'>]+)?")
# A character reference in an attribute value: numeric, or a name with or without its ";".
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")
_SPLIT_CACHE_SIZE = 256
# Email HTML can be 100 kB: fewer of them, so a worker's memory stays small.
_HTML_CACHE_SIZE = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# A link's signature: 9 bytes of HMAC-SHA256, 12 characters of URL-safe base64 (SMS count every character).
SIGNATURE_BYTES = 9
SIGNATURE_LENGTH = 12


# --- The links of a message and their signed addresses ---------------------------

def tracked_links(content):
    """The URLs a message's content links to, in a fixed order (the <n> of /c/<code>/<n>.<sig>)."""
    links = []
    for key in ("url", "button_url"):
        if content.get(key):
            links.append(content[key])
    for action in content.get("actions") or []:
        if isinstance(action, dict) and action.get("url"):
            links.append(action["url"])
    for url in content.get("links") or []:
        if isinstance(url, str) and url:
            links.append(url)
    return links


def link_signature(code, index, *, key=None):
    """The signature of link `index` of message `code` (`key`: SECRET_KEY encoded, when signing many)."""
    key = settings.SECRET_KEY.encode() if key is None else key
    digest = hmac.digest(key, f"click:{code}:{index}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest[:SIGNATURE_BYTES]).decode()


def click_path(code, index, *, key=None):
    return f"/c/{code}/{index}.{link_signature(code, index, key=key)}"


# --- Which channels are rewritten --------------------------------------------------

def tracked_channels():
    """The channels whose links are rewritten (DELIVERY_TRACK_LINKS: "sms,whatsapp,email", "" for none)."""
    value = getattr(settings, "DELIVERY_TRACK_LINKS", ",".join(TRACKABLE_CHANNELS))
    if isinstance(value, str):
        value = value.split(",")
    channels = frozenset(name.strip().lower() for name in value if name and name.strip())
    unknown = channels.difference(TRACKABLE_CHANNELS)
    if unknown:
        # A typo would silently turn tracking off; say so instead.
        raise ImproperlyConfigured(f"DELIVERY_TRACK_LINKS names {', '.join(sorted(unknown))}; links are tracked "
                                   f"on {', '.join(TRACKABLE_CHANNELS)} (comma-separated, or empty for none).")
    return channels


# --- Finding links -----------------------------------------------------------------

def _trim(url):
    """A URL found in text without the sentence punctuation after it (a ")" it opened stays)."""
    while url and url[-1] in _TRAILING:
        last = url[-1]
        opening = _CLOSING.get(last)
        if opening and url.count(opening) >= url.count(last):
            break
        url = url[:-1]
    return url


def _is_web_url(url):
    """An absolute http(s) URL with a host and nothing a redirect header could not carry."""
    if not url.lower().startswith(("http://", "https://")):
        return False
    if any(ch <= " " or ch == "\x7f" for ch in url):
        return False
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # e.g. a malformed IPv6 host
        return False


@lru_cache(maxsize=_SPLIT_CACHE_SIZE)
def _split_text(text):
    """(literal, (raw, url), literal, …) for the URLs in `text`, or None when it has none."""
    pieces, last = [], 0
    for match in _TEXT_URL.finditer(text):
        url = _trim(match.group())
        if not _is_web_url(url):
            continue
        pieces += [text[last:match.start()], (url, url)]
        last = match.start() + len(url)
    if not pieces:
        return None
    pieces.append(text[last:])
    return tuple(pieces)


def _unescape_attribute(value):
    """An attribute value as a browser reads it.

    Unlike html.unescape, a name without ";" followed by "=" ("?a=1&reg=sa") is
    left as written, as browsers do in attributes; otherwise the stored link
    would not be the one the marketer's HTML pointed to.
    """
    if "&" not in value:
        return value

    def decode(match):
        reference = match.group(1)
        if reference.startswith("#"):
            return unescape(match.group())
        if reference.endswith(";"):
            return HTML5_ENTITIES.get(reference, match.group())
        if reference in HTML5_ENTITIES and not value.startswith("=", match.end()):
            return HTML5_ENTITIES[reference]
        return match.group()

    return _CHARREF.sub(decode, value)


@lru_cache(maxsize=_HTML_CACHE_SIZE)
def _split_html(html):
    """(literal, (raw value, url), literal, …) for the http(s) hrefs of <a> tags, or None when there are none.

    Only the value of the first href attribute of an <a> start tag is a slot, so
    whatever surrounds it (other tags, comments, attributes) is kept byte for byte.
    """
    pieces, last = [], 0
    for tag in _A_TAG.finditer(html):
        body_start = tag.start() + 2  # after "<a"
        for attribute in _ATTRIBUTE.finditer(html, body_start, tag.end() - 1):
            if attribute.group(1).lower() != "href":
                continue
            raw = attribute.group(3)
            if raw:
                value = raw[1:-1] if raw[0] in "\"'" else raw
                url = _unescape_attribute(value).strip()
                if _is_web_url(url):
                    pieces += [html[last:attribute.start(3)], (raw, url)]
                    last = attribute.end(3)
            break  # browsers use the first href
    if not pieces:
        return None
    pieces.append(html[last:])
    return tuple(pieces)


# --- Rewriting a message -----------------------------------------------------------

def _fields(channel, content):
    """(content key, splitter, is HTML) for the parts of `content` whose links are tracked."""
    if channel in ("sms", "whatsapp"):
        return [("body", _split_text, False)]
    if channel == "email":
        return [("html", _split_html, True), ("text", _split_text, False)]
    return []


def track_links(content, *, channel, code, channels=None):
    """`content` with its links replaced by the tracking links of the message `code`.

    The original URLs are appended to content["links"] (a URL already among the
    message's links keeps its number; the same URL twice is one link). Links to
    this site's own click and unsubscribe pages, mailto:, tel: and anything not
    http(s) are left as written. An SMS gets its encoding and segment count again,
    for the text that will be sent. Returns `content` itself when nothing changes.
    """
    if channel not in (tracked_channels() if channels is None else channels) or not content:
        return content
    found = []
    for key, split, html in _fields(channel, content):
        value = content.get(key)
        pieces = split(value) if isinstance(value, str) and value else None
        if pieces is not None:
            found.append((key, pieces, html))
    site = settings.SITE_URL
    own = (f"{site}/c/", f"{site}/u/")
    targets = [url for _key, pieces, _html in found for _raw, url in pieces[1::2] if not url.startswith(own)]
    if not targets:
        return content

    existing = tracked_links(content)
    number = {}
    for index, url in enumerate(existing):
        number.setdefault(url, index)
    added = []
    for url in targets:
        if url not in number:
            number[url] = len(existing) + len(added)
            added.append(url)
    key = settings.SECRET_KEY.encode()
    addresses = {url: site + click_path(code, number[url], key=key) for url in targets}
    rewritten = dict(content)
    for key, pieces, html in found:
        rewritten[key] = _join(pieces, addresses, html)
    if added:
        rewritten["links"] = [*(content.get("links") or []), *added]
    if channel == "sms":
        if _BASE64URL.fullmatch(code):
            # Every character of a code and a signature is one GSM-7 septet and one UCS-2 unit, so the
            # text with them spelt "a" is billed the same: one count for every shopper of a broadcast.
            shape = {url: f"{site}/c/{'a' * len(code)}/{number[url]}.{'a' * SIGNATURE_LENGTH}" for url in addresses}
            info = _cached_sms_info(_join(found[0][1], shape, False))
        else:
            info = sms_info(rewritten["body"])
        rewritten["encoding"], rewritten["segments"] = info.encoding, info.segments
    return rewritten


def _join(pieces, addresses, html):
    """The text of `pieces` with each link at its address (links without one stay as written)."""
    out = list(pieces)
    for position in range(1, len(out), 2):
        raw, url = out[position]
        address = addresses.get(url)
        if address is None:
            out[position] = raw
        else:
            out[position] = f'"{escape(address)}"' if html else address
    return "".join(out)


@lru_cache(maxsize=_SPLIT_CACHE_SIZE)
def _cached_sms_info(text):
    return sms_info(text)
