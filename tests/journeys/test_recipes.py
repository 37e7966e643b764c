"""Journey recipes: each makes a draft journey that validates and templates that read well in Arabic and English;
the abandoned-cart recipe runs end to end through the engine, with time travel and the real push service."""
import json
import re
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone, translation

from delivery.models import Message, MessageTemplate, TemplateContent
from delivery.rendering import render_content, render_sample, sample_shopper, validate_content
from journeys import engine, recipes, tasks
from journeys.models import Enrolment, Journey, StepRun
from subscribers import services as subscriber_services
from subscribers.models import Channel, Source
from tests.factories import make_subscriber, push_keys
from tests.delivery.test_webpush_outbox import browser  # noqa: F401 - fixture: a browser on the real push service
from tests.journeys.test_journey_engine import on_commit, sandbox  # noqa: F401 - fixtures: sandbox channels, on_commit
from tests.peers import web_push_service  # noqa: F401 - fixture: the push service emulator

pytestmark = pytest.mark.django_db

ARABIC = re.compile(r"[\u0600-\u06FF]")
# Every recipe, and those with a discount code once more with one.
MADE = [(slug, {}) for slug in recipes.RECIPES] + [
    (slug, {"discount_code": "SAVE10"})
    for slug, recipe in recipes.RECIPES.items() if "discount_code" in recipe.options]


def sends(journey):
    return [step for step in journey.current_version.steps["steps"].values() if step["type"] == "send"]


def tick_at(moment, on_commit):
    with time_machine.travel(moment, tick=False):
        return on_commit(tasks.tick)


def record(subscriber, name, on_commit, **properties):
    return on_commit(subscriber_services.record_event, subscriber=subscriber, name=name, properties=properties)


def messages(subscriber):
    return list(Message.objects.filter(subscriber=subscriber, source_type="journey_step").order_by("pk"))


def activated(slug, **options):
    return recipes.activate(recipes.create_from_recipe(slug, options=options))


def abandon(subscriber, on_commit, cart_id="sc-1", at=None):
    """The storefront reports a cart; the abandonment check runs 31 minutes later and records cart_abandoned."""
    record(subscriber, "cart_updated", on_commit, cart_id=cart_id, value="249.00", currency="SAR", items=[
        {"product_id": "p1", "title": "Running shoes", "price": "249.00", "quantity": 1,
         "image": "https://shop.example/img/shoes.jpg", "url": "https://shop.example/p/shoes"}])
    later = (at or timezone.now()) + timedelta(minutes=31)
    with time_machine.travel(later, tick=False):
        on_commit(subscriber_services.detect_abandoned_carts, now=later)
    return later


# --- Every recipe --------------------------------------------------------------------------------

@pytest.mark.parametrize(("slug", "options"), MADE)
def test_every_recipe_creates_a_draft_journey_whose_steps_validate_and_whose_templates_have_every_channel_it_sends_on(
        slug, options):
    journey = recipes.create_from_recipe(slug, options=options)

    journey.refresh_from_db()
    assert journey.status == "draft" and journey.recipe == slug and journey.current_version.number == 1
    engine.validate_steps(journey.current_version.steps)
    assert sends(journey)
    for step in sends(journey):
        template = MessageTemplate.objects.get(slug=step["template"])
        for channel in step["channels"]:
            locales = set(template.contents.filter(channel=channel).values_list("locale", flat=True))
            assert locales == {"ar", "en"}, (step["template"], channel)


@pytest.mark.parametrize(("slug", "options"), MADE)
def test_every_recipe_template_renders_in_arabic_and_in_english_for_a_sample_shopper_and_for_one_without_a_name(
        slug, options):
    journey = recipes.create_from_recipe(slug, options=options)

    for template in MessageTemplate.objects.filter(slug__in=[step["template"] for step in sends(journey)]):
        for content in template.contents.all():
            validate_content(content)  # only variables templates know, and Liquid that parses
            rendered = render_sample(template=template, channel=content.channel, locale=content.locale)
            text = json.dumps(rendered, ensure_ascii=False)
            assert "{{" not in text and "{%" not in text
            # The Arabic copy is Arabic and the English copy is not.
            visible = " ".join(str(rendered.get(key, "")) for key in ("title", "body", "subject"))
            assert bool(ARABIC.search(visible)) == (content.locale == "ar"), (template.slug, content.channel)
            anonymous = sample_shopper(content.locale)
            for key in ("first_name", "last_name", "full_name"):
                anonymous.pop(key)
            assert render_content(content, anonymous)


