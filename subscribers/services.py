"""The named write paths of the subscriber CRM.

Each function takes keyword arguments, runs in one transaction and sends its
signals only after commit. Views, serializers, admin actions, tasks and imports
call these; nothing else writes consent, push-subscription status, carts or
orders.
"""
import logging
from contextlib import nullcontext
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from . import signals
from .models import (
    AnonymousId,
    Cart,
    CartStatus,
    Channel,
    Consent,
    ConsentChange,
    ConsentStatus,
    Event,
    LifecycleStage,
    Order,
    OrderStatus,
    PushSubscription,
    PushSubscriptionStatus,
    Source,
    Subscriber,
)
from .push_endpoints import validate_push_endpoint

log = logging.getLogger(__name__)

PROFILE_FIELDS = (
    "email", "phone", "first_name", "last_name", "locale", "timezone", "country", "city",
    "latitude", "longitude", "birthday", "gender", "subscribed_page_url", "subscribed_category",
)
COUNTED_ORDER_STATUSES = (OrderStatus.PLACED, OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


def _on_commit_send(signal, **kwargs):
    transaction.on_commit(lambda: signal.send(sender=Subscriber, **kwargs))


# --- Profiles -----------------------------------------------------------------

def _get_or_create_known(external_id, *, defaults=None):
    subscriber = Subscriber.objects.filter(external_id=external_id).first()
    if subscriber:
        return subscriber, False
    try:
        with transaction.atomic():
            return Subscriber.objects.create(external_id=external_id, **(defaults or {})), True
    except IntegrityError:
        # Another request created the profile between our read and our write.
        return Subscriber.objects.get(external_id=external_id), False


def _get_or_create_anonymous(anonymous_id, *, defaults=None):
    link = AnonymousId.objects.select_related("subscriber").filter(value=anonymous_id).first()
    if link:
        return link.subscriber, False
    try:
        with transaction.atomic():
            subscriber = Subscriber.objects.create(**(defaults or {}))
            AnonymousId.objects.create(value=anonymous_id, subscriber=subscriber)
            return subscriber, True
    except IntegrityError:
        return AnonymousId.objects.select_related("subscriber").get(value=anonymous_id).subscriber, False


def resolve_subscriber(*, external_id=None, anonymous_id=None, create=True):
    """Find (or create) the profile named by a store customer id and/or a browser id.

    When both are given and the browser id belongs to another, anonymous profile,
    that profile is merged into the known one (see identify_subscriber).
    Returns (subscriber, created) or (None, False) when `create` is off and
    nothing matches.
    """
    if not external_id and not anonymous_id:
        raise ValueError("external_id or anonymous_id is required")
    # The common case on the ingest path, a profile that exists, is one read
    # outside a transaction.
    if external_id and not anonymous_id:
        subscriber = Subscriber.objects.filter(external_id=external_id).first()
        if subscriber is not None or not create:
            return subscriber, False
    elif anonymous_id and not external_id:
        link = AnonymousId.objects.select_related("subscriber").filter(value=anonymous_id).first()
        if link is not None or not create:
            return (link.subscriber if link else None), False
    return _resolve_subscriber_in_transaction(external_id=external_id, anonymous_id=anonymous_id, create=create)


@transaction.atomic
def _resolve_subscriber_in_transaction(*, external_id, anonymous_id, create):
    if external_id:
        if not create:
            subscriber = Subscriber.objects.filter(external_id=external_id).first()
            return subscriber, False
        subscriber, created = _get_or_create_known(external_id)
        if anonymous_id:
            _attach_anonymous_id(subscriber, anonymous_id)
        return subscriber, created
    if not create:
        link = AnonymousId.objects.select_related("subscriber").filter(value=anonymous_id).first()
        return (link.subscriber if link else None), False
    return _get_or_create_anonymous(anonymous_id)


def _attach_anonymous_id(subscriber, anonymous_id):
    link = AnonymousId.objects.select_related("subscriber").filter(value=anonymous_id).first()
    if link is None:
        AnonymousId.objects.get_or_create(value=anonymous_id, defaults={"subscriber": subscriber})
        return
    if link.subscriber_id == subscriber.pk:
        return
    other = link.subscriber
    if other.external_id is None:
        merge_subscribers(source=other, target=subscriber)
    else:
        # The browser was used by another known customer before (a shared
        # computer): the id now follows the customer who logged in last.
        AnonymousId.objects.filter(pk=link.pk).update(subscriber=subscriber)


def _apply_profile(subscriber, fields):
    changed = []
    for name in PROFILE_FIELDS:
        if name in fields and getattr(subscriber, name) != fields[name]:
            value = fields[name]
            if value is None and name not in ("latitude", "longitude", "birthday"):
                value = ""
            setattr(subscriber, name, value)
            changed.append(name)
    if "attributes" in fields and fields["attributes"] is not None:
        merged = {**subscriber.attributes, **fields["attributes"]}
        # A null value removes a custom attribute.
        merged = {k: v for k, v in merged.items() if v is not None}
        if merged != subscriber.attributes:
            subscriber.attributes = merged
            changed.append("attributes")
    if "tags" in fields and fields["tags"] is not None:
        tags = sorted(set(fields["tags"]))
        if tags != subscriber.tags:
            subscriber.tags = tags
            changed.append("tags")
    return changed


@transaction.atomic
def upsert_subscriber(*, external_id=None, anonymous_id=None, source=Source.API, **fields):
    """Create or update a profile; `attributes` are merged (null deletes), `tags` replaced.

    Returns (subscriber, created).
    """
    subscriber, created = resolve_subscriber(external_id=external_id, anonymous_id=anonymous_id)
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    changed = _apply_profile(subscriber, fields)
    if source not in (Source.IMPORT, Source.ADMIN, Source.DEMO):
        # A file from the store's CRM or an operator's edit is not the shopper
        # being seen: "inactive for 30 days" segments must not all reset.
        subscriber.last_seen_at = timezone.now()
    subscriber.full_clean(exclude=["external_id"])
    subscriber.save()
    if changed and not created:
        log.debug("subscriber %s updated: %s", subscriber.pk, changed)
    return subscriber, created


@transaction.atomic
def update_profile(*, subscriber, attributes=None, add_tags=(), remove_tags=(), source=Source.ADMIN):
    """Merge `attributes` (null deletes) and add / remove tags on any profile, known or anonymous
    (a journey's "update" step, an operator). Does not count as the shopper being seen. -> changed fields."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    tags = (set(subscriber.tags or []) | set(add_tags)) - set(remove_tags)
    changed = _apply_profile(subscriber, {"attributes": attributes, "tags": sorted(tags)})
    if changed:
        subscriber.full_clean(exclude=["external_id"])
        subscriber.save(update_fields=changed)
    return changed


@transaction.atomic
def identify_subscriber(*, anonymous_id, external_id, source=Source.API, **traits):
    """Tie a browser to a store customer, merging the anonymous profile into the known one.

    Idempotent: identifying the same pair again changes nothing.
    """
    subscriber, _ = resolve_subscriber(external_id=external_id, anonymous_id=anonymous_id)
    if traits:
        subscriber, _ = upsert_subscriber(external_id=external_id, source=source, **traits)
    return subscriber


MERGED_HERE = {"Event", "Cart", "Order", "PushSubscription", "AnonymousId", "ConsentChange", "Consent"}


def _move_rows_of_other_apps(source, target):
    """Every other row that points at `source` (messages sent to the anonymous browser, journey enrolments,
    segment memberships …) moves to `target`, found through the model relations so this app imports none
    of the apps above it. A row the target already has its own of (a unique pair) stays and goes with the
    source: the target's own wins."""
    for relation in Subscriber._meta.related_objects:
        model = relation.related_model
        if not relation.one_to_many or (model._meta.app_label == "subscribers" and model.__name__ in MERGED_HERE):
            continue
        name = relation.field.name
        rows = model._default_manager.filter(**{name: source})
        try:
            with transaction.atomic():
                rows.update(**{name: target})
        except IntegrityError:
            for pk in list(rows.values_list("pk", flat=True)):
                try:
                    with transaction.atomic():
                        model._default_manager.filter(pk=pk).update(**{name: target})
                except IntegrityError:
                    continue


@transaction.atomic
def merge_subscribers(*, source, target):
    """Move everything of `source` onto `target` and delete `source`.

    Events, carts, orders, push subscriptions, browser ids and consent history
    move, and so does every row of the apps above that points at the source (the
    messages sent to it, its journey enrolments, segment memberships); the
    profile keeps the target's values and fills its blanks from the source; the
    most recent consent per channel wins.
    """
    if source.pk == target.pk:
        return target
    source = Subscriber.objects.select_for_update().filter(pk=source.pk).first()
    if source is None:  # already merged by a concurrent request
        return target
    target = Subscriber.objects.select_for_update().get(pk=target.pk)

    Event.objects.filter(subscriber=source).update(subscriber=target)
    Cart.objects.filter(subscriber=source).update(subscriber=target)
    Order.objects.filter(subscriber=source).update(subscriber=target)
    PushSubscription.objects.filter(subscriber=source).update(subscriber=target)
    AnonymousId.objects.filter(subscriber=source).update(subscriber=target)
    ConsentChange.objects.filter(subscriber=source).update(subscriber=target)

    _move_rows_of_other_apps(source, target)

    target_consents = {c.channel: c for c in Consent.objects.filter(subscriber=target)}
    for consent in Consent.objects.filter(subscriber=source):
        mine = target_consents.get(consent.channel)
        if mine is None:
            consent.subscriber = target
            consent.save(update_fields=["subscriber"])
        elif consent.updated_at > mine.updated_at:
            for field in ("status", "granted_at", "revoked_at", "source", "evidence", "updated_at"):
                setattr(mine, field, getattr(consent, field))
            mine.save()

    for name in PROFILE_FIELDS:
        if getattr(target, name) in ("", None) and getattr(source, name) not in ("", None):
            setattr(target, name, getattr(source, name))
    target.attributes = {**source.attributes, **target.attributes}
    target.tags = sorted(set(target.tags) | set(source.tags))
    target.created_at = min(target.created_at, source.created_at)
    seen = [t for t in (target.last_seen_at, source.last_seen_at) if t]
    target.last_seen_at = max(seen) if seen else None
    target.save()
    source_id = source.pk
    Consent.objects.filter(subscriber_id=source_id).delete()
    source.delete()
    refresh_commerce_stats(subscriber_id=target.pk)
    _on_commit_send(signals.subscribers_merged, source_id=source_id, target_id=target.pk)
    return target


# --- Consent ------------------------------------------------------------------

def _set_consent(*, subscriber, channel, status, source, evidence, at):
    if channel not in Channel.values:
        raise ValidationError(f"Unknown channel '{channel}'; use one of {', '.join(Channel.values)}.",
                              code="invalid_channel")
    at = at or timezone.now()
    evidence = evidence or {}
    consent = Consent.objects.select_for_update().filter(subscriber=subscriber, channel=channel).first()
    if consent and consent.status == status:
        return consent, False
    if consent is None:
        consent = Consent(subscriber=subscriber, channel=channel)
    consent.status = status
    consent.source = source
    consent.evidence = evidence
    consent.updated_at = at
    if status == ConsentStatus.GRANTED:
        consent.granted_at = at
    else:
        consent.revoked_at = at
    consent.save()
    ConsentChange.objects.create(
        subscriber=subscriber, channel=channel, status=status, source=source, evidence=evidence, occurred_at=at
    )
    _on_commit_send(signals.consent_changed, subscriber_id=subscriber.pk, channel=channel,
                    granted=status == ConsentStatus.GRANTED)
    # The event journeys start from ("welcome" on subscribe); the consent history above is the record.
    name = "subscribed" if status == ConsentStatus.GRANTED else "unsubscribed"
    record_event(subscriber=subscriber, name=name, properties={"channel": channel, "source": str(source)},
                 event_id=f"consent:{subscriber.pk}:{channel}:{name}:{at.timestamp():.6f}", occurred_at=at,
                 source=source)
    return consent, True


@transaction.atomic
def grant_consent(*, subscriber, channel, source, evidence=None, at=None):
    """Record opt-in on a channel. SMS/WhatsApp need a phone and email an address on file.

    Returns (consent, changed); granting what is already granted changes nothing.
    """
    if channel in (Channel.SMS, Channel.WHATSAPP) and not subscriber.phone:
        raise ValidationError("A phone number is needed before SMS or WhatsApp consent can be granted.",
                              code="phone_required")
    if channel == Channel.EMAIL and not subscriber.email:
        raise ValidationError("An email address is needed before email consent can be granted.",
                              code="email_required")
    return _set_consent(subscriber=subscriber, channel=channel, status=ConsentStatus.GRANTED,
                        source=source, evidence=evidence, at=at)


@transaction.atomic
def revoke_consent(*, subscriber, channel, source, evidence=None, at=None):
    """Record opt-out on a channel at once (STOP, unsubscribe link, API, admin)."""
    return _set_consent(subscriber=subscriber, channel=channel, status=ConsentStatus.REVOKED,
                        source=source, evidence=evidence, at=at)


def has_consent(subscriber, channel):
    return Consent.objects.filter(subscriber=subscriber, channel=channel, status=ConsentStatus.GRANTED).exists()


# --- Push subscriptions ------------------------------------------------------

def _browser_from_user_agent(user_agent):
    ua = (user_agent or "").lower()
    for needle, name in (("edg/", "Edge"), ("opr/", "Opera"), ("samsungbrowser", "Samsung Internet"),
                         ("firefox", "Firefox"), ("chrome", "Chrome"), ("safari", "Safari")):
        if needle in ua:
            return name
    return ""


@transaction.atomic
def register_push_subscription(*, subscriber, endpoint, p256dh, auth, user_agent="", page_url="",
                               category="", source=Source.SDK):
    """Store (or refresh) a browser's push subscription and record push consent.

    The endpoint must pass the SSRF guard. A known endpoint moves to this
    subscriber (the browser is now used by them) and becomes active again.
    Returns (push_subscription, created).
    """
    validate_push_endpoint(endpoint)
    now = timezone.now()
    values = {
        "subscriber": subscriber, "p256dh": p256dh, "auth": auth, "user_agent": user_agent[:500],
        "browser": _browser_from_user_agent(user_agent), "page_url": page_url[:2000], "category": category[:200],
        "status": PushSubscriptionStatus.ACTIVE, "failure_count": 0,
    }
    sub = PushSubscription.objects.select_for_update().filter(endpoint=endpoint).first()
    created = sub is None
    if created:
        try:
            with transaction.atomic():
                sub = PushSubscription.objects.create(endpoint=endpoint, created_at=now, **values)
        except IntegrityError:
            created = False
            sub = PushSubscription.objects.select_for_update().get(endpoint=endpoint)
    if not created:
        for key, value in values.items():
            setattr(sub, key, value)
        sub.save()
    if page_url or category:
        updates = {}
        if page_url and not subscriber.subscribed_page_url:
            updates["subscribed_page_url"] = page_url[:2000]
        if category and not subscriber.subscribed_category:
            updates["subscribed_category"] = category[:200]
        if updates:
            Subscriber.objects.filter(pk=subscriber.pk).update(**updates)
            for key, value in updates.items():
                setattr(subscriber, key, value)
    grant_consent(subscriber=subscriber, channel=Channel.PUSH, source=source,
                  evidence={"endpoint_host": endpoint.split("/")[2], "page_url": page_url, "user_agent": user_agent})
    return sub, created


def _revoke_push_if_unreachable(subscriber, source, reason):
    if not subscriber.push_subscriptions.filter(status=PushSubscriptionStatus.ACTIVE).exists():
        revoke_consent(subscriber=subscriber, channel=Channel.PUSH, source=source, evidence={"reason": reason})


@transaction.atomic
def unregister_push_subscription(*, endpoint, source=Source.SDK):
    """The shopper turned notifications off in this browser. Returns the subscription or None."""
    sub = PushSubscription.objects.select_for_update().select_related("subscriber").filter(endpoint=endpoint).first()
    if sub is None:
        return None
    if sub.status != PushSubscriptionStatus.UNSUBSCRIBED:
        sub.status = PushSubscriptionStatus.UNSUBSCRIBED
        sub.save(update_fields=["status", "updated_at"])
        _revoke_push_if_unreachable(sub.subscriber, source, "unsubscribed")
    return sub


@transaction.atomic
def expire_push_subscription(*, endpoint, reason=""):
    """The push service said the subscription is gone (404/410): never send to it again."""
    sub = PushSubscription.objects.select_for_update().select_related("subscriber").filter(endpoint=endpoint).first()
    if sub is None or sub.status == PushSubscriptionStatus.EXPIRED:
        return sub
    sub.status = PushSubscriptionStatus.EXPIRED
    sub.last_failure_at = timezone.now()
    sub.last_failure_reason = reason[:300]
    sub.save()
    _revoke_push_if_unreachable(sub.subscriber, Source.PROVIDER, reason or "expired")
    return sub


# --- Events -------------------------------------------------------------------

# last_seen_at moves on at most this often, sparing a row update per event of a busy shopper.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def record_event(*, subscriber, name, properties=None, event_id=None, occurred_at=None, source=Source.API):
    """Store one event (a repeated event_id is accepted and ignored) and apply its commerce facts.

    Returns (event, created). `event_recorded` is sent after commit for a new event.
    """
    # The insert is tried first and the unique event_id decides: a repeat is rare,
    # and not looking first saves a round trip on every event. When called inside
    # another transaction, atomic() makes a savepoint, so a repeat leaves it usable.
    try:
        return _insert_event(subscriber=subscriber, name=name, properties=properties or {}, event_id=event_id or None,
                             occurred_at=occurred_at, source=source), True
    except IntegrityError:
        existing = Event.objects.filter(event_id=event_id).first() if event_id else None
        if existing is None:
            raise
        return existing, False


def _insert_event(*, subscriber, name, properties, event_id, occurred_at, source):
    # A commerce event changes carts or orders with it: all or nothing. Any other
    # event is one INSERT that needs no transaction of its own (the last-seen
    # time may lag); inside a caller's transaction atomic() gives the savepoint.
    needs_transaction = name in COMMERCE_EVENTS or transaction.get_connection().in_atomic_block
    with transaction.atomic() if needs_transaction else nullcontext():
        now = timezone.now()
        event = Event.objects.create(
            subscriber=subscriber, event_id=event_id, name=name, properties=properties,
            occurred_at=occurred_at or now, received_at=now, source=source,
        )
        apply_commerce_facts(event)
        if subscriber.last_seen_at is None or now - subscriber.last_seen_at >= LAST_SEEN_RESOLUTION:
            Subscriber.objects.filter(pk=subscriber.pk).update(last_seen_at=now)
            subscriber.last_seen_at = now
        _on_commit_send(signals.event_recorded, event_id=event.pk, subscriber_id=subscriber.pk, name=name)
    return event


def record_events(*, items, source=Source.API):
    """Store a batch of already-validated events in few queries.

    `items` is a list of dicts with `name`, optional `event_id`, `properties`,
    `occurred_at`, and `external_id` and/or `anonymous_id`. Returns one result
    per item, in order: {"status": "created"|"duplicate", "id": <pk>}.
    Repeated event_ids (against the database or earlier in the batch) are
    reported as duplicates and stored once.
    """
    now = timezone.now()
    results = [None] * len(items)
    with transaction.atomic():
        wanted_ids = [item["event_id"] for item in items if item.get("event_id")]
        existing = dict(Event.objects.filter(event_id__in=wanted_ids).values_list("event_id", "pk")) if wanted_ids else {}
        seen = {}
        fresh = []
        for index, item in enumerate(items):
            eid = item.get("event_id")
            if eid and eid in existing:
                results[index] = {"status": "duplicate", "id": existing[eid]}
            elif eid and eid in seen:
                results[index] = {"status": "duplicate", "of_index": seen[eid]}
            else:
                if eid:
                    seen[eid] = index
                fresh.append(index)
        subscriber_ids = _resolve_many([items[i] for i in fresh])
        rows = [
            Event(
                subscriber_id=subscriber_ids[n], event_id=items[i].get("event_id") or None, name=items[i]["name"],
                properties=items[i].get("properties") or {}, occurred_at=items[i].get("occurred_at") or now,
                received_at=now, source=source,
            )
            for n, i in enumerate(fresh)
        ]
        try:
            with transaction.atomic():
                created = Event.objects.bulk_create(rows, batch_size=1000)
        except IntegrityError:
            # A concurrent request stored one of these event_ids first: fall back to
            # one at a time, which tells each duplicate apart.
            created = None
        if created is None:
            for n, i in enumerate(fresh):
                subscriber = Subscriber.objects.get(pk=subscriber_ids[n])
                item = items[i]
                event, was_created = record_event(
                    subscriber=subscriber, name=item["name"], properties=item.get("properties"),
                    event_id=item.get("event_id"), occurred_at=item.get("occurred_at"), source=source,
                )
                results[i] = {"status": "created" if was_created else "duplicate", "id": event.pk}
            return _resolve_duplicates_in_batch(results)
        for n, i in enumerate(fresh):
            results[i] = {"status": "created", "id": created[n].pk}
        for event in created:
            if event.name in COMMERCE_EVENTS:
                apply_commerce_facts(event)
        if subscriber_ids:
            Subscriber.objects.filter(pk__in=set(subscriber_ids)).update(last_seen_at=now)
        sent = [(e.pk, e.subscriber_id, e.name) for e in created]
        transaction.on_commit(lambda: [
            signals.event_recorded.send(sender=Subscriber, event_id=pk, subscriber_id=sid, name=name)
            for pk, sid, name in sent
        ])
    return _resolve_duplicates_in_batch(results)


def _resolve_duplicates_in_batch(results):
    for result in results:
        if "of_index" in result:
            result["id"] = results[result.pop("of_index")]["id"]
    return results


def _resolve_many(items):
    """Subscriber ids for many items in a handful of queries, creating missing profiles."""
    external = {item["external_id"] for item in items if item.get("external_id")}
    anonymous = {item["anonymous_id"] for item in items if item.get("anonymous_id") and not item.get("external_id")}
    by_external = dict(Subscriber.objects.filter(external_id__in=external).values_list("external_id", "pk"))
    by_anonymous = dict(AnonymousId.objects.filter(value__in=anonymous).values_list("value", "subscriber_id"))
    for external_id in external - by_external.keys():
        by_external[external_id] = _get_or_create_known(external_id)[0].pk
    for anonymous_id in anonymous - by_anonymous.keys():
        by_anonymous[anonymous_id] = _get_or_create_anonymous(anonymous_id)[0].pk
    # Pairs that tie a browser to a customer merge as identify would.
    for item in items:
        if item.get("external_id") and item.get("anonymous_id"):
            link = AnonymousId.objects.filter(value=item["anonymous_id"]).values_list("subscriber_id", flat=True).first()
            if link != by_external[item["external_id"]]:
                _attach_anonymous_id(Subscriber.objects.get(pk=by_external[item["external_id"]]), item["anonymous_id"])
    return [
        by_external[item["external_id"]] if item.get("external_id") else by_anonymous[item["anonymous_id"]]
        for item in items
    ]


# --- Carts and orders ---------------------------------------------------------

COMMERCE_EVENTS = {"cart_updated", "checkout_started", "order_placed", "order_shipped", "order_delivered",
                   "order_cancelled"}


def _decimal(value, default=Decimal("0")):
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, TypeError, ValueError):
        return default


