"""Rendering message templates: Liquid content per channel and locale into what channels send.

Marketers write Liquid (python-liquid 2). A template sees one plain dict built by
`build_context` — strings, numbers, lists and dicts, nothing with methods or
database access — so it cannot reach anything but the shopper's own data.

A variable that is missing (or empty) renders through its `default` filter when it
has one; without one the render raises RenderError and the message is refused:
a shopper never receives "{{ first_name }}" or "Hello ," with a hole in it.
"""
import json
import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import urlsplit

from django.conf import settings
from liquid import Environment, FalsyStrictUndefined
from liquid.exceptions import LiquidError, UndefinedError

from .links import track_links
from .sms import SmsInfo, sms_info  # noqa: F401 - part of this module's contract

__all__ = [
    "RenderError", "SmsInfo", "build_context", "cart_context", "order_context", "render_message",
    "render_sample", "render_content", "choose_content", "sms_info", "check_push_size", "push_payload_size",
    "html_to_text",
    "validate_liquid", "validate_content", "sample_shopper", "KNOWN_VARIABLES", "PUSH_PAYLOAD_LIMIT",
]

# RFC 8188/8291 aes128gcm: an 86-byte header (16 salt + 4 record size + 1 key id length
# + 65 sender key), one padding delimiter byte and a 16-byte tag around the plaintext.
# Push services refuse bodies over 4096 bytes.
PUSH_PAYLOAD_LIMIT = 4096
AES128GCM_OVERHEAD = 86 + 1 + 16
# The sender adds the message code to the payload; keep room for the longest one.
PUSH_CODE_ROOM = len(',"code":""') + 32
MAX_PUSH_ACTIONS = 2
_PUSH_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")

# Top-level names a template may use; the reference for marketers is docs/templates.md.
KNOWN_VARIABLES = frozenset({
    "first_name", "last_name", "full_name", "email", "phone", "locale", "language", "city", "country",
    "attributes", "tags", "orders_count", "total_spent", "lifecycle_stage",
    "cart", "order", "discount_code", "product", "event", "shop_url",
})


