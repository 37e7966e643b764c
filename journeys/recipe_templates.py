"""The message templates the journey recipes send, in Arabic and English.

Each is a spec in the form of delivery.starter_templates (slug, name,
description, is_transactional, contents); `ensure_templates` creates the ones
whose slug does not exist yet and never touches a template a marketer already
has under that slug. Recipes also reuse three starter templates as they are
(abandoned-cart, order-shipped, back-in-stock).

A template that offers a discount code names it in its slug
(`abandoned-cart-offer-save10`): the code is the Liquid default of
`{{ discount_code }}`, so a code the store puts in the triggering event (one per
cart, say) wins, and two journeys made with different codes never share (or
overwrite) one template.
"""
import re

from django.db import transaction

from delivery.models import MessageTemplate, TemplateContent
from delivery.starter_templates import _BUTTON, _CART_LINES_AR, _CART_LINES_EN, STARTER_TEMPLATES, _email_ar, \
    _email_en

# What a marketer may type as a code: it ends up inside a Liquid string and a slug.
DISCOUNT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,29}")

STARTER = {spec["slug"]: spec for spec in STARTER_TEMPLATES}


def code_variable(code):
    """`{{ discount_code }}` falling back to the code the marketer chose for the journey."""
    return '{{ discount_code | default: "%s" }}' % code


def coded_slug(slug, code):
    return f"{slug}-{code.lower()}" if code else slug


def simple_template(slug, name, description, *, url, ar, en, image_of="", tag="",
                    channels=("push", "email", "inapp"), email_extra_ar="", email_extra_en=""):
    """A template whose channels say the same thing: a title, a line of text, one button to `url`.

    `ar` / `en` hold title, body and button (and optionally subject and text, the
    SMS / WhatsApp wording, which defaults to the title and body and the link).
    `image_of` names the variable holding the picture (`cart.items[0].image`);
    without a picture the push and the in-app message go without, the email too.
    """
    image = '{{ %s | default: "" }}' % image_of if image_of else ""
    picture = (f'{{% if {image_of} %}}<p><img src="{{{{ {image_of} }}}}" alt="" width="280"></p>{{% endif %}}'
               if image_of else "")
    contents = []
    for locale, copy in (("ar", ar), ("en", en)):
        wrap, extra = (_email_ar, email_extra_ar) if locale == "ar" else (_email_en, email_extra_en)
        text = copy.get("text") or f"{copy['title']}\n{copy['body']}\n{url}"
        for channel in channels:
            if channel == "push":
                contents.append({"channel": "push", "locale": locale, "title": copy["title"], "body": copy["body"],
                                 "image": image, "click_url": url, "tag": tag or slug,
                                 "actions": [{"action": "open", "title": copy["button"], "url": url}]})
            elif channel == "email":
                contents.append({"channel": "email", "locale": locale, "subject": copy.get("subject") or copy["title"],
                                 "html_body": wrap(f"<h1>{copy['title']}</h1>{picture}<p>{copy['body']}</p>{extra}"
                                                   + _BUTTON.format(url=url, label=copy["button"]))})
            elif channel == "inapp":
                contents.append({"channel": "inapp", "locale": locale, "title": copy["title"], "body": copy["body"],
                                 "image": image, "button_label": copy["button"], "button_url": url,
                                 "placement": "banner"})
            else:  # sms, whatsapp
                contents.append({"channel": channel, "locale": locale, "body": text})
    return {"slug": slug, "name": name, "description": description, "is_transactional": False,
            "contents": contents}


# --- Abandoned cart ------------------------------------------------------------------------------

FIRST_ITEM_AR = "{{ cart.items[0].title | default: \"منتجاتك\" }}"
FIRST_ITEM_EN = "{{ cart.items[0].title | default: \"Your picks\" }}"
CART_TABLE_AR = f'<table style="width:100%">{_CART_LINES_AR}</table>'
CART_TABLE_EN = f'<table style="width:100%">{_CART_LINES_EN}</table>'


def cart_saved():
    return simple_template(
        "abandoned-cart-saved", "Cart saved (15 min) · سلتك محفوظة",
        "Abandoned cart, first reminder: the cart is saved, one tap restores it. Needs `cart`.",
        url="{{ cart.restore_url }}", image_of="cart.items[0].image", tag="abandoned-cart",
        channels=("push", "inapp"),
        ar={"title": 'سلتك محفوظة{% if first_name %} يا {{ first_name }}{% endif %} 🛒',
            "body": FIRST_ITEM_AR + "{% if cart.item_count > 1 %} وغيرها{% endif %} بانتظارك — "
                                    "كمّل طلبك بدقيقة وحدة.",
            "button": "كمّل الطلب"},
        en={"title": "Your cart is saved{% if first_name %}, {{ first_name }}{% endif %} 🛒",
            "body": FIRST_ITEM_EN + "{% if cart.item_count > 1 %} and more{% endif %} — "
                                    "finish your order in a minute.",
            "button": "Finish my order"})


