"""A shopper's 360° view: everything Tanbih knows about one subscriber, read in a fixed number of queries.

The page sits in analytics because it reads every layer (profile and consent from
subscribers, messages from delivery, enrolments from journeys, the campaigns and
journeys that sent each message) and analytics is the one app allowed to.

However long a shopper's history, every part is a bounded query: the latest rows
of carts, orders, consent changes and push subscriptions; the saved segments
evaluated for the one shopper in one query (subscribers.segments.segments_of);
and a timeline of events and messages merged by time and read in pages by a
keyset cursor, never an OFFSET.
"""
import json
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from campaigns.models import SOURCE_TYPE as CAMPAIGN_SOURCE
from campaigns.models import TEST_SOURCE_TYPE as CAMPAIGN_TEST_SOURCE
from campaigns.models import Campaign
from delivery.models import Message
from journeys.models import SOURCE_TYPE as JOURNEY_SOURCE
from journeys.models import Enrolment, Journey
from subscribers.models import (
    Cart,
    Channel,
    Consent,
    ConsentChange,
    Event,
    Order,
    PushSubscription,
    Segment,
    Subscriber,
)
from subscribers.segment_builder import masked_email, masked_phone
from subscribers.segments import segments_of

LIST_PAGE = 50
TIMELINE_PAGE = 25
RECENT_ROWS = 10  # carts and orders shown; the counts say how many there are
CONSENT_HISTORY = 30
PUSH_SHOWN = 20
ENROLMENTS_SHOWN = 20
SEGMENTS_EVALUATED = 500
PROPERTIES_SHOWN = 6

# Rank of each kind in the timeline's order when two rows share a time.
EVENT, MESSAGE = "event", "message"
_RANK = {EVENT: 0, MESSAGE: 1}


# --- The list -------------------------------------------------------------------------------------

def search_q(text):
    """Shoppers matching a search box: the exact store id or phone, the start of an email, or a name.

    The same lookups as the admin's subscriber search (indexed columns, prefix matches),
    plus "first last" for a full name.
    """
    text = (text or "").strip()
    if not text:
        return Q()
    query = (Q(external_id=text) | Q(phone=text.replace(" ", "")) | Q(email__istartswith=text)
             | Q(first_name__istartswith=text) | Q(last_name__istartswith=text))
    first, _sep, last = text.partition(" ")
    if last.strip():
        query |= Q(first_name__iexact=first, last_name__istartswith=last.strip())
    return query


def subscriber_list(text="", *, before=None, size=LIST_PAGE):
    """(up to `size` shoppers newest first, the id to continue before or None): one query, keyset paged."""
    rows = Subscriber.objects.filter(search_q(text)).order_by("-pk")
    if before is not None:
        rows = rows.filter(pk__lt=before)
    rows = list(rows[:size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].pk if more else None)


def contact_of(subscriber, *, unmasked):
    """The email and phone as the user may see them: whole for those who may change shoppers, masked otherwise
    (like a segment's sample of shoppers)."""
    if unmasked:
        return subscriber.email, subscriber.phone
    return masked_email(subscriber.email), masked_phone(subscriber.phone)


# --- The timeline ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """Where a timeline page ends: the time, kind and id of its last row (rows are ordered by all three)."""

    at: datetime
    kind: str
    pk: int

    def __str__(self):
        # UTC with a Z, so the cursor reads the same with or without URL encoding (a "+" would become a space).
        return f"{self.at.astimezone(dt_timezone.utc):%Y-%m-%dT%H:%M:%S.%fZ}~{self.kind}~{self.pk}"

    @classmethod
    def parse(cls, text):
        """The cursor a "load more" link carries; None for anything malformed."""
        try:
            at, kind, pk = str(text).split("~")
            parsed = datetime.fromisoformat(at)
            if kind not in _RANK or parsed.tzinfo is None:
                return None
            return cls(parsed, kind, int(pk))
        except ValueError:
            return None


@dataclass
class TimelineEntry:
    kind: str
    at: datetime
    row: object  # an Event or a Message
    source: dict | None = None  # a message's campaign or journey: {"kind", "name", "url_name", "pk"}

    @property
    def properties(self):
        """An event's first few properties as (name, text) pairs, for a one-line summary."""
        if self.kind != EVENT or not isinstance(self.row.properties, dict):
            return []
        return [(str(key), display_value(value)[:120]) for key, value in
                list(self.row.properties.items())[:PROPERTIES_SHOWN]]

    @property
    def key(self):
        return (self.at, _RANK[self.kind], self.row.pk)

    @property
    def cursor(self):
        return Cursor(self.at, self.kind, self.row.pk)


def _after(cursor, kind, time_field):
    """Rows of `kind` that come after `cursor` in newest-first order (time, then kind rank, then id)."""
    if cursor is None:
        return Q()
    rank, cursor_rank = _RANK[kind], _RANK[cursor.kind]
    if rank < cursor_rank:
        return Q(**{f"{time_field}__lte": cursor.at})
    if rank == cursor_rank:
        # The bound on the time alone lets an index on (shopper, time) start its scan at the cursor.
        return Q(**{f"{time_field}__lte": cursor.at}) & (Q(**{f"{time_field}__lt": cursor.at})
                                                          | Q(pk__lt=cursor.pk))
    return Q(**{f"{time_field}__lt": cursor.at})