def normalize_items(items):
    """Cart/order items as stored: product_id, title, url, image, price, quantity."""
    clean = []
    for item in items or []:
        clean.append({
            "product_id": str(item.get("product_id", "")),
            "title": str(item.get("title", "")),
            "url": str(item.get("url", "")),
            "image": str(item.get("image", "")),
            "price": str(_decimal(item.get("price"))),
            "quantity": int(item.get("quantity") or 1),
            **({"category": str(item["category"])} if item.get("category") else {}),
        })
    return clean


def items_value(items):
    return sum((_decimal(i["price"]) * int(i["quantity"]) for i in items), Decimal("0"))


def apply_commerce_facts(event):
    """Carts and orders follow the events that describe them (docs/events.md)."""
    props = event.properties or {}
    if event.name == "cart_updated":
        update_cart(subscriber_id=event.subscriber_id, cart_id=props.get("cart_id"), items=props.get("items"),
                    value=props.get("value"), currency=props.get("currency"), at=event.occurred_at)
    elif event.name == "checkout_started":
        cart = _current_cart(event.subscriber_id, props.get("cart_id"))
        if cart:
            Cart.objects.filter(pk=cart.pk).update(checkout_started_at=event.occurred_at,
                                                   last_activity_at=max(cart.last_activity_at, event.occurred_at))
    elif event.name == "order_placed":
        if props.get("order_id"):
            place_order(subscriber_id=event.subscriber_id, order_id=props["order_id"], items=props.get("items"),
                        value=props.get("value"), currency=props.get("currency"), cart_id=props.get("cart_id"),
                        at=event.occurred_at)
    elif event.name in ("order_shipped", "order_delivered", "order_cancelled"):
        if props.get("order_id"):
            status = {"order_shipped": OrderStatus.SHIPPED, "order_delivered": OrderStatus.DELIVERED,
                      "order_cancelled": OrderStatus.CANCELLED}[event.name]
            update_order_status(order_id=props["order_id"], status=status, at=event.occurred_at)