class RenderError(Exception):
    """A template cannot be rendered or validated: the message is refused.

    `field` names the template field (title, body, subject …) and `line` the line
    within it, when known.
    """

    def __init__(self, message, *, field="", line=None, code="invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line
        self.code = code  # "missing_variable" when only this shopper's data is lacking

    def __str__(self):
        where = ""
        if self.field and self.line:
            where = f"{self.field}, line {self.line}: "
        elif self.field:
            where = f"{self.field}: "
        elif self.line:
            where = f"line {self.line}: "
        return f"{where}{self.message}"


class _MissingVariable(FalsyStrictUndefined):
    """Falsy in `{% if %}`, replaced by `default`, and an error anywhere it would be output."""

    force_liquid_default = True


class _Environment(Environment):
    # Marketer text is small; these stop a runaway loop or a huge output from a bad template.
    loop_iteration_limit = 1000
    output_stream_limit = 100_000
    context_depth_limit = 10
    local_namespace_limit = 20_000


_TEXT = _Environment(undefined=_MissingVariable)
# Email HTML escapes what it outputs, so a first name like "<b>" cannot inject markup.
_HTML = _Environment(undefined=_MissingVariable, autoescape=True)


@lru_cache(maxsize=1024)
def _parse(source, html=False):
    return (_HTML if html else _TEXT).from_string(source)


# --- Context -----------------------------------------------------------------------

def _plain(value):
    """Only data a template may see: str, numbers, bools, None, lists and dicts of them."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _present(value):
    return value not in (None, "", [], {})


def cart_context(cart):
    """A Cart as templates see it: items (title, image, price, quantity, url), value, currency, restore_url."""
    items = [{
        "title": item.get("title", ""), "image": item.get("image", ""), "price": item.get("price", ""),
        "quantity": item.get("quantity", 1), "url": item.get("url", ""), "product_id": item.get("product_id", ""),
    } for item in cart.items or []]
    return {
        "id": cart.external_id or str(cart.pk), "items": items, "item_count": cart.item_count,
        "value": str(cart.value), "currency": cart.currency, "restore_url": cart.restore_url,
    }


def order_context(order):
    """An Order as templates see it."""
    return {
        "id": order.external_id, "items": list(order.items or []), "value": str(order.value),
        "currency": order.currency, "status": order.status, "placed_at": order.placed_at,
        "shipped_at": order.shipped_at, "delivered_at": order.delivered_at,
    }


def build_context(subscriber, extra=None):
    """The plain dict a template renders with: the subscriber's fields plus `extra`.

    Empty fields are left out, so `{{ first_name }}` for a shopper without a first
    name is missing (refused, or replaced by its `default`) rather than blank.
    `extra` may hold cart, order (model instances or dicts), discount_code, product
    and other plain data; it wins over subscriber fields of the same name.
    """
    fields = {
        "first_name": subscriber.first_name, "last_name": subscriber.last_name,
        "full_name": subscriber.full_name, "email": subscriber.email, "phone": subscriber.phone,
        "locale": subscriber.locale, "language": _language(subscriber.locale), "city": subscriber.city,
        "country": subscriber.country, "attributes": {k: v for k, v in (subscriber.attributes or {}).items()
                                                      if _present(v)},
        "tags": list(subscriber.tags or []), "orders_count": subscriber.orders_count,
        "total_spent": subscriber.total_spent, "lifecycle_stage": subscriber.lifecycle_stage,
        "shop_url": settings.STORE_URL,
    }
    extra = dict(extra or {})
    if extra.get("cart") is not None and not isinstance(extra["cart"], dict):
        extra["cart"] = cart_context(extra["cart"])
    if extra.get("order") is not None and not isinstance(extra["order"], dict):
        extra["order"] = order_context(extra["order"])
    fields.update(extra)
    return _plain({key: value for key, value in fields.items() if _present(value)})


def sample_shopper(locale="ar"):
    """A made-up shopper with a cart, an order and a discount code, for previews."""
    arabic = _language(locale) == "ar"
    return {
        "first_name": "نورة" if arabic else "Nora", "last_name": "العتيبي" if arabic else "Alotaibi",
        "full_name": "نورة العتيبي" if arabic else "Nora Alotaibi", "email": "nora@example.com",
        "phone": "+966500000001", "locale": "ar-SA" if arabic else "en-SA", "language": "ar" if arabic else "en",
        "city": "الرياض" if arabic else "Riyadh", "country": "SA",
        "attributes": {"size": "M", "favourite_category": "عبايات" if arabic else "Abayas"},
        "tags": ["vip"], "orders_count": 3, "total_spent": "1250.00", "lifecycle_stage": "loyal",
        "cart": {
            "id": "cart-1001",
            "items": [
                {"title": "عباية كتان" if arabic else "Linen abaya", "image": "https://shop.example.com/img/abaya.jpg",
                 "price": "349.00", "quantity": 1, "url": "https://shop.example.com/p/linen-abaya",
                 "product_id": "abaya-1"},
                {"title": "طرحة حرير" if arabic else "Silk scarf", "image": "https://shop.example.com/img/scarf.jpg",
                 "price": "120.00", "quantity": 2, "url": "https://shop.example.com/p/silk-scarf",
                 "product_id": "scarf-2"},
            ],
            "item_count": 3, "value": "589.00", "currency": "SAR",
            "restore_url": "https://tanbih.example.com/r/cart/2n9c.x7Hq2LmPa0Bc",
        },
        "order": {
            "id": "SO-5512", "items": [], "value": "589.00", "currency": "SAR", "status": "shipped",
            "placed_at": "2026-11-20T10:15:00+00:00", "shipped_at": "2026-11-21T08:00:00+00:00",
            "delivered_at": None, "tracking_url": "https://shop.example.com/orders/SO-5512",
        },
        "product": {"title": "عباية كتان" if arabic else "Linen abaya", "price": "349.00", "currency": "SAR",
                    "url": "https://shop.example.com/p/linen-abaya", "image": "https://shop.example.com/img/abaya.jpg"},
        "discount_code": "WELCOME10", "shop_url": "https://shop.example.com",
    }


# --- Choosing the content ----------------------------------------------------------

def _language(locale):
    return (locale or "").replace("_", "-").split("-")[0].lower()


def _contents(template):
    """The template's contents, loaded once per template instance (fan-out renders many times)."""
    cached = getattr(template, "_prefetched_objects_cache", {}).get("contents")
    if cached is not None:
        return list(cached)
    if not hasattr(template, "_rendering_contents"):
        template._rendering_contents = list(template.contents.order_by("pk"))
    return template._rendering_contents


def choose_content(template, channel, locale):
    """The TemplateContent for `channel` in the locale's language, else the template's
    default locale, else any locale the template has; RenderError when the channel has none."""
    options = [c for c in _contents(template) if c.channel == channel]
    if not options:
        raise RenderError(f"the template “{template}” has no {channel} content")
    for wanted in ((locale or "").replace("_", "-"), template.default_locale or ""):
        if not wanted:
            continue
        for same in (lambda c: c.locale.lower() == wanted.lower(),
                     lambda c: _language(c.locale) == _language(wanted)):
            for content in options:
                if same(content):
                    return content
    return options[0]


# --- Rendering ---------------------------------------------------------------------

def _render(source, context, field, html=False):
    if not source:
        return ""
    if "{" not in source:
        return source.strip()  # no Liquid markup: nothing to render
    # One field's render by the values it reads: a journey step's messages differ by cart, but their title reads
    # only the first name, so most titles are rendered once per batch (bench/journeys).
    roots = _roots((source,))
    key = None if roots is None else (source, html, _values_key(roots, context))
    rendered = _FIELDS_RENDERED.get(key) if key else None
    if rendered is not None:
        return rendered
    try:
        rendered = _parse(source, html).render(**context).strip()
    except UndefinedError as error:
        name = getattr(error, "message", str(error))
        raise RenderError(f"{name} and has no default: add one, e.g. {{{{ x | default: \"…\" }}}}",
                          field=field, line=_line_of(error), code="missing_variable") from None
    except LiquidError as error:
        raise RenderError(str(error.message), field=field, line=_line_of(error)) from None
    if key:
        _remember(_FIELDS_RENDERED, key, rendered)
    return rendered


def _line_of(error):
    try:
        context = error.context()
    except ValueError:
        return None
    return context[0] if context else None


def _check_url(url, field, *, required=False):
    if not url:
        if required:
            raise RenderError("a URL is required", field=field)
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(ch in url for ch in "\r\n\t "):
        raise RenderError(f"“{url[:80]}” is not an http(s) URL", field=field)
    return url


# Rendered content by (the content's sources, the context values they read). A broadcast renders
# one template for many shoppers; those who share the values it uses (none, or the same first
# name) share one render. Cleared when full rather than tracked per entry: it refills quickly. The same for
# one field's source by the values it reads (_FIELDS_RENDERED), for contents that differ by shopper.
_RENDERED = {}
_FIELDS_RENDERED = {}
_RENDERED_MAX = 4096
_SOURCE_FIELDS = ("title", "body", "icon", "image", "badge", "click_url", "tag", "ttl_seconds", "urgency", "topic",
                  "whatsapp_content_sid", "subject", "html_body", "text_body", "button_label", "button_url",
                  "placement")


@lru_cache(maxsize=1024)
def _roots(sources):
    """Top-level variables the sources read; None when they cannot be analysed or read the clock."""
    names = set()
    for source in sources:
        if not isinstance(source, str) or "{" not in source:
            continue
        if "now" in source or "today" in source:
            return None
        try:
            names.update(_parse(source).analyze().globals)
        except LiquidError:
            return None
    return frozenset(names)


def _sources(content):
    nested = []
    for action in content.actions if isinstance(content.actions, list) else []:
        items = action.items() if isinstance(action, dict) else [("", action)]
        nested.extend(f"{key}\x00{value}" for key, value in items)
        nested.append("\x01")  # where one action ends
    if isinstance(content.whatsapp_variables, dict):
        nested.extend(f"{key}\x00{value}" for key, value in content.whatsapp_variables.items())
    return (content.channel, *(getattr(content, field) for field in _SOURCE_FIELDS), len(nested), *nested)


def render_content(content, context):
    """Render one TemplateContent with a plain context into the channel's content dict."""
    sources = _sources(content)
    roots = _roots(sources)
    if roots is None:
        return _render_content(content, context)
    key = (sources, _values_key(roots, context))
    rendered = _RENDERED.get(key)
    if rendered is None:
        rendered = _remember(_RENDERED, key, _render_content(content, context))
    return json.loads(json.dumps(rendered))  # a copy the caller may change


def _values_key(roots, context):
    """The context's values of the variables a source reads, as a cache key."""
    return json.dumps({name: context[name] for name in roots if name in context}, sort_keys=True)


def _remember(cache, key, rendered):
    if len(cache) >= _RENDERED_MAX:
        cache.clear()
    cache[key] = rendered
    return rendered


def _render_content(content, context):
    channel = content.channel

    def text(field, html=False):
        return _render(getattr(content, field), context, field, html=html)

    if channel == "push":
        actions = []
        for index, action in enumerate((content.actions or [])[:MAX_PUSH_ACTIONS], start=1):
            field = f"actions[{index}]"
            title = _render(str(action.get("title", "")), context, f"{field}.title")
            if not title:
                raise RenderError("an action button needs a title", field=field)
            actions.append({
                "action": str(action.get("action") or f"action-{index}")[:64], "title": title,
                "url": _check_url(_render(str(action.get("url", "")), context, f"{field}.url"), f"{field}.url"),
            })
        rendered = {
            "title": text("title"), "body": text("body"),
            "icon": _check_url(text("icon"), "icon"), "image": _check_url(text("image"), "image"),
            "badge": _check_url(text("badge"), "badge"), "url": _check_url(text("click_url"), "click_url"),
            "actions": actions, "tag": text("tag"), "ttl": content.ttl_seconds, "urgency": content.urgency,
            "topic": content.topic,
        }
        if not rendered["title"]:
            raise RenderError("a push notification needs a title", field="title")
        if rendered["topic"] and not _PUSH_TOPIC.fullmatch(rendered["topic"]):
            # Push services refuse the Topic header otherwise (RFC 8030 §5.4).
            raise RenderError("a push topic is up to 32 letters, digits, '-' or '_'", field="topic")
        check_push_size(rendered)
        return rendered
    if channel == "sms":
        body = text("body")
        if not body:
            raise RenderError("the SMS is empty", field="body")
        info = sms_info(body)
        return {"body": body, "encoding": info.encoding, "segments": info.segments}
    if channel == "whatsapp":
        rendered = {}
        if content.body:
            rendered["body"] = text("body")
        if content.whatsapp_content_sid:
            variables = {}
            numbered = sorted((content.whatsapp_variables or {}).items(), key=lambda kv: (len(str(kv[0])), str(kv[0])))
            for key, source in numbered:
                value = _render(str(source), context, f"whatsapp_variables[{key}]")
                if not value:
                    # Twilio refuses a Content template with an empty variable.
                    raise RenderError("a WhatsApp template variable is empty", field=f"whatsapp_variables[{key}]")
                variables[str(key)] = value
            rendered.update(content_sid=content.whatsapp_content_sid, content_variables=variables)
        if not rendered.get("body") and "content_sid" not in rendered:
            raise RenderError("WhatsApp needs a session text or an approved template (Content SID)", field="body")
        return rendered
    if channel == "email":
        subject = text("subject")
        html = text("html_body", html=True)
        plain = text("text_body") or html_to_text(html)
        if not subject:
            raise RenderError("an email needs a subject", field="subject")
        if not plain:
            raise RenderError("the email has no body", field="html_body")
        return {"subject": " ".join(subject.split()), "html": html, "text": plain}
    if channel == "inapp":
        rendered = {
            "title": text("title"), "body": text("body"), "image": _check_url(text("image"), "image"),
            "button_label": text("button_label"), "button_url": _check_url(text("button_url"), "button_url"),
            "placement": content.placement or "banner",
        }
        if not rendered["title"] and not rendered["body"]:
            raise RenderError("an in-app message needs a title or a body", field="title")
        return rendered
    raise RenderError(f"unknown channel {channel!r}")


def render_message(*, template, channel, subscriber, context=None):
    """Render `template` on `channel` for `subscriber`: (locale used, content dict).

    `context` is the extra data (cart, order, discount_code …). Raises RenderError
    when a variable is missing without a default, a URL is not http(s), the push
    payload is too big, or the channel has no content.
    """
    content = choose_content(template, channel, subscriber.locale)
    return content.locale, render_content(content, build_context(subscriber, context))


# A made-up message code as long as a real one (outbox.new_code), so a preview's links are as long as the sent ones.
PREVIEW_CODE = "preview-code"


def render_sample(*, template, channel, locale, sample_context=None):
    """Render for a preview with a made-up shopper (see `sample_shopper`), overridden by `sample_context`.

    Links are shown as they are sent: tracking links (delivery.links) where
    DELIVERY_TRACK_LINKS tracks the channel, so an SMS preview counts the
    characters and segments the shopper is billed for.
    """
    content = choose_content(template, channel, locale)
    context = sample_shopper(locale)
    context.update(_plain(sample_context or {}))
    return track_links(render_content(content, context), channel=channel, code=PREVIEW_CODE)


def push_payload_size(content):
    """The bytes a rendered push takes once encrypted with aes128gcm, with room for the message code."""
    payload = {key: value for key, value in content.items() if key not in ("ttl", "urgency", "topic")}
    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return size + PUSH_CODE_ROOM + AES128GCM_OVERHEAD


def check_push_size(content):
    """RenderError when the push payload, encrypted with aes128gcm, would exceed 4096 bytes."""
    encrypted = push_payload_size(content)
    if encrypted > PUSH_PAYLOAD_LIMIT:
        raise RenderError(
            f"the push payload would be {encrypted} bytes encrypted; the limit is {PUSH_PAYLOAD_LIMIT}"
            f" (shorten the text by {encrypted - PUSH_PAYLOAD_LIMIT} bytes)", field="body")


# --- HTML to text ------------------------------------------------------------------

_BLOCKS = {"p", "div", "section", "article", "header", "footer", "table", "tr", "ul", "ol", "h1", "h2", "h3",
           "h4", "h5", "h6", "blockquote", "hr", "center", "main", "aside", "nav"}
_SKIP = {"style", "script", "head", "title", "template"}


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skipping = 0
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "img" and attrs.get("alt"):
            self.out.append(attrs["alt"])
        elif tag == "a":
            self.links.append((attrs.get("href") or "", len(self.out)))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in _SKIP:
            self.skipping -= 1

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = " ".join("".join(self.out[start:]).split())
            if href.lower().startswith(("http://", "https://", "mailto:", "tel:")) and href != label:
                self.out.append(f" ({href})" if label else href)

    def handle_data(self, data):
        if not self.skipping:
            self.out.append(data)


def html_to_text(html):
    """A readable text version of an email's HTML: tags stripped, paragraphs kept, link URLs kept."""
    if not html:
        return ""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.out)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- Validation at save time -------------------------------------------------------

