"""Bilingual starter templates a new store (and the demo) can load and then edit.

`load_starter_templates()` creates them by slug and never touches a template a
marketer already has under that slug unless asked to (`overwrite=True`).
"""
from django.db import transaction

from .models import MessageTemplate, TemplateContent

_CART_LINES_AR = (
    '{% for item in cart.items %}<tr><td style="padding:8px 0">{{ item.title }} × {{ item.quantity }}</td>'
    '<td style="padding:8px 0;text-align:left">{{ item.price }} {{ cart.currency }}</td></tr>{% endfor %}'
)
_CART_LINES_EN = (
    '{% for item in cart.items %}<tr><td style="padding:8px 0">{{ item.title }} × {{ item.quantity }}</td>'
    '<td style="padding:8px 0;text-align:right">{{ item.price }} {{ cart.currency }}</td></tr>{% endfor %}'
)
_BUTTON = ('<p><a href="{url}" style="display:inline-block;background:#0f766e;color:#fff;padding:12px 24px;'
           'border-radius:6px;text-decoration:none">{label}</a></p>')


def _email_ar(body):
    return f'<div dir="rtl" lang="ar" style="font-family:Tahoma,Arial,sans-serif;line-height:1.6">{body}</div>'


def _email_en(body):
    return f'<div dir="ltr" lang="en" style="font-family:Arial,sans-serif;line-height:1.6">{body}</div>'


