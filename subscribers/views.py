import json

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from .demo_keys import demo_publishable_key
from .models import Cart, CartStatus


RESTORE_TEXT = {
    "en": {"title": "Your cart is waiting", "total": "Total:", "empty": "This cart is empty.",
           "converted": "You have already ordered these items — thank you!"},
    "ar": {"title": "سلتك بانتظارك", "total": "المجموع:", "empty": "هذه السلة فارغة.",
           "converted": "لقد طلبت هذه المنتجات بالفعل — شكرًا لك!"},
}


@require_GET
def restore_cart(request, token):
    """Follow a cart restore link from a message: the shopper gets their cart back without a login.

    When the store has its own restore page (CART_RESTORE_URL) new links point
    there directly and this answers older ones with a redirect; the store's page
    reads the cart with GET /api/v1/carts/<token> and refills its own cart.
    Without one, this page lists the items with links to their product pages,
    in the shopper's language.
    """
    try:
        cart = Cart.from_restore_token(token)
    except Cart.DoesNotExist:
        raise Http404("This cart link is invalid or has expired.")
    if settings.CART_RESTORE_URL:
        return redirect(f"{settings.CART_RESTORE_URL.rstrip('/')}/{token}")
    lang = "ar" if (cart.subscriber.locale or "").startswith("ar") else "en"
    safe_items = [
        {**item, "url": item.get("url") if _is_web_url(item.get("url")) else "",
         "image": item.get("image") if _is_web_url(item.get("image")) else ""}
        for item in cart.items
    ]
    response = render(request, "storefront/cart_restore.html", {
        "lang": lang, "dir": "rtl" if lang == "ar" else "ltr", "text": RESTORE_TEXT[lang], "items": safe_items,
        "value": cart.value, "currency": cart.currency, "converted": cart.status == CartStatus.CONVERTED,
    })
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def _is_web_url(value):
    # Item URLs come from the store's events: never render javascript: or data: links.
    return isinstance(value, str) and value.startswith(("https://", "http://"))


# --- The service worker a store hosts at its origin root -----------------------------

@require_GET
@cache_control(no_cache=True)
def service_worker(request):
    """The one-line worker stores copy to /tanbih-sw.js; Tanbih serves it for its own demo store.

    It sits at the root so its scope may cover every page; the header lets a
    store serve it from elsewhere and still register it with scope "/".
    """
    body = f"importScripts({json.dumps(static('tanbih/sw.js'))});\n"
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    return response


# --- The demo storefront ------------------------------------------------------------