_BLOCK_TAG = re.compile(r"{%-?\s*(end)?(\w+)")
_BLOCK_NAMES = {"if", "unless", "for", "case", "capture", "comment", "raw", "tablerow"}


def validate_liquid(source, *, field="", known=KNOWN_VARIABLES, html=False):
    """RenderError naming the line of a syntax error or of an unknown variable in `source`."""
    if not source:
        return
    try:
        template = _parse(source, html)
    except LiquidError as error:
        raise RenderError(str(error.message), field=field,
                          line=_line_of(error) or _unclosed_block_line(source)) from None
    analysis = template.analyze()
    env = _HTML if html else _TEXT
    for name, uses in analysis.filters.items():
        if name not in env.filters:
            raise RenderError(f"unknown filter “{name}”", field=field, line=_span_line(source, uses))
    if known is None:
        return
    for name, uses in analysis.globals.items():
        if name not in known:
            raise RenderError(f"unknown variable “{name}”", field=field, line=_span_line(source, uses))


def _span_line(source, uses):
    if not uses:
        return None
    span = getattr(uses[0], "span", uses[0])
    return source.count("\n", 0, max(span.index, 0)) + 1


def _unclosed_block_line(source):
    # python-liquid reports an unclosed block at the end of input without a position;
    # the useful line is the one that opened it.
    stack = []
    for match in _BLOCK_TAG.finditer(source):
        end, name = match.groups()
        if name not in _BLOCK_NAMES:
            continue
        line = source.count("\n", 0, match.start()) + 1
        if end:
            if stack and stack[-1][0] == name:
                stack.pop()
        else:
            stack.append((name, line))
    return stack[-1][1] if stack else source.count("\n") + 1


