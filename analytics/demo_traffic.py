"""The demo store's message history, so a newcomer's dashboard and reports have something to show.

The demo store (subscribers.demo) has 90 days of shopping — visits, carts abandoned and bought back, orders —
but no messages before `make run` starts. This writes the messages Tanbih would have sent over those days, as
rows with their event history (what the outbox records), on the demo's own timeline:

- four past campaigns to a sample of reachable shoppers, two of them A/B tests with a hold-out group; shoppers
  who ordered within a day of a campaign clicked it shortly before their order (the orders are the demo's own);
- the abandoned-cart journey's messages after every abandonment of a known shopper, clicked before the order
  when the cart was bought back;
- the storefront's push prompts (shown, accepted by the shoppers who have a browser subscribed).

Then the orders are attributed (analytics.attribution, which adds their conversions to the rollups) and the new
message events rolled up (analytics.rollups), the same incremental path live traffic takes. The reachable
subscribers per channel and day come from the consent history the demo store already has
(`rollups.refresh_subscriber_daily`, the hourly task's work: every day back to the first consent). Seeded, so
every demo shows the same figures for the same store.
"""
import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from campaigns.models import SOURCE_TYPE as CAMPAIGN_SOURCE_TYPE
from campaigns.models import Campaign, CampaignStatus, HoldoutMember, Variant
from delivery.models import DeliveryChannel, Message, MessageEvent, MessageEventKind, MessageStatus, MessageTemplate
from delivery.outbox import idempotency_key_for, new_code
from delivery.policy import reachable_q
from journeys.models import SOURCE_TYPE as JOURNEY_SOURCE_TYPE
from journeys.models import Enrolment, EnrolmentStatus, Journey
from subscribers.models import Cart, Event, Order, PushSubscription, Source, Subscriber
from subscribers.services import record_events

from . import attribution, rollups
from .models import Attribution, AttributionKind

SEED = 6
AUDIENCE = 1500
CHANNEL_ORDER = (DeliveryChannel.PUSH, DeliveryChannel.SMS, DeliveryChannel.EMAIL)
# name, days ago, {variant label: click rate}, hold-out percent
CAMPAIGNS = (
    ("White Friday · الجمعة البيضاء", 55, {"A": 0.04, "B": 0.09}, 10),
    ("Ramadan collection · تشكيلة رمضان", 33, {"A": 0.07}, 0),
    ("New arrivals · وصل حديثاً", 17, {"A": 0.06}, 0),
    ("Weekend sale · تخفيضات نهاية الأسبوع", 4, {"A": 0.06, "B": 0.065}, 10),
)
FAILURES = {DeliveryChannel.PUSH: "410 subscription expired", DeliveryChannel.SMS: "invalid number (twilio 21211)",
            DeliveryChannel.EMAIL: "mailbox unavailable (550)", DeliveryChannel.WHATSAPP: "63016 outside the window"}
# As delivery.policy words them (quiet hours hold a message, they never suppress it).
SUPPRESSIONS = ("frequency cap: 3 messages across channels per week",
                "frequency cap: 2 messages across channels per day")


def has_demo_history():
    return Message.objects.filter(source_type__in=[CAMPAIGN_SOURCE_TYPE, JOURNEY_SOURCE_TYPE],
                                  sent_at__lt=timezone.now() - timedelta(days=1)).exists()