def _current_cart(subscriber_id, cart_id=None):
    if cart_id:
        return Cart.objects.filter(external_id=str(cart_id)).first()
    return (Cart.objects.filter(subscriber_id=subscriber_id, status__in=[CartStatus.ACTIVE, CartStatus.ABANDONED])
            .order_by("-last_activity_at").first())


@transaction.atomic
def update_cart(*, subscriber_id, cart_id=None, items=None, value=None, currency=None, at=None):
    """Apply a full cart snapshot. An abandoned cart that changes becomes active again.

    Snapshots of one store cart may arrive concurrently (two tabs, a retry): the
    row is locked, or created under the unique cart id with the loser of a race
    re-reading the winner's row, so neither snapshot is lost to an error.
    """
    at = at or timezone.now()
    items = normalize_items(items)
    total = _decimal(value) if value is not None else items_value(items)
    created = False
    if cart_id:
        cart, created = _lock_or_create_cart(subscriber_id, str(cart_id), at)
        if cart.status == CartStatus.CONVERTED:
            return cart  # a late snapshot of a cart already bought
    else:
        cart = (Cart.objects.select_for_update()
                .filter(subscriber_id=subscriber_id, status__in=[CartStatus.ACTIVE, CartStatus.ABANDONED])
                .order_by("-last_activity_at").first())
        if cart is None:
            cart, created = Cart(subscriber_id=subscriber_id, created_at=at, last_activity_at=at), True
    if not created and cart.last_activity_at > at:
        return cart  # an older snapshot arriving late changes nothing
    cart.subscriber_id = subscriber_id
    cart.items = items
    cart.value = total
    cart.currency = (currency or cart.currency or settings.DEFAULT_CURRENCY).upper()[:3]
    cart.last_activity_at = at
    if cart.status == CartStatus.ABANDONED:
        cart.status = CartStatus.ACTIVE
        cart.abandoned_at = None
    cart.save()
    return cart