def test_the_abandoned_cart_push_says_the_cart_is_saved_with_the_product_its_image_and_the_restore_link():
    recipes.create_from_recipe("abandoned-cart")

    template = MessageTemplate.objects.get(slug="abandoned-cart-saved")
    arabic = render_sample(template=template, channel="push", locale="ar")
    english = render_sample(template=template, channel="push", locale="en")

    cart = sample_shopper("en")["cart"]
    assert english["title"] == "Your cart is saved, Nora 🛒"
    assert english["body"] == "Linen abaya and more — finish your order in a minute."
    assert arabic["title"] == "سلتك محفوظة يا نورة 🛒"
    assert arabic["body"].startswith("عباية كتان وغيرها بانتظارك")
    for push in (arabic, english):
        assert push["image"] == cart["items"][0]["image"]
        assert push["url"] == cart["restore_url"] == push["actions"][0]["url"]


def test_an_unknown_recipe_or_a_bad_option_is_refused_naming_the_field():
    with pytest.raises(recipes.RecipeError) as unknown:
        recipes.create_from_recipe("black-friday")
    assert unknown.value.problems[0][0] == "recipe"

    with pytest.raises(recipes.RecipeError) as bad_code:
        recipes.create_from_recipe("abandoned-cart", options={"discount_code": 'SAVE" }}{{ x'})
    assert [path for path, _ in bad_code.value.problems] == ["options.discount_code"]

    with pytest.raises(recipes.RecipeError) as not_an_option:
        recipes.create_from_recipe("welcome", options={"discount_code": "SAVE10"})
    assert [path for path, _ in not_an_option.value.problems] == ["options.discount_code"]
    assert not Journey.objects.exists() and not MessageTemplate.objects.exists()


# --- Templates: created once, never overwritten --------------------------------------------------

def test_creating_a_recipe_twice_makes_two_journeys_but_no_second_copy_of_its_templates():
    with translation.override("en"):  # the journey is named in the marketer's language
        first = recipes.create_from_recipe("abandoned-cart")
        templates = MessageTemplate.objects.count()
        contents = TemplateContent.objects.count()

        second = recipes.create_from_recipe("abandoned-cart")

    assert MessageTemplate.objects.count() == templates and TemplateContent.objects.count() == contents
    assert (first.name, second.name) == ("Abandoned cart", "Abandoned cart (2)")
    assert second.current_version.steps == first.current_version.steps


def test_a_marketers_own_template_with_the_same_slug_is_used_as_it_is():
    mine = MessageTemplate.objects.create(slug="abandoned-cart-saved", name="My cart reminder")
    TemplateContent.objects.create(template=mine, channel="push", locale="en", title="Come back!",
                                   body="{{ cart.restore_url }}")

    journey = recipes.create_from_recipe("abandoned-cart")

    mine.refresh_from_db()
    assert mine.name == "My cart reminder"
    assert list(mine.contents.values_list("locale", "title")) == [("en", "Come back!")]
    assert sends(journey)[0]["template"] == "abandoned-cart-saved"


def test_a_step_does_not_send_on_a_channel_the_stores_own_template_has_no_copy_for():
    mine = MessageTemplate.objects.create(slug="abandoned-cart", name="Our cart reminder")
    TemplateContent.objects.create(template=mine, channel="sms", locale="ar",
                                   body="سلتك بانتظارك {{ cart.restore_url }}")

    journey = recipes.create_from_recipe("abandoned-cart")

    reminder = journey.current_version.steps["steps"]["reminder"]
    assert reminder["template"] == "abandoned-cart" and reminder["channels"] == ["sms"]