def cart_trust():
    return simple_template(
        "abandoned-cart-trust", "Cart: shop with confidence (4 h) · تسوّق وأنت مطمئن",
        "Abandoned cart, third message: a reason to trust the store. Edit it to say what your store really "
        "offers (delivery, guarantee, returns). Needs `cart`.",
        url="{{ cart.restore_url }}", image_of="cart.items[0].image", tag="abandoned-cart",
        channels=("push", "email", "whatsapp"),
        email_extra_ar=CART_TABLE_AR, email_extra_en=CART_TABLE_EN,
        ar={"title": "تسوّق وأنت مطمئن ✅", "subject": "سلتك للحين محفوظة — وطلبك بأمان معنا",
            "body": "توصيل مجاني، دفع آمن، واسترجاع سهل إذا ما ناسبك. سلتك للحين محفوظة.",
            "text": "سلتك للحين محفوظة ✅\nالتوصيل مجاني، الدفع آمن، والاسترجاع سهل إذا ما ناسبك.\n"
                    "كمّل طلبك من هنا: {{ cart.restore_url }}",
            "button": "ارجع لسلتك"},
        en={"title": "Shop with peace of mind ✅", "subject": "Your cart is still saved — and you're in safe hands",
            "body": "Free delivery, secure payment and easy returns if it's not right. Your cart is still saved.",
            "text": "Your cart is still saved ✅\nFree delivery, secure payment and easy returns if it's not right.\n"
                    "Finish your order here: {{ cart.restore_url }}",
            "button": "Back to my cart"})


def cart_offer(code):
    discount = code_variable(code)
    return simple_template(
        coded_slug("abandoned-cart-offer", code), f"Cart: limited-time code {code} (24 h) · كود خصم لسلتك",
        f"Abandoned cart, last message: a limited-time discount code ({code}, or the event's `discount_code`). "
        "Needs `cart`.",
        url="{{ cart.restore_url }}", image_of="cart.items[0].image", tag="abandoned-cart",
        channels=("push", "email", "whatsapp", "sms"),
        email_extra_ar=CART_TABLE_AR, email_extra_en=CART_TABLE_EN,
        ar={"title": "هدية لسلتك 🎁", "subject": f"كود خصم لسلتك: {discount}",
            "body": f"استخدم الكود {discount} عند الدفع — العرض لفترة محدودة.",
            "text": f"هدية لسلتك 🎁 استخدم الكود {discount} عند الدفع، العرض لفترة محدودة: {{{{ cart.restore_url }}}}",
            "button": "استخدم الكود"},
        en={"title": "A little something for your cart 🎁", "subject": f"A code for your cart: {discount}",
            "body": f"Use the code {discount} at checkout — it's only here for a limited time.",
            "text": f"A little something for your cart 🎁 Use {discount} at checkout, for a limited time: "
                    "{{ cart.restore_url }}",
            "button": "Use my code"})


# --- Browsing, catalog events --------------------------------------------------------------------

PRODUCT_URL = "{{ product.url | default: shop_url }}"


def browse_abandonment():
    return simple_template(
        "browse-abandonment", "Still thinking about it? · للحين تفكر فيه؟",
        "Browse abandonment: the product the shopper kept looking at. Uses `product` when the event carries it.",
        url=PRODUCT_URL, image_of="product.image", tag="browse",
        ar={"title": 'للحين تفكر في {{ product.title | default: "اللي شفته" }}؟ 👀',
            "body": "المنتج للحين متوفر — ارجع له واطلبه بخطوات بسيطة.", "button": "شوفه مرة ثانية"},
        en={"title": 'Still thinking about {{ product.title | default: "it" }}? 👀',
            "body": "It's still here — take another look and order in a few taps.", "button": "Take another look"})