def timeline(subscriber, *, cursor=None, size=TIMELINE_PAGE, with_messages=True):
    """(one page of the shopper's events and messages, newest first, the cursor of the next page or None).

    Two queries (the newest `size` + 1 of each kind after the cursor) plus one per
    kind of message source on the page (the campaigns' and journeys' names),
    whatever the length of the history. A message is placed at the time it was
    queued; its later fates (sent, displayed, clicked) are shown on its row.
    """
    events = (Event.objects.filter(subscriber=subscriber).filter(_after(cursor, EVENT, "occurred_at"))
              .order_by("-occurred_at", "-pk")[:size + 1])
    entries = [TimelineEntry(EVENT, event.occurred_at, event) for event in events]
    if with_messages:
        messages = (Message.objects.filter(subscriber=subscriber).filter(_after(cursor, MESSAGE, "queued_at"))
                    .select_related("template").defer("context", "content", "error", "claim_token")
                    .order_by("-queued_at", "-pk")[:size + 1])
        entries += [TimelineEntry(MESSAGE, message.queued_at, message) for message in messages]
    entries.sort(key=lambda entry: entry.key, reverse=True)
    page = entries[:size]
    _name_sources([entry for entry in page if entry.kind == MESSAGE])
    following = page[-1].cursor if len(entries) > size else None
    return page, following


def _source_id(message):
    head = message.source_id.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _name_sources(entries):
    """Attach the campaign or journey that sent each message: one query per kind of source."""
    kinds = {
        CAMPAIGN_SOURCE: (Campaign, "campaigns:detail", _("Campaign")),
        CAMPAIGN_TEST_SOURCE: (Campaign, "campaigns:detail", _("Campaign test")),
        JOURNEY_SOURCE: (Journey, "journeys:detail", _("Journey")),
    }
    wanted = {}
    for entry in entries:
        source_type = entry.row.source_type
        if source_type in kinds and _source_id(entry.row) is not None:
            wanted.setdefault(kinds[source_type][0], set()).add(_source_id(entry.row))
    names = {model: dict(model.objects.filter(pk__in=ids).values_list("pk", "name"))
             for model, ids in wanted.items()}
    for entry in entries:
        model, url_name, label = kinds.get(entry.row.source_type, (None, None, None))
        pk = _source_id(entry.row)
        if model is not None and pk in names.get(model, {}):
            entry.source = {"kind": label, "name": names[model][pk], "url_name": url_name, "pk": pk}


# --- The profile ----------------------------------------------------------------------------------

def _count(model, **extra):
    """A subquery counting `model` rows of the outer shopper (one column of the shopper's own query)."""
    rows = model.objects.filter(subscriber=OuterRef("pk"), **extra).order_by().values("subscriber")
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1]), 0)


def load_subscriber(pk):
    """The shopper with how many carts, events and messages they have: one query (None when there is no such
    shopper)."""
    return (Subscriber.objects.filter(pk=pk)
            .annotate(carts_total=_count(Cart), events_total=_count(Event), messages_total=_count(Message))
            .first())


def display_value(value):
    """A custom attribute as text: strings as they are, anything else as JSON (lists, numbers, objects)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def consents_by_channel(subscriber):
    """Every channel in a fixed order with its current consent (or None) and its latest changes: two queries."""
    current = {consent.channel: consent for consent in Consent.objects.filter(subscriber=subscriber)}
    history = {}
    changes = ConsentChange.objects.filter(subscriber=subscriber).order_by("-occurred_at", "-pk")[:CONSENT_HISTORY]
    for change in changes:
        history.setdefault(change.channel, []).append(change)
    return [{"channel": value, "label": label, "consent": current.get(value), "history": history.get(value, [])}
            for value, label in Channel.choices]


def profile(subscriber, *, with_messages=True, with_journeys=True, now=None):
    """Everything the 360° page shows besides the shopper's own row, in a fixed number of queries."""
    attributes = sorted((str(key), display_value(value)) for key, value in (subscriber.attributes or {}).items())
    entries, following = timeline(subscriber, with_messages=with_messages)
    segments = list(Segment.objects.order_by("name", "pk")[:SEGMENTS_EVALUATED])
    enrolments = []
    if with_journeys:
        enrolments = list(Enrolment.objects.filter(subscriber=subscriber).select_related("journey", "version")
                          .order_by("-entered_at", "-pk")[:ENROLMENTS_SHOWN])
        for enrolment in enrolments:
            step = enrolment.version.step(enrolment.step) if enrolment.step else None
            enrolment.step_type = (step or {}).get("type", "")
    return {
        "attributes": attributes,
        "tags": [str(tag) for tag in subscriber.tags or []],
        "consents": consents_by_channel(subscriber),
        "push_subscriptions": list(PushSubscription.objects.filter(subscriber=subscriber)
                                   .order_by("-created_at", "-pk")[:PUSH_SHOWN]),
        "carts": list(Cart.objects.filter(subscriber=subscriber).order_by("-last_activity_at", "-pk")[:RECENT_ROWS]),
        "orders": list(Order.objects.filter(subscriber=subscriber).order_by("-placed_at", "-pk")[:RECENT_ROWS]),
        "segments": segments_of(subscriber, segments, now=now),
        "segments_evaluated": len(segments),
        "enrolments": enrolments,
        "timeline": entries,
        "timeline_next": following,
    }