STARTER_TEMPLATES = [
    {
        "slug": "abandoned-cart", "name": "Abandoned cart · السلة المتروكة", "is_transactional": False,
        "description": "Sent after a cart is abandoned; needs `cart` in the context (journeys pass it).",
        "contents": [
            {"channel": "push", "locale": "ar",
             "title": '{{ first_name | default: "صديقنا" }}، سلتك بانتظارك 🛒',
             "body": "{{ cart.items[0].title }}{% if cart.item_count > 1 %} ومنتجات أخرى{% endif %}"
                     " — المجموع {{ cart.value }} {{ cart.currency }}",
             "image": "{{ cart.items[0].image }}", "click_url": "{{ cart.restore_url }}", "tag": "abandoned-cart",
             "actions": [{"action": "checkout", "title": "أكمل الطلب", "url": "{{ cart.restore_url }}"}]},
            {"channel": "push", "locale": "en",
             "title": '{{ first_name | default: "Hey" }}, your cart is waiting 🛒',
             "body": "{{ cart.items[0].title }}{% if cart.item_count > 1 %} and more{% endif %}"
                     " — {{ cart.value }} {{ cart.currency }} in total",
             "image": "{{ cart.items[0].image }}", "click_url": "{{ cart.restore_url }}", "tag": "abandoned-cart",
             "actions": [{"action": "checkout", "title": "Complete my order", "url": "{{ cart.restore_url }}"}]},
            {"channel": "sms", "locale": "ar",
             "body": '{{ first_name | default: "مرحباً" }}، سلتك بانتظارك. أكمل طلبك: {{ cart.restore_url }}'},
            {"channel": "sms", "locale": "en",
             "body": '{{ first_name | default: "Hi" }}, your cart is waiting. Complete your order: '
                     '{{ cart.restore_url }}'},
            {"channel": "whatsapp", "locale": "ar",
             "body": 'مرحباً {{ first_name | default: "صديقنا" }} 👋\nتركت في سلتك:\n'
                     '{% for item in cart.items %}• {{ item.title }} × {{ item.quantity }}\n{% endfor %}'
                     'المجموع: {{ cart.value }} {{ cart.currency }}\n'
                     '{% if discount_code %}استخدم الكود {{ discount_code }} عند الدفع.\n{% endif %}'
                     'أكمل طلبك من هنا: {{ cart.restore_url }}'},
            {"channel": "whatsapp", "locale": "en",
             "body": 'Hi {{ first_name | default: "there" }} 👋\nYou left these in your cart:\n'
                     '{% for item in cart.items %}• {{ item.title }} × {{ item.quantity }}\n{% endfor %}'
                     'Total: {{ cart.value }} {{ cart.currency }}\n'
                     '{% if discount_code %}Use the code {{ discount_code }} at checkout.\n{% endif %}'
                     'Complete your order: {{ cart.restore_url }}'},
            {"channel": "email", "locale": "ar",
             "subject": '{{ first_name | default: "صديقنا" }}، نسيت شيئاً في سلتك',
             "html_body": _email_ar(
                 '<h1>سلتك بانتظارك</h1><p>مرحباً {{ first_name | default: "صديقنا" }}، احتفظنا لك بهذه المنتجات:</p>'
                 f'<table style="width:100%">{_CART_LINES_AR}</table>'
                 '<p><strong>المجموع: {{ cart.value }} {{ cart.currency }}</strong></p>'
                 '{% if discount_code %}<p>استخدم الكود <strong>{{ discount_code }}</strong> عند الدفع.</p>{% endif %}'
                 + _BUTTON.format(url="{{ cart.restore_url }}", label="أكمل طلبك"))},
            {"channel": "email", "locale": "en",
             "subject": '{{ first_name | default: "Hi" }}, you left something in your cart',
             "html_body": _email_en(
                 '<h1>Your cart is waiting</h1><p>Hi {{ first_name | default: "there" }}, we kept these for you:</p>'
                 f'<table style="width:100%">{_CART_LINES_EN}</table>'
                 '<p><strong>Total: {{ cart.value }} {{ cart.currency }}</strong></p>'
                 '{% if discount_code %}<p>Use the code <strong>{{ discount_code }}</strong> at checkout.</p>{% endif %}'
                 + _BUTTON.format(url="{{ cart.restore_url }}", label="Complete my order"))},
        ],
    },
    {
        "slug": "order-shipped", "name": "Order shipped · تم شحن الطلب", "is_transactional": True,
        "description": "Sent when an order ships; needs `order` (with `tracking_url` if the store has one).",
        "contents": [
            {"channel": "push", "locale": "ar", "title": "طلبك في الطريق 🚚",
             "body": "شحنّا طلبك رقم {{ order.id }}. سيصلك قريباً.",
             "click_url": "{{ order.tracking_url | default: shop_url }}", "tag": "order-{{ order.id }}",
             "urgency": "high"},
            {"channel": "push", "locale": "en", "title": "Your order is on its way 🚚",
             "body": "We shipped order {{ order.id }}. It will be with you soon.",
             "click_url": "{{ order.tracking_url | default: shop_url }}", "tag": "order-{{ order.id }}",
             "urgency": "high"},
            {"channel": "sms", "locale": "ar",
             "body": "شحنّا طلبك رقم {{ order.id }}.{% if order.tracking_url %} تتبّعه: {{ order.tracking_url }}{% endif %}"},
            {"channel": "sms", "locale": "en",
             "body": "We shipped your order {{ order.id }}."
                     "{% if order.tracking_url %} Track it: {{ order.tracking_url }}{% endif %}"},
            {"channel": "whatsapp", "locale": "ar",
             "body": 'مرحباً {{ first_name | default: "صديقنا" }}، شحنّا طلبك رقم {{ order.id }} 🚚'
                     "{% if order.tracking_url %}\nتتبّع الشحنة: {{ order.tracking_url }}{% endif %}"},
            {"channel": "whatsapp", "locale": "en",
             "body": 'Hi {{ first_name | default: "there" }}, your order {{ order.id }} has shipped 🚚'
                     "{% if order.tracking_url %}\nTrack it: {{ order.tracking_url }}{% endif %}"},
            {"channel": "email", "locale": "ar", "subject": "طلبك رقم {{ order.id }} في الطريق",
             "html_body": _email_ar(
                 '<h1>طلبك في الطريق</h1><p>مرحباً {{ first_name | default: "صديقنا" }}، شحنّا طلبك رقم '
                 '{{ order.id }} بقيمة {{ order.value }} {{ order.currency }}.</p>'
                 '{% if order.tracking_url %}'
                 + _BUTTON.format(url="{{ order.tracking_url }}", label="تتبّع الشحنة") + '{% endif %}')},
            {"channel": "email", "locale": "en", "subject": "Your order {{ order.id }} is on its way",
             "html_body": _email_en(
                 '<h1>Your order is on its way</h1><p>Hi {{ first_name | default: "there" }}, we shipped your order '
                 '{{ order.id }} ({{ order.value }} {{ order.currency }}).</p>'
                 '{% if order.tracking_url %}'
                 + _BUTTON.format(url="{{ order.tracking_url }}", label="Track my parcel") + '{% endif %}')},
        ],
    },
    {
        "slug": "back-in-stock", "name": "Back in stock · عاد للمخزون", "is_transactional": False,
        "description": "Sent when a product a shopper wanted is back; needs `product` (title, url, image, price).",
        "contents": [
            {"channel": "push", "locale": "ar", "title": "عاد للمخزون: {{ product.title }}",
             "body": "{{ product.price }} {{ product.currency | default: 'ر.س' }} — اطلبه قبل أن ينفد مجدداً.",
             "image": "{{ product.image }}", "click_url": "{{ product.url }}", "tag": "stock-{{ product.url }}",
             "actions": [{"action": "buy", "title": "اشترِ الآن", "url": "{{ product.url }}"}]},
            {"channel": "push", "locale": "en", "title": "Back in stock: {{ product.title }}",
             "body": "{{ product.price }} {{ product.currency | default: 'SAR' }} — get it before it sells out again.",
             "image": "{{ product.image }}", "click_url": "{{ product.url }}", "tag": "stock-{{ product.url }}",
             "actions": [{"action": "buy", "title": "Buy now", "url": "{{ product.url }}"}]},
            {"channel": "sms", "locale": "ar", "body": "عاد للمخزون: {{ product.title }}. اطلبه الآن: {{ product.url }}"},
            {"channel": "sms", "locale": "en", "body": "Back in stock: {{ product.title }}. Order now: {{ product.url }}"},
            {"channel": "email", "locale": "ar", "subject": "{{ product.title }} عاد للمخزون",
             "html_body": _email_ar(
                 '<h1>{{ product.title }} عاد للمخزون</h1>'
                 '{% if product.image %}<p><img src="{{ product.image }}" alt="{{ product.title }}" width="280"></p>{% endif %}'
                 '<p>السعر: {{ product.price }} {{ product.currency | default: "ر.س" }}</p>'
                 + _BUTTON.format(url="{{ product.url }}", label="اشترِ الآن"))},
            {"channel": "email", "locale": "en", "subject": "{{ product.title }} is back in stock",
             "html_body": _email_en(
                 '<h1>{{ product.title }} is back in stock</h1>'
                 '{% if product.image %}<p><img src="{{ product.image }}" alt="{{ product.title }}" width="280"></p>{% endif %}'
                 '<p>Price: {{ product.price }} {{ product.currency | default: "SAR" }}</p>'
                 + _BUTTON.format(url="{{ product.url }}", label="Buy now"))},
        ],
    },
    {
        "slug": "welcome", "name": "Welcome · أهلاً بك", "is_transactional": False,
        "description": "Sent to a new subscriber; offers `discount_code` when the journey passes one.",
        "contents": [
            {"channel": "push", "locale": "ar", "title": 'أهلاً بك{% if first_name %} {{ first_name }}{% endif %} 👋',
             "body": "{% if discount_code %}استخدم الكود {{ discount_code }} لخصم على طلبك الأول."
                     "{% else %}اكتشف أحدث منتجاتنا.{% endif %}",
             "click_url": "{{ shop_url }}", "tag": "welcome"},
            {"channel": "push", "locale": "en", "title": 'Welcome{% if first_name %} {{ first_name }}{% endif %} 👋',
             "body": "{% if discount_code %}Use the code {{ discount_code }} for a discount on your first order."
                     "{% else %}Discover our latest products.{% endif %}",
             "click_url": "{{ shop_url }}", "tag": "welcome"},
            {"channel": "sms", "locale": "ar",
             "body": "أهلاً بك! {% if discount_code %}كود خصم طلبك الأول: {{ discount_code }} {% endif %}{{ shop_url }}"},
            {"channel": "sms", "locale": "en",
             "body": "Welcome! {% if discount_code %}Your first-order code: {{ discount_code }} {% endif %}{{ shop_url }}"},
            {"channel": "email", "locale": "ar", "subject": 'أهلاً بك{% if first_name %} {{ first_name }}{% endif %}',
             "html_body": _email_ar(
                 '<h1>أهلاً بك{% if first_name %} {{ first_name }}{% endif %}</h1><p>سعداء بانضمامك إلينا.</p>'
                 '{% if discount_code %}<p>هديتك: الكود <strong>{{ discount_code }}</strong> لخصم على طلبك الأول.</p>'
                 '{% endif %}' + _BUTTON.format(url="{{ shop_url }}", label="تسوّق الآن"))},
            {"channel": "email", "locale": "en", "subject": 'Welcome{% if first_name %} {{ first_name }}{% endif %}',
             "html_body": _email_en(
                 '<h1>Welcome{% if first_name %} {{ first_name }}{% endif %}</h1><p>We are glad you joined us.</p>'
                 '{% if discount_code %}<p>A gift: the code <strong>{{ discount_code }}</strong> for a discount on '
                 'your first order.</p>{% endif %}' + _BUTTON.format(url="{{ shop_url }}", label="Start shopping"))},
            {"channel": "inapp", "locale": "ar", "title": "أهلاً بك 👋",
             "body": "{% if discount_code %}خصم على طلبك الأول بالكود {{ discount_code }}{% else %}"
                     "اكتشف أحدث منتجاتنا{% endif %}",
             "button_label": "تسوّق الآن", "button_url": "{{ shop_url }}", "placement": "banner"},
            {"channel": "inapp", "locale": "en", "title": "Welcome 👋",
             "body": "{% if discount_code %}A discount on your first order with {{ discount_code }}{% else %}"
                     "Discover our latest products{% endif %}",
             "button_label": "Start shopping", "button_url": "{{ shop_url }}", "placement": "banner"},
        ],
    },
]


@transaction.atomic
def load_starter_templates(*, overwrite=False):
    """Create the starter templates; returns the slugs created (and replaced, with `overwrite`).

    A template that already exists under a starter slug is left as the marketer
    edited it, unless `overwrite` is true, which resets it to the starter content.
    """
    written = []
    for spec in STARTER_TEMPLATES:
        fields = {key: spec[key] for key in ("name", "description", "is_transactional")}
        template, created = MessageTemplate.objects.get_or_create(
            slug=spec["slug"], defaults={**fields, "default_locale": "ar"})
        if not created and not overwrite:
            continue
        if not created:
            for key, value in fields.items():
                setattr(template, key, value)
            template.default_locale = "ar"
            template.save()
            template.contents.all().delete()
        TemplateContent.objects.bulk_create([TemplateContent(template=template, **content)
                                             for content in spec["contents"]])
        written.append(template.slug)
    return written