def test_two_journeys_with_different_discount_codes_each_send_their_own_code():
    first = recipes.create_from_recipe("abandoned-cart", options={"discount_code": "SAVE10"})
    second = recipes.create_from_recipe("abandoned-cart", options={"discount_code": "EID15"})

    offers = [sends(journey)[-1]["template"] for journey in (first, second)]
    assert offers == ["abandoned-cart-offer-save10", "abandoned-cart-offer-eid15"]
    for slug, code in zip(offers, ("SAVE10", "EID15")):
        template = MessageTemplate.objects.get(slug=slug)
        for locale in ("ar", "en"):
            rendered = render_sample(template=template, channel="push", locale=locale,
                                     sample_context={"discount_code": ""})
            assert code in rendered["body"]
    # A code the store puts in the event (one per cart) wins over the journey's.
    rendered = render_sample(template=MessageTemplate.objects.get(slug=offers[0]), channel="push", locale="en",
                             sample_context={"discount_code": "CART-7F3A"})
    assert "CART-7F3A" in rendered["body"] and "SAVE10" not in rendered["body"]


def test_without_a_discount_code_the_abandoned_cart_recipe_ends_after_the_4_hour_message():
    journey = recipes.create_from_recipe("abandoned-cart")

    steps = journey.current_version.steps["steps"]
    assert steps["trust"]["next"] == "end"
    assert [step["template"] for step in sends(journey)] == ["abandoned-cart-saved", "abandoned-cart",
                                                            "abandoned-cart-trust"]
    assert not MessageTemplate.objects.filter(slug__startswith="abandoned-cart-offer").exists()


# --- The abandoned cart, end to end --------------------------------------------------------------

def test_the_recipe_pushes_an_abandoned_cart_at_15_minutes_sends_no_sms_without_consent_and_the_order_converts(
        browser, web_push_service, on_commit):  # noqa: F811
    subscription, client_hash = browser
    layla = subscription.subscriber  # an Arabic-speaking shopper whose name the store did not give
    journey = activated("abandoned-cart")

    abandoned_at = abandon(layla, on_commit)
    enrolment = Enrolment.objects.get(journey=journey, subscriber=layla)
    tick_at(abandoned_at + timedelta(minutes=14), on_commit)
    assert messages(layla) == [] and web_push_service.messages(client_hash) == []

    tick_at(abandoned_at + timedelta(minutes=15, seconds=5), on_commit)
    [push] = messages(layla)
    assert push.channel == "push" and push.status == "sent"
    [received] = web_push_service.messages(client_hash)
    payload = json.loads(received)
    restore_url = enrolment.context["restore_url"]
    assert payload["title"] == "سلتك محفوظة 🛒"
    assert payload["body"] == "Running shoes بانتظارك — كمّل طلبك بدقيقة وحدة."
    assert payload["image"] == "https://shop.example/img/shoes.jpg"
    assert payload["url"] == restore_url and payload["actions"][0]["url"] == restore_url

    tick_at(abandoned_at + timedelta(minutes=61), on_commit)
    assert [m.channel for m in messages(layla)] == ["push"]  # no WhatsApp or SMS consent: nothing
    assert StepRun.objects.get(enrolment=enrolment, step="reminder").outcome == "unreachable"

    with time_machine.travel(abandoned_at + timedelta(hours=2), tick=False):
        record(layla, "order_placed", on_commit, order_id="o-1", cart_id="sc-1", value="249.00")
    tick_at(abandoned_at + timedelta(days=2), on_commit)

    enrolment.refresh_from_db()
    assert enrolment.status == "converted" and enrolment.exit_reason == "goal: order_placed"
    assert [m.channel for m in messages(layla)] == ["push"]  # the 4-hour message never went
    assert web_push_service.messages(client_hash) == [received]  # nothing more reached the browser


def shopper(n=1, *, sms=False, push=False, email=False):
    subscriber = make_subscriber(f"r-{n}", phone=f"+9665{n:08d}", email=f"r{n}@example.com", locale="ar",
                                 timezone="Asia/Riyadh")
    for wanted, channel in ((sms, Channel.SMS), (email, Channel.EMAIL)):
        if wanted:
            subscriber_services.grant_consent(subscriber=subscriber, channel=channel, source=Source.API)
    if push:
        subscriber_services.register_push_subscription(
            subscriber=subscriber, endpoint=f"https://fcm.googleapis.com/fcm/send/r{n}", **push_keys())
    return subscriber