class History:
    """Message rows and their events, collected in memory and written in bulk."""

    def __init__(self, rng, now):
        self.rng, self.now = rng, now
        self.messages, self.events = [], []

    def message(self, *, subscriber_id, channel, source_type, source_id, occurrence, at, click_rate=0.0,
                clicked_at=None, displayed_at=None, context=None):
        """One message queued at `at` and what happened to it; clicked at `clicked_at` (a push displayed at
        `displayed_at`) when given."""
        rng = self.rng
        message = Message(
            idempotency_key=idempotency_key_for(source_type=source_type, source_id=source_id,
                                                subscriber_id=subscriber_id, channel=channel, occurrence=occurrence),
            code=new_code(), subscriber_id=subscriber_id, channel=channel, source_type=source_type,
            source_id=source_id, occurrence=occurrence, context=context or {}, queued_at=at, send_at=at)
        events = [(MessageEventKind.QUEUED, at, {})]
        roll = rng.random()
        if clicked_at is None and displayed_at is None and roll < 0.03:
            message.status, message.status_reason = MessageStatus.SUPPRESSED, rng.choice(SUPPRESSIONS)
            events.append((MessageEventKind.SUPPRESSED, at, {"reason": message.status_reason}))
        elif clicked_at is None and displayed_at is None and roll < 0.07:
            message.status, message.status_reason = MessageStatus.FAILED, FAILURES[channel]
            message.failed_at = at + timedelta(seconds=rng.randrange(2, 90))
            events.append((MessageEventKind.FAILED, message.failed_at, {"reason": message.status_reason}))
        else:
            self._delivered(message, events, at, click_rate, clicked_at, displayed_at)
        self.messages.append(message)
        self.events.append(events)
        return message

    def _delivered(self, message, events, at, click_rate, clicked_at, displayed_at):
        rng = self.rng
        message.status = MessageStatus.DELIVERED
        message.sent_at = at + timedelta(seconds=rng.randrange(1, 600))
        message.delivered_at = message.sent_at + timedelta(seconds=rng.randrange(1, 60))
        events += [(MessageEventKind.SENT, message.sent_at, {}), (MessageEventKind.DELIVERED, message.delivered_at, {})]
        if clicked_at is None and rng.random() < click_rate:
            clicked_at = message.delivered_at + timedelta(minutes=rng.randrange(1, 240))
        if clicked_at is not None:
            clicked_at = max(clicked_at, message.delivered_at + timedelta(seconds=30))
        if message.channel == DeliveryChannel.PUSH and (clicked_at or displayed_at or rng.random() < 0.7):
            # A push reaches a phone that was off when the phone comes back on: displayed hours later.
            message.displayed_at = max(displayed_at or message.delivered_at + timedelta(seconds=rng.randrange(1, 20)),
                                       message.delivered_at + timedelta(seconds=1))
            events.append((MessageEventKind.DISPLAYED, message.displayed_at, {}))
        if clicked_at is not None and clicked_at < self.now:
            message.clicked_at = clicked_at
            events.append((MessageEventKind.CLICKED, clicked_at, {}))
        elif message.channel != DeliveryChannel.PUSH and rng.random() < 0.005:
            events.append((MessageEventKind.UNSUBSCRIBED, message.delivered_at + timedelta(minutes=5), {}))

    def write(self):
        Message.objects.bulk_create(self.messages, batch_size=2000)
        MessageEvent.objects.bulk_create(
            [MessageEvent(message=message, kind=kind, occurred_at=at, detail=detail)
             for message, events in zip(self.messages, self.events) for kind, at, detail in events],
            batch_size=5000)


def _channels(rng):
    """{subscriber id: the first channel of CHANNEL_ORDER they can be reached on}, known shoppers only."""
    chosen = {}
    for channel in reversed(CHANNEL_ORDER):
        for pk in Subscriber.objects.known().filter(reachable_q(channel)).values_list("pk", flat=True):
            chosen[pk] = channel
    return chosen


def _orders_between(start, end):
    return list(Order.objects.filter(placed_at__gt=start, placed_at__lt=end).values_list("subscriber_id", "placed_at"))


def write_campaigns(history, reachable, template):
    rng, now = history.rng, history.now
    for name, days_ago, rates, holdout_percent in CAMPAIGNS:
        at = (now - timedelta(days=days_ago)).replace(hour=16, minute=0, second=0, microsecond=0)
        campaign = Campaign.objects.create(
            name=name, status=CampaignStatus.COMPLETED, channels=list(CHANNEL_ORDER), holdout_percent=holdout_percent,
            send_at=at, created_at=at - timedelta(days=2), scheduled_at=at - timedelta(days=1), started_at=at,
            completed_at=at + timedelta(hours=1))
        for label in rates:
            Variant.objects.create(campaign=campaign, label=label, template=template)
        buyers = {pk: placed for pk, placed in _orders_between(at + timedelta(minutes=10), at + timedelta(hours=24))
                  if pk in reachable}
        others = sorted(set(reachable) - set(buyers))
        audience = sorted(buyers) + rng.sample(others, min(len(others), AUDIENCE - len(buyers)))
        labels, held = list(rates), []
        for index, subscriber_id in enumerate(audience):
            # The buyers are the campaign's effect, so the hold-out is drawn from the others.
            if subscriber_id not in buyers and rng.random() * 100 < holdout_percent:
                held.append(HoldoutMember(campaign=campaign, occurrence="", subscriber_id=subscriber_id, added_at=at))
                continue
            label = labels[index % len(labels)]
            placed, roll = buyers.get(subscriber_id), rng.random()
            # Buyers clicked shortly before ordering, or (a push) saw it within the view window, or neither.
            clicked_at = placed - timedelta(minutes=rng.randrange(3, 40)) if placed and roll < 0.55 else None
            seen_at = placed - timedelta(minutes=rng.randrange(5, 50)) if placed and 0.55 <= roll < 0.8 else None
            history.message(subscriber_id=subscriber_id, channel=reachable[subscriber_id],
                            source_type=CAMPAIGN_SOURCE_TYPE, source_id=f"{campaign.pk}:{label}", occurrence="",
                            at=at, click_rate=rates[label], clicked_at=clicked_at, displayed_at=seen_at)
        HoldoutMember.objects.bulk_create(held)