DEMO_CURRENCY = "SAR"
DEMO_CUSTOMER_ID = "demo-customer-1"
DEMO_PRODUCTS = [
    {"slug": "wireless-earbuds", "product_id": "DEMO-1001", "category": "electronics", "price": "249.00",
     "color": "#2b6cb0", "title": {"en": "Wireless earbuds", "ar": "سماعات لاسلكية"},
     "description": {"en": "Noise cancelling, 30 hours of battery.", "ar": "عزل للضوضاء وبطارية تدوم ٣٠ ساعة."}},
    {"slug": "smart-watch", "product_id": "DEMO-1002", "category": "electronics", "price": "799.00",
     "color": "#2c7a7b", "title": {"en": "Smart watch", "ar": "ساعة ذكية"},
     "description": {"en": "Heart rate, GPS and prayer times.", "ar": "نبض القلب وتحديد الموقع ومواقيت الصلاة."}},
    {"slug": "oud-perfume", "product_id": "DEMO-2001", "category": "beauty", "price": "320.00",
     "color": "#975a16", "title": {"en": "Oud perfume", "ar": "عطر العود"},
     "description": {"en": "Cambodian oud with rose, 100 ml.", "ar": "عود كمبودي مع الورد، ١٠٠ مل."}},
    {"slug": "prayer-rug", "product_id": "DEMO-3001", "category": "home", "price": "150.00",
     "color": "#276749", "title": {"en": "Prayer rug", "ar": "سجادة صلاة"},
     "description": {"en": "Soft padded velvet, travel size.", "ar": "مخمل مبطن ناعم، مقاس السفر."}},
]
DEMO_TEXT = {
    "en": {
        "store_name": "Tanbih demo store",
        "currency": "SAR",
        "tagline": "A pretend shop wired to Tanbih with the storefront SDK.",
        "products": "Products",
        "view": "View",
        "add_to_cart": "Add to cart",
        "cart": "Cart",
        "cart_empty": "Your cart is empty.",
        "place_order": "Place order",
        "notifications": "Notifications",
        "get_notifications": "Get notifications",
        "sign_in": "Sign in as the demo customer",
        "back": "All products",
        "other_language": "العربية",
        "no_vapid": "Web push is off on this server: set VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY "
                    "(manage.py generate_vapid_keys prints a pair).",
        "how": "The prompt appears after a few seconds. Everything you do here reaches Tanbih as events: "
               "open the admin to see them.",
        "status": {
            "default": "not asked yet", "granted": "allowed", "denied": "blocked in this browser",
            "unsupported": "not supported by this browser", "subscribed": "subscribed",
            "declined": "you said not now", "identified": "signed in as the demo customer",
            "added": "added to cart", "ordered": "order placed", "error": "something went wrong",
        },
    },
    "ar": {
        "store_name": "متجر تنبيه التجريبي",
        "currency": "ر.س",
        "tagline": "متجر تجريبي متصل بتنبيه عبر حزمة المتجر البرمجية.",
        "products": "المنتجات",
        "view": "عرض",
        "add_to_cart": "أضف إلى السلة",
        "cart": "السلة",
        "cart_empty": "سلتك فارغة.",
        "place_order": "أتمم الطلب",
        "notifications": "التنبيهات",
        "get_notifications": "فعّل التنبيهات",
        "sign_in": "سجّل الدخول كعميل تجريبي",
        "back": "كل المنتجات",
        "other_language": "English",
        "no_vapid": "إشعارات الويب متوقفة على هذا الخادم: اضبط VAPID_PUBLIC_KEY و VAPID_PRIVATE_KEY "
                    "(الأمر manage.py generate_vapid_keys يطبع زوجًا من المفاتيح).",
        "how": "تظهر نافذة الاشتراك بعد ثوانٍ. كل ما تفعله هنا يصل إلى تنبيه كأحداث: افتح لوحة الإدارة لتراها.",
        "status": {
            "default": "لم يُطلب بعد", "granted": "مسموح", "denied": "محظور في هذا المتصفح",
            "unsupported": "غير مدعوم في هذا المتصفح", "subscribed": "تم الاشتراك",
            "declined": "اخترت ليس الآن", "identified": "دخلت كعميل تجريبي",
            "added": "أضيف إلى السلة", "ordered": "تم الطلب", "error": "حدث خطأ ما",
        },
    },
}


def _demo_context(request, lang):
    if lang not in DEMO_TEXT:
        raise Http404("The demo store speaks Arabic (ar) and English (en).")
    key = demo_publishable_key()
    if key is None:
        raise Http404("No demo store is loaded here (manage.py load_demo_store creates it).")
    text = DEMO_TEXT[lang]
    products = [
        {**p, "name": p["title"][lang], "blurb": p["description"][lang], "initial": p["title"][lang][:1]}
        for p in DEMO_PRODUCTS
    ]
    return {
        "lang": lang,
        "dir": "rtl" if lang == "ar" else "ltr",
        "other_lang": "en" if lang == "ar" else "ar",
        "text": text,
        "products": products,
        "publishable_key": key.publishable_key,
        "push_configured": bool(settings.VAPID_PUBLIC_KEY),
        "demo_data": {
            "lang": lang,
            "currency": DEMO_CURRENCY,
            "currency_label": text["currency"],
            "status": text["status"],
            "customer": {
                "external_id": DEMO_CUSTOMER_ID,
                # Computed on the server, as a store's backend would: the identity secret never
                # reaches the browser, so a visitor can't claim another customer's id.
                "user_hash": key.identity_hash(DEMO_CUSTOMER_ID),
                "traits": {"first_name": "Sara" if lang == "en" else "سارة", "locale": lang},
            },
        },
    }


@require_GET
def demo_store(request, lang="en"):
    context = _demo_context(request, lang)
    context["category"] = ""
    return render(request, "storefront/home.html", context)


@require_GET
def demo_product(request, lang, slug):
    context = _demo_context(request, lang)
    product = next((p for p in context["products"] if p["slug"] == slug), None)
    if product is None:
        raise Http404("No such product in the demo store.")
    url = request.build_absolute_uri()
    context["product"] = product
    context["category"] = product["category"]
    context["demo_data"]["product"] = {
        "product_id": product["product_id"], "title": product["name"], "url": url,
        "price": product["price"], "currency": DEMO_CURRENCY, "category": product["category"],
    }
    return render(request, "storefront/product.html", context)