def test_with_a_discount_code_a_shopper_who_never_clicks_hears_at_15_minutes_1_hour_4_hours_and_24_hours(on_commit):
    activated("abandoned-cart", discount_code="SAVE10")
    noura = shopper(sms=True, push=True, email=True)
    abandoned_at = abandon(noura, on_commit)

    for minutes in (16, 61, 4 * 60 + 1, 23 * 60):
        tick_at(abandoned_at + timedelta(minutes=minutes), on_commit)
    assert [m.channel for m in messages(noura)] == ["push", "sms", "push"]

    tick_at(abandoned_at + timedelta(hours=24, minutes=1), on_commit)
    sent = messages(noura)
    assert [m.channel for m in sent] == ["push", "sms", "push", "push"]
    assert sent[1].content["body"].startswith("مرحباً، سلتك بانتظارك")
    assert "توصيل مجاني" in sent[2].content["body"]
    assert "SAVE10" in sent[3].content["body"]
    assert Enrolment.objects.get(subscriber=noura).status == "completed"


def test_a_shopper_who_clicked_the_push_gets_no_whatsapp_or_sms_at_the_hour(on_commit):
    activated("abandoned-cart")
    noura = shopper(sms=True, push=True)
    abandoned_at = abandon(noura, on_commit)
    tick_at(abandoned_at + timedelta(minutes=16), on_commit)
    Message.objects.filter(subscriber=noura).update(clicked_at=timezone.now())

    tick_at(abandoned_at + timedelta(minutes=61), on_commit)

    assert [m.channel for m in messages(noura)] == ["push"]
    assert StepRun.objects.get(step="reminder").outcome == "skipped_clicked"


# --- Other recipes through the engine ------------------------------------------------------------

def test_the_welcome_series_sends_on_days_0_2_7_14_and_30_and_a_second_subscription_starts_no_second_series(
        on_commit):
    activated("welcome")
    start = timezone.now()
    huda = shopper(push=True)
    with time_machine.travel(start, tick=False):
        record(huda, "subscribed", on_commit, channel="push")
        record(huda, "subscribed", on_commit, channel="email")  # a second channel: still one series
    assert [m.template.slug for m in messages(huda)] == ["welcome"]

    for day in (1, 2, 6, 7, 13, 14, 29, 30):
        tick_at(start + timedelta(days=day, minutes=1), on_commit)
    assert [m.template.slug for m in messages(huda)] == [
        "welcome", "welcome-story", "welcome-bestsellers", "welcome-first-order", "welcome-check-in"]
    assert Enrolment.objects.filter(subscriber=huda).count() == 1


def test_a_browsing_shopper_who_kept_looking_is_reminded_of_the_product_and_one_who_added_it_to_a_cart_is_not(
        on_commit):
    activated("browse-abandonment")
    start = timezone.now()
    product = {"product_id": "abaya-1", "title": "Linen abaya", "url": "https://shop.example/p/abaya",
               "image": "https://shop.example/img/abaya.jpg", "price": "349.00", "currency": "SAR"}
    keen, decided, glance = shopper(1, push=True), shopper(2, push=True), shopper(3, push=True)
    with time_machine.travel(start, tick=False):
        for who in (keen, decided):
            record(who, "product_viewed", on_commit, **product)
            record(who, "product_viewed", on_commit, **product)
        record(glance, "product_viewed", on_commit, **product)
        record(decided, "cart_updated", on_commit, cart_id="c-2", items=[{**product, "quantity": 1}])

    tick_at(start + timedelta(minutes=61), on_commit)

    assert [m.template.slug for m in messages(keen)] == ["browse-abandonment"]
    assert messages(decided) == [] and messages(glance) == []


def test_post_purchase_tracks_the_order_asks_for_a_review_3_days_after_delivery_and_suggests_more_at_10(on_commit):
    activated("post-purchase")
    start = timezone.now()
    sara = shopper(push=True)
    with time_machine.travel(start, tick=False):
        record(sara, "order_placed", on_commit, order_id="o-9", value="120.00",
               items=[{"product_id": "scarf", "title": "Silk scarf", "price": "120.00",
                       "url": "https://shop.example/p/scarf"}])
        record(sara, "order_shipped", on_commit, order_id="o-9")
    assert [m.template.slug for m in messages(sara)] == ["order-shipped"]

    delivered = start + timedelta(days=2)
    with time_machine.travel(delivered, tick=False):
        record(sara, "order_delivered", on_commit, order_id="o-9")
    for day in (2, 3, 9, 10):
        tick_at(delivered + timedelta(days=day, minutes=1), on_commit)

    sent = messages(sara)
    assert [m.template.slug for m in sent] == ["order-shipped", "order-review", "order-complementary"]
    assert "Silk scarf" in sent[1].content["body"]
    assert sent[1].content["url"] == "https://shop.example/p/scarf"