LIQUID_FIELDS = ("title", "body", "icon", "image", "badge", "click_url", "tag", "subject", "html_body",
                 "text_body", "button_label", "button_url")


def validate_content(content, *, known=KNOWN_VARIABLES):
    """Every Liquid field of a TemplateContent parses and uses known variables; actions are well formed.

    Raises RenderError (with field and line) for the first problem found.
    """
    for field in LIQUID_FIELDS:
        validate_liquid(getattr(content, field) or "", field=field, known=known, html=field == "html_body")
    actions = content.actions or []
    if not isinstance(actions, list) or len(actions) > MAX_PUSH_ACTIONS:
        raise RenderError(f"at most {MAX_PUSH_ACTIONS} action buttons", field="actions")
    for index, action in enumerate(actions, start=1):
        if not isinstance(action, dict) or not action.get("title") or not action.get("url"):
            raise RenderError("each action button needs a title and a url", field=f"actions[{index}]")
        validate_liquid(str(action["title"]), field=f"actions[{index}].title", known=known)
        validate_liquid(str(action["url"]), field=f"actions[{index}].url", known=known)
    variables = content.whatsapp_variables or {}
    if not isinstance(variables, dict):
        raise RenderError("WhatsApp variables are numbered: {\"1\": \"{{ first_name }}\"}", field="whatsapp_variables")
    for key, source in variables.items():
        validate_liquid(str(source), field=f"whatsapp_variables[{key}]", known=known)