def price_drop():
    price_ar = ("{% if product.old_price %}كان {{ product.old_price }} وصار {{ product.price }}{% else %}"
                "صار بـ {{ product.price }}{% endif %} {{ product.currency | default: \"ر.س\" }}")
    price_en = ("Now {{ product.price }} {{ product.currency | default: \"SAR\" }}"
                "{% if product.old_price %} (was {{ product.old_price }}){% endif %}")
    return simple_template(
        "price-drop", "Price drop · نزل السعر",
        "Sent on `price_dropped` from the store: needs `product` (title, url, image, price, optional old_price).",
        url="{{ product.url }}", image_of="product.image", tag="price-{{ product.url }}",
        channels=("push", "email", "whatsapp", "inapp"),
        ar={"title": "نزل السعر: {{ product.title }} 📉", "body": f"{price_ar} — الحقه قبل لا يخلص.",
            "button": "اطلبه الحين"},
        en={"title": "Price drop: {{ product.title }} 📉", "body": f"{price_en} — grab it while it lasts.",
            "button": "Get it now"})


# --- Welcome series ------------------------------------------------------------------------------

def welcome_series():
    shop = "{{ shop_url }}"
    return [
        simple_template(
            "welcome-story", "Welcome, day 2: who we are · تعرّف علينا",
            "Welcome series, day 2: what the store stands for. Edit it to tell your own story.",
            url=shop, tag="welcome",
            ar={"title": "حيّاك معنا 🤍", "subject": "حيّاك معنا — هذا اللي يميزنا",
                "body": "نختار كل منتج بعناية، ونوصله لباب بيتك بسرعة. تعرّف علينا أكثر.", "button": "تعرّف علينا"},
            en={"title": "Good to have you with us 🤍", "subject": "Good to have you — here's what we're about",
                "body": "We pick every product with care and get it to your door fast. Get to know us.",
                "button": "Get to know us"}),
        simple_template(
            "welcome-bestsellers", "Welcome, day 7: most loved · الأكثر طلباً",
            "Welcome series, day 7: the products shoppers love most.",
            url=shop, tag="welcome",
            ar={"title": "الأكثر طلباً هالأسبوع 🔥",
                "body": "شوف وش يحبون عملاؤنا — يمكن تلقى فيها شي يعجبك.", "button": "تصفّح الأكثر طلباً"},
            en={"title": "This week's most loved 🔥",
                "body": "See what our shoppers love most — your next favourite might be there.",
                "button": "See the favourites"}),
        simple_template(
            "welcome-first-order", "Welcome, day 14: your first order · طلبك الأول",
            "Welcome series, day 14: a nudge towards the first order (offers `discount_code` when there is one).",
            url=shop, tag="welcome",
            ar={"title": '{% if first_name %}يا {{ first_name }}، {% endif %}طلبك الأول بانتظارك 🛍️',
                "body": "{% if discount_code %}الكود {{ discount_code }} للحين بانتظارك.{% else %}"
                        "التوصيل سريع والدفع آمن والاسترجاع سهل.{% endif %}",
                "button": "ابدأ التسوّق"},
            en={"title": "Ready for your first order{% if first_name %}, {{ first_name }}{% endif %}? 🛍️",
                "body": "{% if discount_code %}Your code {{ discount_code }} is still waiting for you.{% else %}"
                        "Fast delivery, secure payment and easy returns.{% endif %}",
                "button": "Start shopping"}),
        simple_template(
            "welcome-check-in", "Welcome, day 30: a month with us · شهر معنا",
            "Welcome series, day 30: thanks, and what the shopper would like to see.",
            url=shop, tag="welcome",
            ar={"title": "صار لك شهر معنا 🎉",
                "body": "شكراً إنك معنا. وش تحب تشوف عندنا أكثر؟ رأيك يهمنا.", "button": "شاركنا رأيك"},
            en={"title": "A month with us already 🎉",
                "body": "Thanks for being here. What would you love to see more of? We're listening.",
                "button": "Tell us"}),
    ]


# --- After a purchase ------------------------------------------------------------------------------

FIRST_ORDERED_AR = '{{ order.items[0].title | default: "طلبك" }}'
FIRST_ORDERED_EN = '{{ order.items[0].title | default: "your order" }}'


def order_review():
    return simple_template(
        "order-review", "Review request (delivered + 3 days) · قيّم طلبك",
        "Post-purchase: a 30-second review of what was delivered. Needs `order`; links to the first item's page.",
        url="{{ order.items[0].url | default: shop_url }}", tag="order-{{ order.id }}",
        channels=("push", "email", "whatsapp"),
        ar={"title": "كيف كان طلبك؟ ⭐", "subject": "٣٠ ثانية بس: كيف كان طلبك؟",
            "body": f"خذ ٣٠ ثانية وقيّم {FIRST_ORDERED_AR} — رأيك يساعد غيرك يختار صح.",
            "button": "قيّم الحين"},
        en={"title": "How was your order? ⭐", "subject": "30 seconds: how was your order?",
            "body": f"Take 30 seconds to rate {FIRST_ORDERED_EN} — your review helps others choose well.",
            "button": "Rate it now"})