def _lock_or_create_cart(subscriber_id, external_id, at):
    cart = Cart.objects.select_for_update().filter(external_id=external_id).first()
    if cart is not None:
        return cart, False
    try:
        with transaction.atomic():
            return Cart.objects.create(subscriber_id=subscriber_id, external_id=external_id, created_at=at,
                                       last_activity_at=at), True
    except IntegrityError:
        return Cart.objects.select_for_update().get(external_id=external_id), False


def detect_abandoned_carts(*, now=None, chunk_size=500):
    """Mark carts idle for CART_ABANDON_MINUTES as abandoned; one `cart_abandoned` event each.

    Safe to run from several workers at once (rows are claimed with SKIP LOCKED)
    and to repeat (the event id names the cart and its last activity).
    Returns the number of carts marked.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.CART_ABANDON_MINUTES)
    marked = 0
    while True:
        with transaction.atomic():
            carts = list(
                Cart.objects.select_for_update(skip_locked=True)
                .filter(status=CartStatus.ACTIVE, last_activity_at__lte=cutoff)
                .exclude(items=[])
                .order_by("last_activity_at", "pk")[:chunk_size]
            )
            if not carts:
                return marked
            for cart in carts:
                cart.status = CartStatus.ABANDONED
                cart.abandoned_at = now
                cart.save(update_fields=["status", "abandoned_at"])
                record_event(
                    subscriber=cart.subscriber, name="cart_abandoned",
                    event_id=f"cart_abandoned:{cart.pk}:{int(cart.last_activity_at.timestamp())}",
                    properties={
                        "cart_id": cart.external_id or str(cart.pk), "value": str(cart.value),
                        "currency": cart.currency, "items": cart.items, "item_count": cart.item_count,
                        "restore_url": cart.restore_url, "checkout_started": bool(cart.checkout_started_at),
                    },
                    occurred_at=now, source=Source.API,
                )
            marked += len(carts)


@transaction.atomic
def place_order(*, subscriber_id, order_id, items=None, value=None, currency=None, cart_id=None, at=None):
    """Record an order (idempotent on the store's order id) and convert the cart it contains."""
    at = at or timezone.now()
    items = normalize_items(items)
    total = _decimal(value) if value is not None else items_value(items)
    order, created = Order.objects.get_or_create(
        external_id=str(order_id),
        defaults={"subscriber_id": subscriber_id, "items": items, "value": total,
                  "currency": (currency or settings.DEFAULT_CURRENCY).upper()[:3], "placed_at": at},
    )
    if not created:
        return order
    cart = None
    if cart_id:
        cart = Cart.objects.filter(external_id=str(cart_id)).first()
    else:
        ordered = {i["product_id"] for i in items}
        for candidate in Cart.objects.filter(subscriber_id=subscriber_id,
                                             status__in=[CartStatus.ACTIVE, CartStatus.ABANDONED]):
            products = {i["product_id"] for i in candidate.items}
            if products and products <= ordered:
                cart = candidate
                break
    if cart and cart.status != CartStatus.CONVERTED:
        Cart.objects.filter(pk=cart.pk).update(status=CartStatus.CONVERTED, converted_at=at)
        Order.objects.filter(pk=order.pk).update(cart=cart)
        order.cart = cart
    refresh_commerce_stats(subscriber_id=subscriber_id)
    return order


@transaction.atomic
def update_order_status(*, order_id, status, at=None):
    at = at or timezone.now()
    order = Order.objects.select_for_update().filter(external_id=str(order_id)).first()
    if order is None:
        return None
    order.status = status
    if status == OrderStatus.SHIPPED:
        order.shipped_at = at
    elif status == OrderStatus.DELIVERED:
        order.delivered_at = at
    order.save()
    refresh_commerce_stats(subscriber_id=order.subscriber_id)
    return order


def lifecycle_stage_for(*, orders_count, last_order_at, now=None):
    """new (never ordered), lapsed / at_risk (by days since the last order), loyal, active."""
    now = now or timezone.now()
    if not orders_count or last_order_at is None:
        return LifecycleStage.NEW
    idle = now - last_order_at
    if idle > timedelta(days=settings.LIFECYCLE_LAPSED_DAYS):
        return LifecycleStage.LAPSED
    if idle > timedelta(days=settings.LIFECYCLE_AT_RISK_DAYS):
        return LifecycleStage.AT_RISK
    if orders_count >= settings.LIFECYCLE_LOYAL_MIN_ORDERS:
        return LifecycleStage.LOYAL
    return LifecycleStage.ACTIVE


def refresh_commerce_stats(*, subscriber_id, now=None):
    """Recompute a shopper's orders count, total spent, AOV, first/last order and lifecycle stage."""
    facts = Order.objects.filter(subscriber_id=subscriber_id, status__in=COUNTED_ORDER_STATUSES).aggregate(
        count=Count("pk"), total=Sum("value"), first=Min("placed_at"), last=Max("placed_at"),
    )
    count = facts["count"] or 0
    total = facts["total"] or Decimal("0")
    Subscriber.objects.filter(pk=subscriber_id).update(
        orders_count=count, total_spent=total,
        average_order_value=(total / count).quantize(Decimal("0.01")) if count else Decimal("0"),
        first_order_at=facts["first"], last_order_at=facts["last"],
        lifecycle_stage=lifecycle_stage_for(orders_count=count, last_order_at=facts["last"], now=now),
    )


def refresh_lifecycle_stages(*, now=None):
    """Move shoppers between stages as time passes (five UPDATEs, whatever the size)."""
    now = now or timezone.now()
    at_risk_after = now - timedelta(days=settings.LIFECYCLE_AT_RISK_DAYS)
    lapsed_after = now - timedelta(days=settings.LIFECYCLE_LAPSED_DAYS)
    qs = Subscriber.objects
    changed = 0
    changed += qs.filter(orders_count=0).exclude(lifecycle_stage=LifecycleStage.NEW).update(
        lifecycle_stage=LifecycleStage.NEW)
    buyers = qs.filter(orders_count__gt=0)
    changed += buyers.filter(last_order_at__lt=lapsed_after).exclude(lifecycle_stage=LifecycleStage.LAPSED).update(
        lifecycle_stage=LifecycleStage.LAPSED)
    changed += buyers.filter(last_order_at__gte=lapsed_after, last_order_at__lt=at_risk_after).exclude(
        lifecycle_stage=LifecycleStage.AT_RISK).update(lifecycle_stage=LifecycleStage.AT_RISK)
    recent = buyers.filter(last_order_at__gte=at_risk_after)
    changed += recent.filter(orders_count__gte=settings.LIFECYCLE_LOYAL_MIN_ORDERS).exclude(
        lifecycle_stage=LifecycleStage.LOYAL).update(lifecycle_stage=LifecycleStage.LOYAL)
    changed += recent.filter(orders_count__lt=settings.LIFECYCLE_LOYAL_MIN_ORDERS).exclude(
        lifecycle_stage=LifecycleStage.ACTIVE).update(lifecycle_stage=LifecycleStage.ACTIVE)
    return changed


# --- Privacy ------------------------------------------------------------------

def export_subscriber_data(*, subscriber):
    """Everything stored about one shopper, as JSON-ready data (GDPR access request)."""
    def rows(qs, fields):
        return [{f: _jsonable(getattr(obj, f)) for f in fields} for obj in qs]

    profile_fields = ["external_id", *PROFILE_FIELDS, "attributes", "tags", "orders_count", "total_spent",
                      "average_order_value", "first_order_at", "last_order_at", "lifecycle_stage",
                      "created_at", "last_seen_at"]
    return {
        "profile": {f: _jsonable(getattr(subscriber, f)) for f in profile_fields},
        "anonymous_ids": list(subscriber.anonymous_ids.values_list("value", flat=True)),
        "consents": rows(subscriber.consents.all(), ["channel", "status", "granted_at", "revoked_at", "source",
                                                      "evidence"]),
        "consent_history": rows(subscriber.consent_changes.all(), ["channel", "status", "source", "evidence",
                                                                    "occurred_at"]),
        "push_subscriptions": rows(subscriber.push_subscriptions.all(), ["endpoint", "browser", "user_agent",
                                                                          "status", "created_at", "page_url"]),
        "events": rows(subscriber.events.order_by("occurred_at"), ["event_id", "name", "properties",
                                                                    "occurred_at", "received_at", "source"]),
        "carts": rows(subscriber.carts.all(), ["external_id", "items", "value", "currency", "status",
                                               "last_activity_at", "abandoned_at", "converted_at"]),
        "orders": rows(subscriber.orders.all(), ["external_id", "items", "value", "currency", "status",
                                                 "placed_at", "shipped_at", "delivered_at"]),
    }


def _jsonable(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


@transaction.atomic
def erase_subscriber(*, subscriber):
    """Delete a shopper and everything about them (GDPR erasure)."""
    subscriber_id = subscriber.pk
    subscriber.delete()
    _on_commit_send(signals.subscriber_erased, subscriber_id=subscriber_id)