def _send_steps(journey):
    """The journey's send steps in the order a shopper meets them: [(key, channels)]."""
    steps = journey.current_version.steps
    found, key, seen = [], steps.get("start"), set()
    while key in steps.get("steps", {}) and key not in seen:
        seen.add(key)
        step = steps["steps"][key]
        if step.get("type") == "send":
            found.append((key, step.get("channels") or []))
        key = step.get("next")
    return found


def write_journey(history, reachable, journey):
    """The abandoned-cart journey's messages after each abandonment of a known, reachable shopper."""
    rng, since = history.rng, history.now - timedelta(days=90)
    steps = _send_steps(journey)
    carts = dict(Cart.objects.values_list("external_id", "pk"))
    orders = {cart_id: placed for cart_id, placed in Order.objects.filter(cart__isnull=False)
              .values_list("cart_id", "placed_at")}
    enrolments = []
    abandonments = (Event.objects.filter(name="cart_abandoned", occurred_at__gte=since,
                                         subscriber_id__in=list(reachable))
                    .order_by("occurred_at").values_list("pk", "subscriber_id", "occurred_at", "properties__cart_id"))
    for event_id, subscriber_id, abandoned_at, cart_id in abandonments:
        placed = orders.get(carts.get(cart_id))
        bought_back = placed is not None and placed > abandoned_at + timedelta(minutes=20)
        sent = []
        for number, (key, channels) in enumerate(steps):
            at = abandoned_at + timedelta(minutes=(15, 60, 240, 1440)[min(number, 3)])
            channel = reachable[subscriber_id] if reachable[subscriber_id] in channels else None
            if channel is None or at >= history.now or (bought_back and at >= placed - timedelta(minutes=5)):
                continue
            sent.append(dict(subscriber_id=subscriber_id, channel=channel, source_type=JOURNEY_SOURCE_TYPE,
                             source_id=f"{journey.pk}:{key}", occurrence=str(event_id), at=at, click_rate=0.04,
                             context={"cart_id": cart_id}))
        if sent and bought_back and rng.random() < 0.5:
            sent[-1]["clicked_at"] = placed - timedelta(minutes=rng.randrange(2, 30))
        for fields in sent:
            history.message(**fields)
        enrolments.append(Enrolment(
            journey=journey, version=journey.current_version, subscriber_id=subscriber_id, entered_at=abandoned_at,
            status=EnrolmentStatus.CONVERTED if bought_back else EnrolmentStatus.COMPLETED,
            finished_at=placed if bought_back else abandoned_at + timedelta(days=1), step="end",
            trigger_key=f"demo-history:{event_id}", context={"cart_id": cart_id}, visits=len(steps)))
    Enrolment.objects.bulk_create(enrolments, batch_size=2000)


def write_push_prompts(rng, now):
    """The storefront's soft push prompt, shown to known shoppers and accepted by those who subscribed."""
    items = []
    subscribed = set(PushSubscription.objects.values_list("subscriber_id", flat=True))
    for subscriber_id, external_id, created in (Subscriber.objects.known().order_by("pk")
                                                .values_list("pk", "external_id", "created_at")):
        if rng.random() >= 0.4:
            continue
        shown = min(max(created, now - timedelta(days=89)) + timedelta(minutes=rng.randrange(1, 600)), now)
        items.append({"name": "push_prompt_shown", "occurred_at": shown, "external_id": external_id})
        if subscriber_id in subscribed or rng.random() < 0.05:
            items.append({"name": "push_prompt_accepted", "occurred_at": shown, "external_id": external_id})
    record_events(items=items, source=Source.SDK)


def load_demo_history(*, seed=SEED, now=None, log=None):
    """Write the history, attribute the orders again and roll the new events up; -> {what: count}."""
    rng, now = random.Random(seed), now or timezone.now()
    template = MessageTemplate.objects.filter(slug="back-in-stock").first() or MessageTemplate.objects.first()
    journey = Journey.objects.filter(recipe="abandoned-cart").select_related("current_version").order_by("pk").first()
    history = History(rng, now)
    with transaction.atomic():
        reachable = _channels(rng)
        if template is not None:
            write_campaigns(history, reachable, template)
        if journey is not None and journey.current_version is not None:
            write_journey(history, reachable, journey)
        history.write()
        write_push_prompts(rng, now)
        # Orders attributed before this history existed (to nothing) are attributed again.
        Attribution.objects.filter(kind=AttributionKind.NONE, recovered_cart__isnull=True).delete()
    attributed = 0
    while True:
        done = attribution.sweep(limit=1000)
        attributed += done
        if done < 1000:
            break
    rollups.roll_up_all()
    days = rollups.refresh_subscriber_daily(now=now)
    figures = {"messages": len(history.messages), "orders attributed": attributed, "days of subscribers": days,
               "click": Attribution.objects.filter(kind=AttributionKind.CLICK).count(),
               "view": Attribution.objects.filter(kind=AttributionKind.VIEW).count()}
    if log:
        log(", ".join(f"{name}: {count}" for name, count in figures.items()))
    return figures
