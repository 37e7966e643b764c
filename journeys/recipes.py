"""Journey recipes: the e-commerce journeys most stores need, one click to create, then editable.

A recipe is the journey (trigger, entry rule, goal, time limit, the steps graph)
and the message templates it sends, with Arabic and English copy.
`create_from_recipe(slug)` makes a **draft** journey with its first version
published; the marketer edits it and activates it. Templates are created only
when their slug is free: a template the marketer already has (and may have
edited) is used as it is, never overwritten. The recipes are described for
marketers in docs/journeys.md ("Recipes").
"""
from dataclasses import dataclass, field

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from delivery.models import TemplateContent

from . import engine
from . import recipe_templates as copy
from .models import EntryRule, Journey, JourneyStatus, TriggerKind

MINUTES_PER_DAY = 24 * 60
EVERY_CHANNEL_BUT_SMS = ["push", "email", "whatsapp"]


class RecipeError(ValueError):
    """The recipe or its options are not usable; `problems` is a list of (path, message), like StepsError."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.problems))


@dataclass(frozen=True)
class Recipe:
    slug: str
    name: object  # lazily translated
    description: object
    build: object  # options -> {"journey": {field: value}, "steps": graph, "templates": [spec, …]}
    options: tuple = field(default=())


def _send(template, channels, following, **extra):
    return {"type": "send", "template": template, "channels": list(channels), "next": following, **extra}


def _wait(following, **amount):
    return {"type": "wait", **amount, "next": following}


EXIT = {"type": "exit"}


# --- The recipes -----------------------------------------------------------------------------------

def _abandoned_cart(options):
    code = options.get("discount_code")
    steps = {
        "wait-15m": _wait("push-cart-saved", minutes=15),
        "push-cart-saved": _send("abandoned-cart-saved", ["push"], "wait-1h"),
        "wait-1h": _wait("reminder", minutes=45),
        # Only for shoppers who agreed to WhatsApp or SMS (the send step checks reachability and consent),
        # and not when they clicked the push.
        "reminder": _send("abandoned-cart", ["whatsapp", "sms"], "wait-4h", unless_clicked=True),
        "wait-4h": _wait("trust", hours=3),
        "trust": _send("abandoned-cart-trust", ["push", "email", "whatsapp"], "wait-24h" if code else "end"),
        "end": EXIT,
    }
    templates = [copy.cart_saved(), copy.STARTER["abandoned-cart"], copy.cart_trust()]
    journey = {"trigger_event": "cart_abandoned", "goal_event": "order_placed", "goal_same_cart": True,
               "time_limit_days": 3, "entry_rule": EntryRule.EVERY_TIME}
    if code:
        offer = copy.cart_offer(code)
        steps["wait-24h"] = _wait("offer", hours=20)
        steps["offer"] = _send(offer["slug"], EVERY_CHANNEL_BUT_SMS, "end")
        templates.append(offer)
        # With a code, abandoning carts is not a way to collect codes: at most once in 30 days.
        journey.update(entry_rule=EntryRule.ONCE_PER_PERIOD, entry_period_days=30)
    return {"journey": journey, "steps": {"start": "wait-15m", "steps": steps}, "templates": templates}


# Viewed a product at least twice today, or stayed a minute on a product page.
KEEN_BROWSER = {"type": "group", "match": "any", "conditions": [
    {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 2, "within_days": 1},
    {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 1, "within_days": 1,
     "properties": [{"property": "seconds_on_page", "operator": "gte", "value": 60}]},
]}


def _browse_abandonment(options):
    steps = {
        "added-to-cart?": {"type": "wait_for_event", "event": "cart_updated", "timeout_minutes": 60,
                           "yes": "end", "no": "keen?"},
        "keen?": {"type": "branch", "condition": {"rules": KEEN_BROWSER}, "yes": "remind", "no": "end"},
        "remind": _send("browse-abandonment", ["push", "email", "inapp"], "end"),
        "end": EXIT,
    }
    return {"journey": {"trigger_event": "product_viewed", "goal_event": "order_placed", "goal_same_cart": False,
                        "time_limit_days": 2, "entry_rule": EntryRule.ONCE_PER_PERIOD, "entry_period_days": 1},
            "steps": {"start": "added-to-cart?", "steps": steps},
            "templates": [copy.browse_abandonment()]}


def _welcome(options):
    channels = ["push", "email", "inapp"]
    steps = {
        "day-0": _send("welcome", channels, "wait-day-2"),
        "wait-day-2": _wait("day-2", days=2),
        "day-2": _send("welcome-story", channels, "wait-day-7"),
        "wait-day-7": _wait("day-7", days=5),
        "day-7": _send("welcome-bestsellers", channels, "wait-day-14"),
        "wait-day-14": _wait("day-14", days=7),
        "day-14": _send("welcome-first-order", channels, "wait-day-30"),
        "wait-day-30": _wait("day-30", days=16),
        "day-30": _send("welcome-check-in", channels, "end"),
        "end": EXIT,
    }
    return {"journey": {"trigger_event": "subscribed", "goal_event": "order_placed", "goal_same_cart": False,
                        "time_limit_days": 31, "entry_rule": EntryRule.ONCE},
            "steps": {"start": "day-0", "steps": steps},
            "templates": [copy.STARTER["welcome"], *copy.welcome_series()]}


def _post_purchase(options):
    steps = {
        "track": _send("order-shipped", ["push", "whatsapp", "sms", "email"], "delivered?", transactional=True),
        "delivered?": {"type": "wait_for_event", "event": "order_delivered", "timeout_minutes": 21 * MINUTES_PER_DAY,
                       "yes": "wait-3d", "no": "end"},
        "wait-3d": _wait("review", days=3),
        "review": _send("order-review", EVERY_CHANNEL_BUT_SMS, "wait-10d"),
        "wait-10d": _wait("complementary", days=7),
        "complementary": _send("order-complementary", ["push", "email", "inapp"], "end"),
        "end": EXIT,
    }
    return {"journey": {"trigger_event": "order_shipped", "goal_event": "", "time_limit_days": 35,
                        "entry_rule": EntryRule.EVERY_TIME},
            "steps": {"start": "track", "steps": steps},
            "templates": [copy.STARTER["order-shipped"], copy.order_review(), copy.order_complementary()]}


def _win_back(options):
    offer, last_chance = copy.win_back(options.get("discount_code"))
    channels = ["push", "email", "whatsapp", "inapp"]
    steps = {
        "offer": _send(offer["slug"], channels, "wait-15d"),
        "wait-15d": _wait("came-back?", days=15),
        # A visit since the offer ends it (the engine also ends an inactivity journey as soon as the shopper is
        # seen again); an order is the goal.
        "came-back?": {"type": "branch", "condition": {"rules": {
            "type": "group", "match": "all", "conditions": [
                {"type": "attribute", "field": "last_seen_at", "operator": "within_last_days", "value": 15}]}},
            "yes": "end", "no": "last-chance"},
        "last-chance": _send(last_chance["slug"], channels, "end"),
        "end": EXIT,
    }
    return {"journey": {"trigger_kind": TriggerKind.INACTIVITY, "trigger_event": "", "trigger": {"days": 30},
                        "goal_event": "order_placed", "goal_same_cart": False, "time_limit_days": 20,
                        "entry_rule": EntryRule.ONCE_PER_PERIOD, "entry_period_days": 90},
            "steps": {"start": "offer", "steps": steps}, "templates": [offer, last_chance]}


def _birthday(options):
    greeting = copy.birthday(options.get("discount_code"))
    return {"journey": {"trigger_kind": TriggerKind.DATE_ATTRIBUTE, "trigger_event": "",
                        "trigger": {"attribute": "birthday", "offset_days": 0, "local_time": "10:00"},
                        "goal_event": "", "time_limit_days": 2, "entry_rule": EntryRule.ONCE_PER_PERIOD,
                        "entry_period_days": 300},
            "steps": {"start": "greet", "steps": {
                "greet": _send(greeting["slug"], ["push", "whatsapp", "email", "inapp"], "end"), "end": EXIT}},
            "templates": [greeting]}


def _catalog(event, template, channels):
    def build(options):
        spec = copy.STARTER.get(template) or copy.price_drop()
        return {"journey": {"trigger_event": event, "goal_event": "order_placed", "goal_same_cart": False,
                            "time_limit_days": 2, "entry_rule": EntryRule.EVERY_TIME},
                "steps": {"start": "tell", "steps": {
                    "tell": _send(template, channels, "end"), "end": EXIT}},
                "templates": [spec]}
    return build


RECIPES = {recipe.slug: recipe for recipe in [
    Recipe("abandoned-cart", gettext_lazy("Abandoned cart"), gettext_lazy(
        "A push at 15 minutes with the cart's product and a restore link; WhatsApp or SMS at an hour for shoppers "
        "who agreed and did not click; a reason to trust at 4 hours; a limited-time code at 24 hours if you give "
        "one. Ends when the cart is bought."), _abandoned_cart, options=("discount_code",)),
    Recipe("browse-abandonment", gettext_lazy("Browse abandonment"), gettext_lazy(
        "A shopper who viewed a product twice today or stayed a minute on it, and added nothing to a cart "
        "within the hour, is reminded of it once."), _browse_abandonment),
    Recipe("welcome", gettext_lazy("Welcome series"), gettext_lazy(
        "On subscribing: a welcome, then messages on days 2, 7, 14 and 30. The first order ends it."), _welcome),
    Recipe("post-purchase", gettext_lazy("Post-purchase"), gettext_lazy(
        "Order shipped: track your order. Delivered + 3 days: a 30-second review request. Delivered + 10 days: "
        "products that go with it."), _post_purchase),
    Recipe("win-back", gettext_lazy("Win-back"), gettext_lazy(
        "After 30 days without a visit: an offer; at 45 days: a last chance. A visit or an order ends it."),
        _win_back, options=("discount_code",)),
    Recipe("birthday", gettext_lazy("Birthday"), gettext_lazy(
        "A greeting at 10:00 the shopper's time on their birthday, with a gift code if you give one."),
        _birthday, options=("discount_code",)),
    Recipe("price-drop", gettext_lazy("Price drop"), gettext_lazy(
        "When the store sends price_dropped for a shopper who showed interest: the new price, at once."),
        _catalog("price_dropped", "price-drop", ["push", "whatsapp", "email"])),
    Recipe("back-in-stock", gettext_lazy("Back in stock"), gettext_lazy(
        "When the store sends back_in_stock for a shopper who asked: the product is back, at once."),
        _catalog("back_in_stock", "back-in-stock", ["push", "sms", "email"])),
]}


def _checked_options(recipe, options):
    options = dict(options or {})
    problems = [(f"options.{name}", _("%(recipe)s has no option %(name)s.") % {"recipe": recipe.slug, "name": name})
                for name in options if name not in recipe.options]
    code = options.get("discount_code")
    if code in (None, ""):
        options.pop("discount_code", None)
    elif not isinstance(code, str) or not copy.DISCOUNT_CODE.fullmatch(code):
        problems.append(("options.discount_code",
                         _("a code is 1–30 letters, digits, '-' or '_', starting with a letter or digit.")))
    if problems:
        raise RecipeError(problems)
    return options


def build(slug, options=None):
    """The journey fields, steps and template specs the recipe `slug` makes with `options`."""
    recipe = RECIPES.get(slug)
    if recipe is None:
        raise RecipeError([("recipe", _("there is no recipe %(slug)s.") % {"slug": slug})])
    return recipe, recipe.build(_checked_options(recipe, options))


def _free_name(name):
    taken = set(Journey.objects.filter(name__startswith=name).values_list("name", flat=True))
    if name not in taken:
        return name
    number = 2
    while f"{name} ({number})" in taken:
        number += 1
    return f"{name} ({number})"


def _keep_channels_with_content(graph):
    """A template the store already had may lack a channel the recipe sends on: the step leaves it out rather
    than choose it for a shopper and fail to render (a step left with no channel keeps its list, and says so
    when sending)."""
    for step in graph["steps"].values():
        if step["type"] != "send":
            continue
        has = set(TemplateContent.objects.filter(template__slug=step["template"]).values_list("channel", flat=True))
        kept = [channel for channel in step["channels"] if channel in has]
        if kept:
            step["channels"] = kept


@transaction.atomic
def create_from_recipe(slug, *, by=None, options=None):
    """A draft journey made from the recipe, its first version published; -> Journey.

    The templates it sends are created when their slug is free and left alone
    when the store already has them. Raises RecipeError for an unknown recipe or
    a bad option.
    """
    recipe, made = build(slug, options)
    copy.ensure_templates(made["templates"])
    _keep_channels_with_content(made["steps"])
    fields = {"trigger_kind": TriggerKind.EVENT, **made["journey"]}
    journey = Journey.objects.create(
        name=_free_name(str(recipe.name)), description=str(recipe.description), recipe=recipe.slug,
        status=JourneyStatus.DRAFT, created_by=by, **fields)
    engine.publish(journey, made["steps"])
    return journey


def activate(journey):
    """Make a journey live (the event triggers hear of it at once in this process)."""
    Journey.objects.filter(pk=journey.pk).update(status=JourneyStatus.ACTIVE)
    journey.status = JourneyStatus.ACTIVE
    engine.forget_interest()
    return journey