def order_complementary():
    return simple_template(
        "order-complementary", "Goes well with your order (delivered + 10 days) · يكمّل طلبك",
        "Post-purchase: products that go with what the shopper bought. Edit the link to a matching collection.",
        url="{{ shop_url }}", tag="order-{{ order.id }}",
        ar={"title": "يكمّل طلبك 💡", "body": f"اخترنا لك أشياء تمشي حلو مع {FIRST_ORDERED_AR}.",
            "button": "شوف الاختيارات"},
        en={"title": "Goes well with your order 💡", "body": f"We picked a few things that go nicely with "
                                                            f"{FIRST_ORDERED_EN}.",
            "button": "See the picks"})


# --- Win-back, birthday --------------------------------------------------------------------------

def win_back(code):
    discount = code_variable(code) if code else ""
    offer_ar = (f"جبنا لك خصم خاص عشان ترجع لنا: استخدم الكود {discount} على طلبك الجاي." if code
                else "وصلتنا أشياء جديدة كثير من آخر زيارة لك — تعال شوفها.")
    offer_en = (f"Here's a special discount to welcome you back: use the code {discount} on your next order."
                if code else "Lots has arrived since your last visit — come and have a look.")
    last_ar = (f"الكود {discount} على وشك ينتهي — لا يفوتك." if code
               else "قبل لا يفوتك: شوف الجديد والعروض الحالية.")
    last_en = (f"Your code {discount} is about to expire — don't miss it." if code
               else "Before it's gone: see what's new and what's on offer.")
    shop = "{{ shop_url }}"
    return [
        simple_template(
            coded_slug("win-back-offer", code), "Win-back: we miss you (30 days) · وحشتنا",
            "Win-back, after 30 days without a visit" + (f": offers the code {code}." if code else "."),
            url=shop, tag="win-back", channels=("push", "email", "whatsapp", "inapp"),
            ar={"title": 'وحشتنا{% if first_name %} يا {{ first_name }}{% endif %} 💛', "body": offer_ar,
                "button": "ارجع تسوّق"},
            en={"title": "We miss you{% if first_name %}, {{ first_name }}{% endif %} 💛", "body": offer_en,
                "button": "Come back"}),
        simple_template(
            coded_slug("win-back-last-chance", code), "Win-back: last chance (45 days) · فرصة أخيرة",
            "Win-back, 45 days without a visit: the last message.",
            url=shop, tag="win-back", channels=("push", "email", "whatsapp", "inapp"),
            ar={"title": "فرصة أخيرة ⏳", "body": last_ar, "button": "تسوّق الحين"},
            en={"title": "Last chance ⏳", "body": last_en, "button": "Shop now"}),
    ]


def birthday(code):
    discount = code_variable(code) if code else ""
    return simple_template(
        coded_slug("birthday", code), "Happy birthday · كل عام وأنت بخير",
        "Birthday greeting at 10:00 local time" + (f", with the gift code {code}." if code else "."),
        url="{{ shop_url }}", tag="birthday", channels=("push", "email", "whatsapp", "inapp"),
        ar={"title": 'كل عام وأنت بخير{% if first_name %} يا {{ first_name }}{% endif %} 🎂',
            "body": (f"هديتك منّا: الكود {discount} على أي طلب تختاره." if code
                     else "نتمنى لك سنة حلوة مليانة فرح."),
            "button": "افتح هديتك" if code else "زورنا"},
        en={"title": "Happy birthday{% if first_name %}, {{ first_name }}{% endif %} 🎂",
            "body": (f"A gift from us: the code {discount} on anything you like." if code
                     else "Wishing you a wonderful year ahead."),
            "button": "Open my gift" if code else "Visit us"})


# --- Creating them -------------------------------------------------------------------------------

@transaction.atomic
def ensure_templates(specs):
    """Create the templates whose slug is free; -> the slugs created (existing ones are left as they are)."""
    created = []
    for spec in specs:
        fields = {key: spec[key] for key in ("name", "description", "is_transactional")}
        template, made = MessageTemplate.objects.get_or_create(slug=spec["slug"],
                                                               defaults={**fields, "default_locale": "ar"})
        if not made:
            continue
        TemplateContent.objects.bulk_create([TemplateContent(template=template, **content)
                                             for content in spec["contents"]])
        created.append(template.slug)
    return created