def test_a_price_drop_from_the_store_tells_the_shopper_the_new_and_the_old_price(on_commit):
    activated("price-drop")
    reem = shopper(push=True)

    record(reem, "price_dropped", on_commit, product_id="abaya-1", product={
        "title": "عباية كتان", "url": "https://shop.example/p/abaya", "image": "https://shop.example/img/abaya.jpg",
        "price": "299.00", "old_price": "349.00", "currency": "SAR"})

    [push] = messages(reem)
    assert push.content["title"] == "نزل السعر: عباية كتان 📉"
    assert push.content["body"].startswith("كان 349.00 وصار 299.00 SAR")


# --- The command the demo runs ---------------------------------------------------------------------

def test_the_command_creates_the_active_abandoned_cart_journey_once_with_if_missing():
    out = StringIO()
    call_command("create_journey_from_recipe", "abandoned-cart", "--activate", "--if-missing", stdout=out)
    call_command("create_journey_from_recipe", "abandoned-cart", "--activate", "--if-missing", stdout=out)

    [journey] = Journey.objects.all()
    assert journey.status == "active" and journey.recipe == "abandoned-cart"
    assert "already" in out.getvalue()
    assert "cart_abandoned" in engine.interesting_event_names()


def test_the_command_names_a_bad_option():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="options.discount_code"):
        call_command("create_journey_from_recipe", "abandoned-cart", "--discount-code", "no spaces please")


def test_win_back_offers_at_30_days_away_gives_a_last_chance_at_45_and_a_visit_in_between_ends_it(on_commit):
    from subscribers.models import Subscriber

    activated("win-back", discount_code="MISSYOU")
    start = timezone.now()
    away, back = shopper(1, push=True), shopper(2, push=True)
    Subscriber.objects.filter(pk__in=[away.pk, back.pk]).update(last_seen_at=start - timedelta(days=30, minutes=1))

    with time_machine.travel(start, tick=False):
        on_commit(engine.scan_triggers, start)
        tick_at(start, on_commit)
    assert [m.template.slug for m in messages(away)] == ["win-back-offer-missyou"]
    assert "MISSYOU" in messages(away)[0].content["body"]

    with time_machine.travel(start + timedelta(days=3), tick=False):
        record(back, "product_viewed", on_commit, product_id="p1", title="Linen abaya")
    tick_at(start + timedelta(days=15, minutes=1), on_commit)

    assert [m.template.slug for m in messages(away)] == ["win-back-offer-missyou", "win-back-last-chance-missyou"]
    assert [m.template.slug for m in messages(back)] == ["win-back-offer-missyou"]
    assert Enrolment.objects.get(subscriber=back).status != "active"


def test_the_birthday_greeting_with_its_gift_code_goes_at_10_in_the_shoppers_own_time(on_commit):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from subscribers.models import Subscriber

    activated("birthday", discount_code="BDAY20")
    riyadh = ZoneInfo("Asia/Riyadh")
    dawn = datetime(2026, 12, 3, 6, 0, tzinfo=riyadh)
    maha = shopper(push=True)
    Subscriber.objects.filter(pk=maha.pk).update(birthday=datetime(1995, 12, 3).date())

    with time_machine.travel(dawn, tick=False):
        on_commit(engine.scan_triggers, dawn)
    tick_at(datetime(2026, 12, 3, 9, 59, tzinfo=riyadh), on_commit)
    assert messages(maha) == []

    tick_at(datetime(2026, 12, 3, 10, 0, 30, tzinfo=riyadh), on_commit)
    [greeting] = messages(maha)
    assert greeting.content["title"] == "كل عام وأنت بخير 🎂"
    assert "BDAY20" in greeting.content["body"]
