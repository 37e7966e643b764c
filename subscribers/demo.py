"""The demo store: a realistic shop's shoppers and 90 days of their behaviour.

Everything is drawn from seeded random streams (one per shopper), so the same
seed gives the same shoppers (names, emails, phones, places) on any day; times
are relative to `now`. The shop sells in five markets (Saudi Arabia, the Emirates, Egypt, the
UK, the US), one timezone each, in Arabic and English.

The rows are written with bulk inserts straight through the ORM, which is fine
for seed data only: the write paths in services.py would take minutes for a
store this size. To stay as consistent as those write paths:
- every Consent row has the ConsentChange history that leads to it, and push
  consent follows the push subscriptions' status as register/unregister/expire
  would leave it;
- carts and orders are exactly what their `cart_updated` / `checkout_started` /
  `order_placed` / `order_shipped` / ... events describe, and each abandoned
  cart has its `cart_abandoned` event with the id detect_abandoned_carts uses;
- the commerce figures and lifecycle stages are computed by
  services.refresh_commerce_stats / refresh_lifecycle_stages at the end.
A few carts are left active and idle for more than CART_ABANDON_MINUTES, so the
abandonment task has work as soon as the worker starts.
"""
import base64
import random
import time
import uuid
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from decimal import Decimal

import phonenumbers
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from . import services
from .models import (
    AnonymousId,
    ApiKey,
    ApiKeyKind,
    Cart,
    CartStatus,
    Channel,
    Consent,
    ConsentChange,
    ConsentStatus,
    Event,
    Order,
    OrderStatus,
    PushSubscription,
    PushSubscriptionStatus,
    Segment,
    SegmentKind,
    Source,
    Subscriber,
)
from .push_endpoints import validate_push_endpoint

DEFAULT_SUBSCRIBERS = 5000
DEFAULT_SEED = 42
HISTORY_DAYS = 90
SECRET_KEY_NAME = "Demo store backend"
IMAGE_HOST = "https://cdn.demo-store.example"

# --- The catalogue ----------------------------------------------------------------
# (product_id, slug, category, price in SAR, English title, Arabic title). The
# first four are the products of the demo storefront served at /demo/store/.
CATALOGUE = [
    ("DEMO-1001", "wireless-earbuds", "electronics", "249.00", "Wireless earbuds", "سماعات لاسلكية"),
    ("DEMO-1002", "smart-watch", "electronics", "799.00", "Smart watch", "ساعة ذكية"),
    ("DEMO-2001", "oud-perfume", "beauty", "320.00", "Oud perfume", "عطر العود"),
    ("DEMO-3001", "prayer-rug", "home", "150.00", "Prayer rug", "سجادة صلاة"),
    ("DEMO-1003", "phone-65w-charger", "electronics", "119.00", "65 W fast charger", "شاحن سريع ٦٥ واط"),
    ("DEMO-1004", "bluetooth-speaker", "electronics", "289.00", "Bluetooth speaker", "مكبر صوت بلوتوث"),
    ("DEMO-1005", "gaming-headset", "electronics", "449.00", "Gaming headset", "سماعة ألعاب"),
    ("DEMO-1006", "4k-action-camera", "electronics", "1199.00", "4K action camera", "كاميرا حركة 4K"),
    ("DEMO-1007", "camera-lens-kit", "electronics", "379.00", "Camera lens kit", "طقم عدسات للكاميرا"),
    ("DEMO-1008", "tablet-11", "electronics", "1899.00", "11-inch tablet", "جهاز لوحي ١١ بوصة"),
    ("DEMO-1009", "power-bank-20000", "electronics", "159.00", "Power bank 20,000 mAh", "باور بانك ٢٠٠٠٠ مللي أمبير"),
    ("DEMO-1010", "smart-led-bulbs", "electronics", "99.00", "Smart LED bulbs (4)", "مصابيح ذكية (٤)"),
    ("DEMO-4001", "linen-abaya", "fashion", "420.00", "Linen abaya", "عباية كتان"),
    ("DEMO-4002", "white-thobe", "fashion", "260.00", "Classic white thobe", "ثوب أبيض كلاسيكي"),
    ("DEMO-4003", "silk-scarf", "fashion", "180.00", "Silk scarf", "وشاح حرير"),
    ("DEMO-4004", "running-shoes", "fashion", "349.00", "Running shoes", "حذاء جري"),
    ("DEMO-4005", "leather-sandals", "fashion", "210.00", "Leather sandals", "صندل جلد"),
    ("DEMO-4006", "denim-jacket", "fashion", "299.00", "Denim jacket", "جاكيت جينز"),
    ("DEMO-4007", "kids-eid-dress", "fashion", "189.00", "Kids' Eid dress", "فستان العيد للأطفال"),
    ("DEMO-4008", "leather-wallet", "fashion", "140.00", "Leather wallet", "محفظة جلدية"),
    ("DEMO-4009", "sunglasses", "fashion", "230.00", "Polarised sunglasses", "نظارة شمسية مستقطبة"),
    ("DEMO-2002", "rose-face-serum", "beauty", "145.00", "Rose face serum", "سيروم الورد للوجه"),
    ("DEMO-2003", "bakhoor-set", "beauty", "95.00", "Bakhoor gift set", "طقم بخور هدية"),
    ("DEMO-2004", "argan-hair-oil", "beauty", "85.00", "Argan hair oil", "زيت الأرغان للشعر"),
    ("DEMO-2005", "musk-body-mist", "beauty", "120.00", "White musk body mist", "معطر جسم المسك الأبيض"),
    ("DEMO-2006", "kohl-eyeliner", "beauty", "55.00", "Kohl eyeliner", "كحل للعيون"),
    ("DEMO-2007", "sunscreen-spf50", "beauty", "75.00", "Sunscreen SPF 50", "واقي شمس SPF 50"),
    ("DEMO-2008", "beard-care-kit", "beauty", "135.00", "Beard care kit", "طقم العناية باللحية"),
    ("DEMO-2009", "hair-dryer", "beauty", "279.00", "Ionic hair dryer", "مجفف شعر أيوني"),
    ("DEMO-3002", "arabic-coffee-dallah", "home", "185.00", "Arabic coffee dallah", "دلة قهوة عربية"),
    ("DEMO-3003", "dates-serving-tray", "home", "130.00", "Dates serving tray", "صينية تقديم التمر"),
    ("DEMO-3004", "ramadan-lantern", "home", "110.00", "Ramadan lantern", "فانوس رمضان"),
    ("DEMO-3005", "cotton-bedding-set", "home", "390.00", "Cotton bedding set", "طقم مفارش قطن"),
    ("DEMO-3006", "air-fryer", "home", "499.00", "Air fryer 5 L", "قلاية هوائية ٥ لتر"),
    ("DEMO-3007", "incense-burner", "home", "160.00", "Electric incense burner", "مبخرة كهربائية"),
    ("DEMO-3008", "majlis-cushions", "home", "240.00", "Majlis floor cushions", "مساند مجلس أرضية"),
    ("DEMO-3009", "tea-glass-set", "home", "89.00", "Tea glass set (6)", "طقم كاسات شاي (٦)"),
    ("DEMO-3010", "robot-vacuum", "home", "1299.00", "Robot vacuum", "مكنسة روبوت"),
]
CATEGORIES = ("electronics", "fashion", "beauty", "home")

# SAR -> local currency (rounded shelf prices are what a shop would show).
CURRENCY_RATES = {"SAR": Decimal("1"), "AED": Decimal("0.98"), "EGP": Decimal("13"), "GBP": Decimal("0.21"),
                  "USD": Decimal("0.27")}


@dataclass(frozen=True)
class Market:
    timezone: str
    country: str
    currency: str
    weight: int
    arabic_share: float
    cities: tuple  # (name, latitude, longitude)
    mobile_prefixes: tuple  # E.164 prefixes of mobile ranges
    national_digits: int  # digits after the prefix
    carriers: tuple


MARKETS = (
    Market("Asia/Riyadh", "SA", "SAR", 36, 0.8,
           (("Riyadh", 24.7136, 46.6753), ("Jeddah", 21.4858, 39.1925), ("Dammam", 26.4207, 50.0888),
            ("Mecca", 21.3891, 39.8579), ("Medina", 24.5247, 39.5692), ("Khobar", 26.2172, 50.1971)),
           ("+96650", "+96653", "+96654", "+96655", "+96656", "+96658", "+96659"), 7, ("SMSA", "Aramex", "SPL")),
    Market("Asia/Dubai", "AE", "AED", 20, 0.6,
           (("Dubai", 25.2048, 55.2708), ("Abu Dhabi", 24.4539, 54.3773), ("Sharjah", 25.3463, 55.4209),
            ("Al Ain", 24.2075, 55.7447)),
           ("+97150", "+97152", "+97154", "+97155", "+97156", "+97158"), 7, ("Aramex", "Emirates Post", "DHL")),
    Market("Africa/Cairo", "EG", "EGP", 20, 0.85,
           (("Cairo", 30.0444, 31.2357), ("Alexandria", 31.2001, 29.9187), ("Giza", 30.0131, 31.2089),
            ("Mansoura", 31.0409, 31.3785)),
           ("+2010", "+2011", "+2012", "+2015"), 8, ("Bosta", "Aramex", "Egypt Post")),
    Market("Europe/London", "GB", "GBP", 12, 0.2,
           (("London", 51.5072, -0.1276), ("Manchester", 53.4808, -2.2426), ("Birmingham", 52.4862, -1.8904),
            ("Leeds", 53.8008, -1.5491)),
           ("+4474", "+4475", "+4477", "+4478", "+4479"), 8, ("Royal Mail", "DPD", "Evri")),
    Market("America/New_York", "US", "USD", 12, 0.12,
           (("New York", 40.7128, -74.0060), ("Boston", 42.3601, -71.0589), ("Philadelphia", 39.9526, -75.1652),
            ("Atlanta", 33.7490, -84.3880), ("Miami", 25.7617, -80.1918)),
           ("+1212", "+1646", "+1718", "+1617", "+1215", "+1404", "+1305"), 7, ("UPS", "USPS", "FedEx")),
)
TIMEZONES = tuple(m.timezone for m in MARKETS)

# (Arabic, Latin transliteration for email addresses)
ARABIC_MALE = (("محمد", "mohammed"), ("أحمد", "ahmed"), ("عبدالله", "abdullah"), ("خالد", "khalid"),
               ("فهد", "fahad"), ("سعود", "saud"), ("عمر", "omar"), ("يوسف", "youssef"), ("علي", "ali"),
               ("إبراهيم", "ibrahim"), ("فيصل", "faisal"), ("ناصر", "nasser"), ("سلطان", "sultan"),
               ("تركي", "turki"), ("ماجد", "majed"), ("حسن", "hassan"), ("مصطفى", "mostafa"), ("كريم", "karim"),
               ("طارق", "tarek"), ("زياد", "ziad"), ("راشد", "rashid"), ("حمد", "hamad"), ("بدر", "badr"),
               ("ياسر", "yasser"))
ARABIC_FEMALE = (("فاطمة", "fatima"), ("نورة", "noura"), ("سارة", "sara"), ("مريم", "maryam"), ("ريم", "reem"),
                 ("هند", "hind"), ("لطيفة", "latifa"), ("عائشة", "aisha"), ("منى", "mona"), ("دانة", "dana"),
                 ("شهد", "shahad"), ("جود", "joud"), ("لينا", "lina"), ("هيا", "haya"), ("أمل", "amal"),
                 ("رنا", "rana"), ("ياسمين", "yasmin"), ("سلمى", "salma"), ("نوف", "nouf"), ("العنود", "alanoud"),
                 ("رهف", "rahaf"), ("دينا", "dina"), ("مها", "maha"), ("غادة", "ghada"))
ARABIC_FAMILY = (("العتيبي", "alotaibi"), ("القحطاني", "alqahtani"), ("الشمري", "alshammari"),
                 ("الدوسري", "aldosari"), ("الحربي", "alharbi"), ("الزهراني", "alzahrani"), ("الغامدي", "alghamdi"),
                 ("المطيري", "almutairi"), ("السبيعي", "alsubaie"), ("المنصوري", "almansoori"),
                 ("الكعبي", "alkaabi"), ("النعيمي", "alnuaimi"), ("الهاشمي", "alhashimi"), ("حسين", "hussein"),
                 ("عبدالرحمن", "abdelrahman"), ("سالم", "salem"), ("المصري", "elmasry"), ("فاروق", "farouk"),
                 ("النجار", "elnaggar"), ("الشريف", "elsherif"), ("إبراهيم", "ibrahim"), ("يوسف", "youssef"),
                 ("الأنصاري", "alansari"), ("البلوشي", "albalushi"))
ENGLISH_MALE = ("James", "Oliver", "Harry", "Jack", "George", "Noah", "Liam", "Ethan", "Daniel", "Michael",
                "William", "Thomas", "Samuel", "Joseph", "David", "Adam", "Ryan", "Lucas", "Henry", "Matthew",
                "Benjamin", "Charlie", "Jacob", "Alexander")
ENGLISH_FEMALE = ("Olivia", "Amelia", "Isla", "Emily", "Sophia", "Grace", "Charlotte", "Emma", "Ava", "Mia",
                  "Lily", "Chloe", "Hannah", "Jessica", "Sarah", "Lucy", "Ella", "Megan", "Zoe", "Ruby", "Abigail",
                  "Natalie", "Rachel", "Laura")
ENGLISH_FAMILY = ("Smith", "Jones", "Williams", "Brown", "Taylor", "Davies", "Wilson", "Evans", "Johnson",
                  "Miller", "Davis", "Thomas", "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White",
                  "Hughes", "Edwards", "Green", "Hall", "Wood", "Harris", "Clarke", "Martin", "Cooper", "King",
                  "Lee", "Baker")
EMAIL_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com")
TAGS = ("newsletter", "ramadan_offer", "vip", "app_user", "influencer_referral", "white_friday", "wholesale")
ACQUISITION = ("instagram", "snapchat", "tiktok", "google", "referral", "direct", "x")

BROWSERS = (
    # (name, weight, endpoint template, user agent)
    ("Chrome", 55, "https://fcm.googleapis.com/fcm/send/{token}",
     "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36"),
    ("Chrome", 15, "https://fcm.googleapis.com/fcm/send/{token}",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36"),
    ("Safari", 14, "https://web.push.apple.com/{token}",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Mobile/15E148 Safari/604.1"),
    ("Firefox", 6, "https://updates.push.services.mozilla.com/wpush/v2/{token}",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    ("Edge", 6, "https://wns2-par02p.notify.windows.com/w/?token={token}",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"),
    ("Samsung Internet", 4, "https://fcm.googleapis.com/fcm/send/{token}",
     "Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"),
)

# Shoppers browse in their evenings: weights for the local hour of a visit.
HOUR_WEIGHTS = (1, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 5, 6, 6, 5, 5, 6, 7, 8, 10, 12, 12, 9, 4)

P_ANONYMOUS = 0.15
# Fixed dates rather than ages, so that the same seed gives the same birthdays on any day.
BIRTHDAYS_FROM = date(1962, 1, 1)
BIRTHDAY_SPAN_DAYS = 44 * 365


@dataclass
class Shopper:
    subscriber: Subscriber
    market: Market
    lang: str
    favourite: str
    open_cart: object = None
    last_event_at: object = None
    viewed: dict = None
    # How keen a shopper is: scales their visits and how often a visit ends in a cart or an order.
    propensity: float = 1.0
    pushes: list = field(default_factory=list)


@dataclass
class DemoStore:
    """Rows built in memory, in insert order; foreign keys point at unsaved instances."""

    subscribers: list = field(default_factory=list)
    anonymous_ids: list = field(default_factory=list)
    consents: list = field(default_factory=list)
    consent_changes: list = field(default_factory=list)
    push_subscriptions: list = field(default_factory=list)
    carts: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    events: list = field(default_factory=list)
    # cart_abandoned events whose id and restore link need the cart's primary key.
    abandonments: list = field(default_factory=list)


class Generator:
    """Draws a store from seeded random streams; see the module docstring."""

    def __init__(self, *, seed, now, site_url):
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = now
        self.window_start = now - timedelta(days=HISTORY_DAYS)
        self.site_url = site_url.rstrip("/")
        self.store = DemoStore()
        self.emails = set()
        self.endpoints = set()
        self.cart_counter = 0
        self.order_counter = 0
        self.hours = list(range(24))
        self.hour_cum = _cumulative(HOUR_WEIGHTS)
        self.market_cum = _cumulative([m.weight for m in MARKETS])
        self.browser_cum = _cumulative([b[1] for b in BROWSERS])
        self.products_by_category = {c: [p for p in CATALOGUE if p[2] == c] for c in CATEGORIES}
        self._items = {}
        self._zones = {m.timezone: zoneinfo.ZoneInfo(m.timezone) for m in MARKETS}

    # --- helpers ----------------------------------------------------------------
    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def between(self, start, end):
        if end <= start:
            return start
        return start + timedelta(seconds=self.rng.random() * (end - start).total_seconds())

    def item(self, product, currency, lang):
        key = (product[0], currency, lang)
        item = self._items.get(key)
        if item is None:
            product_id, slug, category, sar, title_en, title_ar = product
            price = Decimal(sar) * CURRENCY_RATES[currency]
            price = price.quantize(Decimal("1")) if price >= 20 else price.quantize(Decimal("0.01"))
            item = self._items[key] = {
                "product_id": product_id,
                "title": title_ar if lang == "ar" else title_en,
                "url": f"{self.site_url}/demo/store/{lang}/products/{slug}/",
                "image": f"{IMAGE_HOST}/products/{slug}.jpg",
                "price": str(price.quantize(Decimal("0.01"))),
                "category": category,
            }
        return item

    def pick_product(self, shopper):
        if self.rng.random() < 0.65:
            return self.rng.choice(self.products_by_category[shopper.favourite])
        return self.rng.choice(CATALOGUE)

    def event(self, shopper, name, at, properties, source=Source.SDK, event_id=None):
        event = Event(
            subscriber=shopper.subscriber, event_id=event_id or self.uuid(), name=name, properties=properties,
            occurred_at=at, received_at=at + timedelta(milliseconds=self.rng.randrange(40, 1500)), source=source,
        )
        self.store.events.append(event)
        if shopper.last_event_at is None or at > shopper.last_event_at:
            shopper.last_event_at = at
        return event

    def phone(self, market):
        for _ in range(50):
            prefix = self.rng.choice(market.mobile_prefixes)
            digits = "".join(str(self.rng.randrange(10)) for _ in range(market.national_digits))
            if market.country == "US" and digits[0] in "01":
                continue
            raw = prefix + digits
            number = phonenumbers.parse(raw)
            if phonenumbers.is_valid_number_for_region(number, market.country):
                return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        raise RuntimeError(f"no valid phone number drawn for {market.country}")

    def email(self, first, last):
        domain = self.rng.choice(EMAIL_DOMAINS)
        style = self.rng.randrange(4)
        local = {0: f"{first}.{last}", 1: f"{first}{last}", 2: f"{first}_{last}", 3: f"{first[0]}{last}"}[style]
        local = local.lower().replace(" ", "").replace("'", "")
        candidate = f"{local}@{domain}"
        while candidate in self.emails:
            candidate = f"{local}{self.rng.randrange(1, 1000)}@{domain}"
        self.emails.add(candidate)
        return candidate

    def push_keys(self):
        """A real P-256 public key and a 16-byte auth secret, as a browser would send."""
        private_value = self.rng.randrange(1, 2**255)
        key = ec.derive_private_key(private_value, ec.SECP256R1())
        raw = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        auth = self.rng.getrandbits(128).to_bytes(16, "big")
        return _b64url(raw), _b64url(auth)

    # --- the store --------------------------------------------------------------
    def generate(self, count):
        shoppers = [self.shopper(index) for index in range(count)]
        # The last few shoppers left the shop a little while ago with items in
        # their cart: some idle past the abandonment delay (the task's first
        # work), some still within it.
        abandon_minutes = settings.CART_ABANDON_MINUTES
        idle_past = max(3, count // 100)
        idle_recent = max(2, count // 250)
        recent = [s for s in shoppers if s.subscriber.created_at < self.now - timedelta(hours=6)]
        self.rng = random.Random(f"{self.seed}:recent")
        self.rng.shuffle(recent)
        for shopper in recent[:idle_past]:
            idle = timedelta(minutes=self.rng.randrange(abandon_minutes + 5, abandon_minutes + 180))
            self.recent_visit(shopper, self.now - idle)
        for shopper in recent[idle_past:idle_past + idle_recent]:
            idle = timedelta(minutes=self.rng.randrange(1, max(2, abandon_minutes - 5)))
            self.recent_visit(shopper, self.now - idle)
        for shopper in shoppers:
            sub = shopper.subscriber
            sub.last_seen_at = max(filter(None, [shopper.last_event_at, sub.created_at]))
        return self.store

    def shopper(self, index):
        # A stream of its own per shopper, and who they are drawn before what
        # they did: how many draws their behaviour takes depends on `now`
        # (an order shipped yet or not), and must not change the next
        # shopper's name.
        rng = self.rng = random.Random(f"{self.seed}:{index}")
        market = rng.choices(MARKETS, cum_weights=self.market_cum)[0]
        anonymous = rng.random() < P_ANONYMOUS
        arabic = rng.random() < market.arabic_share
        lang = "ar" if arabic else "en"
        gender = rng.choice(("female", "male"))
        city, lat, lon = rng.choice(market.cities)
        favourite = rng.choice(CATEGORIES)
        sub = Subscriber(timezone=market.timezone, country=market.country, city=city, locale=lang)
        shopper = Shopper(subscriber=sub, market=market, lang=lang, favourite=favourite,
                          propensity=rng.choice((0.5, 0.8, 1.0, 1.0, 1.3, 1.9)))
        self.store.subscribers.append(sub)

        if anonymous:
            sub.created_at = self.between(self.window_start, self.now - timedelta(hours=2))
            self.store.anonymous_ids.append(AnonymousId(value=f"anon_{self.uuid()}", subscriber=sub,
                                                        created_at=sub.created_at))
            # Anonymous visitors exist because they allowed push on some page.
            self.push_subscription(shopper, self.between(sub.created_at, sub.created_at + timedelta(minutes=20)))
            self.push_consent(shopper)
            self.browse(shopper, start=sub.created_at)
            return shopper

        if arabic:
            first, first_latin = rng.choice(ARABIC_FEMALE if gender == "female" else ARABIC_MALE)
            last, last_latin = rng.choice(ARABIC_FAMILY)
        else:
            first = rng.choice(ENGLISH_FEMALE if gender == "female" else ENGLISH_MALE)
            last = rng.choice(ENGLISH_FAMILY)
            first_latin, last_latin = first, last
        sub.external_id = f"cus_{100001 + index}"
        sub.first_name, sub.last_name = first, last
        sub.gender = gender if rng.random() < 0.85 else ""
        if rng.random() < 0.9:
            sub.email = self.email(first_latin, last_latin)
        if rng.random() < 0.75:
            sub.phone = self.phone(market)
        if rng.random() < 0.7:
            sub.birthday = BIRTHDAYS_FROM + timedelta(days=rng.randrange(BIRTHDAY_SPAN_DAYS))
        if rng.random() < 0.3:
            sub.latitude = round(lat + rng.uniform(-0.08, 0.08), 5)
            sub.longitude = round(lon + rng.uniform(-0.08, 0.08), 5)
        sub.attributes = {"favourite_category": favourite, "acquisition_channel": rng.choice(ACQUISITION)}
        if rng.random() < 0.25:
            sub.attributes["newsletter_frequency"] = rng.choice(("weekly", "monthly"))
        if favourite == "fashion" and rng.random() < 0.5:
            sub.attributes["shoe_size"] = rng.randrange(36, 46)
        sub.tags = sorted(set(rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2)))))

        # Two in five customers have an account older than the 90 days of history.
        if rng.random() < 0.4:
            sub.created_at = self.now - timedelta(days=rng.randrange(HISTORY_DAYS + 1, 720),
                                                  seconds=rng.randrange(86400))
        else:
            sub.created_at = self.between(self.window_start, self.now - timedelta(hours=8))
            self.event(shopper, "signed_up", sub.created_at,
                       {"method": rng.choice(("email", "email", "phone", "google", "apple"))}, source=Source.API)
        if rng.random() < 0.5:
            self.store.anonymous_ids.append(AnonymousId(value=f"anon_{self.uuid()}", subscriber=sub,
                                                        created_at=sub.created_at))
        self.consents(shopper)
        if rng.random() < 0.4:
            start = max(sub.created_at, self.window_start)
            self.push_subscription(shopper, self.between(start, self.now - timedelta(hours=3)))
            if rng.random() < 0.15:
                self.push_subscription(shopper, self.between(start, self.now - timedelta(hours=3)))
            self.push_consent(shopper)
        self.browse(shopper, start=max(sub.created_at, self.window_start))
        return shopper

    # --- consent ----------------------------------------------------------------
    def consent_history(self, shopper, channel, changes):
        """changes: [(status, at, source, evidence, event properties)] in time order.

        Gives the Consent row, its ConsentChange history and, inside the event
        window, the `subscribed` / `unsubscribed` events the storefront sent.
        """
        sub = shopper.subscriber
        consent = Consent(subscriber=sub, channel=channel)
        for status, at, source, evidence, extra in changes:
            self.store.consent_changes.append(ConsentChange(
                subscriber=sub, channel=channel, status=status, source=source, evidence=evidence, occurred_at=at,
            ))
            consent.status, consent.source, consent.evidence, consent.updated_at = status, source, evidence, at
            if status == ConsentStatus.GRANTED:
                consent.granted_at = at
            else:
                consent.revoked_at = at
            if at >= self.window_start:
                name = "subscribed" if status == ConsentStatus.GRANTED else "unsubscribed"
                props = {"channel": channel, **(extra or {})}
                self.event(shopper, name, at, props, source=Source.SDK if channel == Channel.PUSH else Source.API)
        self.store.consents.append(consent)

    def consents(self, shopper):
        rng = self.rng
        sub = shopper.subscriber
        imported = sub.created_at < self.window_start
        latest = self.now - timedelta(hours=1)
        if sub.email and rng.random() < 0.7:
            at = sub.created_at + timedelta(minutes=rng.randrange(0, 5))
            if imported:
                changes = [(ConsentStatus.GRANTED, at, Source.IMPORT,
                            {"file": "customers-export.csv", "row": rng.randrange(2, 9000)}, None)]
            else:
                changes = [(ConsentStatus.GRANTED, at, Source.SDK,
                            {"form": "sign-up", "text": "Email me offers and order news"}, None)]
            roll = rng.random()
            if roll < 0.08:
                out = self.between(at, latest)
                changes.append((ConsentStatus.REVOKED, out, Source.API, {"reason": "unsubscribe link"}, None))
                if roll < 0.02:
                    # Changed their mind at a later checkout.
                    changes.append((ConsentStatus.GRANTED, self.between(out, latest), Source.SDK,
                                    {"form": "checkout", "text": "Email me offers and order news"}, None))
            self.consent_history(shopper, Channel.EMAIL, changes)
        if sub.phone and rng.random() < 0.4:
            at = self.between(sub.created_at, latest)
            changes = [(ConsentStatus.GRANTED, at, Source.SDK,
                        {"form": "checkout", "text": "Send me order updates and offers by SMS"}, None)]
            if rng.random() < 0.1:
                changes.append((ConsentStatus.REVOKED, self.between(at, latest), Source.KEYWORD,
                                {"keyword": "STOP", "from": sub.phone}, None))
            self.consent_history(shopper, Channel.SMS, changes)
        # WhatsApp is the Gulf's and Egypt's messenger; few elsewhere opt in.
        whatsapp_share = 0.45 if shopper.market.country in ("SA", "AE", "EG") else 0.1
        if sub.phone and rng.random() < whatsapp_share:
            at = self.between(sub.created_at, latest)
            changes = [(ConsentStatus.GRANTED, at, Source.API,
                        {"opt_in": "whatsapp button on the order page"}, None)]
            if rng.random() < 0.05:
                changes.append((ConsentStatus.REVOKED, self.between(at, latest), Source.KEYWORD,
                                {"keyword": "STOP", "from": sub.phone}, None))
            self.consent_history(shopper, Channel.WHATSAPP, changes)

    def push_subscription(self, shopper, at):
        rng = self.rng
        sub = shopper.subscriber
        name, _, template, user_agent = rng.choices(BROWSERS, cum_weights=self.browser_cum)[0]
        endpoint = template.format(token=_b64url(rng.getrandbits(8 * 96).to_bytes(96, "big")))
        while endpoint in self.endpoints:
            endpoint = template.format(token=_b64url(rng.getrandbits(8 * 96).to_bytes(96, "big")))
        self.endpoints.add(endpoint)
        validate_push_endpoint(endpoint)
        product = self.pick_product(shopper)
        page = self.item(product, shopper.market.currency, shopper.lang)
        p256dh, auth = self.push_keys()
        push = PushSubscription(
            subscriber=sub, endpoint=endpoint, p256dh=p256dh, auth=auth, user_agent=user_agent, browser=name,
            page_url=page["url"], category=page["category"], created_at=at,
        )
        roll = rng.random()
        if roll < 0.08:
            push.status = PushSubscriptionStatus.EXPIRED
            push.failure_count = rng.randrange(1, 4)
            push.last_failure_at = self.between(at, self.now)
            push.last_failure_reason = "410 Gone: the push service no longer knows this subscription"
        elif roll < 0.15:
            push.status = PushSubscriptionStatus.UNSUBSCRIBED
            push.last_failure_at = None
        elif rng.random() < 0.7:
            push.last_success_at = self.between(max(at, self.now - timedelta(days=14)), self.now)
        self.store.push_subscriptions.append(push)
        shopper.pushes.append(push)

    def push_consent(self, shopper):
        """Push consent and subscribed page as register/unregister/expire_push_subscription leave them."""
        sub = shopper.subscriber
        if not shopper.pushes:
            return
        timeline = []
        first = min(shopper.pushes, key=lambda p: p.created_at)
        sub.subscribed_page_url, sub.subscribed_category = first.page_url, first.category
        for p in sorted(shopper.pushes, key=lambda p: p.created_at):
            timeline.append((p.created_at, "on", p))
            if p.status == PushSubscriptionStatus.UNSUBSCRIBED:
                timeline.append((self.between(p.created_at, self.now - timedelta(minutes=30)), "off", p))
            elif p.status == PushSubscriptionStatus.EXPIRED:
                timeline.append((p.last_failure_at, "off", p))
        timeline.sort(key=lambda step: step[0])
        active, changes, state = set(), [], None
        for at, what, p in timeline:
            if what == "on":
                active.add(p.endpoint)
                # register_push_subscription grants again each time (a no-op when granted).
                if state != ConsentStatus.GRANTED:
                    host = p.endpoint.split("/")[2]
                    changes.append((ConsentStatus.GRANTED, at, Source.SDK,
                                    {"endpoint_host": host, "page_url": p.page_url, "user_agent": p.user_agent},
                                    {"page_url": p.page_url, "category": p.category}))
                    state = ConsentStatus.GRANTED
            else:
                active.discard(p.endpoint)
                if not active and state == ConsentStatus.GRANTED:
                    if p.status == PushSubscriptionStatus.EXPIRED:
                        changes.append((ConsentStatus.REVOKED, at, Source.PROVIDER, {"reason": "410 Gone"}, None))
                    else:
                        changes.append((ConsentStatus.REVOKED, at, Source.SDK, {"reason": "unsubscribed"}, None))
                    state = ConsentStatus.REVOKED
        self.consent_history(shopper, Channel.PUSH, changes)

    # --- behaviour --------------------------------------------------------------
    def session_times(self, shopper, start, end):
        rng = self.rng
        tz = self._zones[shopper.market.timezone]
        count = 1 + min(24, int(rng.expovariate(1 / (3.0 * shopper.propensity))))
        times = []
        for _ in range(count):
            day = self.between(start, end).astimezone(tz)
            local = day.replace(hour=rng.choices(self.hours, cum_weights=self.hour_cum)[0],
                                minute=rng.randrange(60), second=rng.randrange(60))
            at = local.astimezone(UTC)
            if start <= at <= end:
                times.append(at)
        times.sort()
        kept = []
        for at in times:
            # Visits at least three hours apart: an abandoned cart is marked
            # abandoned before the shopper comes back.
            if not kept or at - kept[-1] >= timedelta(hours=3):
                kept.append(at)
        return kept

    def browse(self, shopper, *, start):
        end = self.now - timedelta(hours=4)
        for at in self.session_times(shopper, start, end):
            self.visit(shopper, at)

    def recent_visit(self, shopper, last_activity):
        """A visit that ends with items in the cart at `last_activity`, not yet marked abandoned."""
        start = last_activity - timedelta(minutes=5)
        self.view_products(shopper, start - timedelta(minutes=self.rng.randrange(2, 12)), self.rng.randrange(1, 4))
        cart = self.cart_for(shopper, start)
        # At most two additions of at most 90 s each: done before `last_activity`.
        self.add_to_cart(shopper, cart, start, self.rng.randrange(1, 3))
        if self.rng.random() < 0.4:
            self.checkout_started(shopper, cart, last_activity)

    def view_products(self, shopper, at, count):
        t = at
        for _ in range(count):
            item = self.item(self.pick_product(shopper), shopper.market.currency, shopper.lang)
            props = {**item, "currency": shopper.market.currency,
                     "seconds_on_page": self.rng.randrange(5, 240)}
            self.event(shopper, "product_viewed", t, props)
            shopper.viewed = item
            t += timedelta(seconds=props["seconds_on_page"] + self.rng.randrange(3, 60))
        return t

    def visit(self, shopper, at):
        rng = self.rng
        t = self.view_products(shopper, at, rng.choice((1, 1, 2, 2, 3, 4, 5)))
        returning = shopper.open_cart is not None and rng.random() < 0.25
        keen = shopper.propensity
        if not returning and rng.random() >= (0.22 if shopper.subscriber.external_id is None else 0.3 * keen):
            return
        cart = self.cart_for(shopper, t)
        t = self.add_to_cart(shopper, cart, t, rng.choice((1, 1, 1, 2)) if not returning else rng.choice((0, 1)))
        anonymous = shopper.subscriber.external_id is None
        if not anonymous and rng.random() < 0.5:
            t += timedelta(seconds=rng.randrange(20, 300))
            self.checkout_started(shopper, cart, t)
            if rng.random() < min(0.85, 0.5 * keen):
                t += timedelta(seconds=rng.randrange(60, 600))
                self.place_order(shopper, cart, t)
                return
        self.abandon(shopper, cart)

    def cart_for(self, shopper, at):
        cart = shopper.open_cart
        if cart is None:
            self.cart_counter += 1
            cart = Cart(subscriber=shopper.subscriber, external_id=f"CART-{200000 + self.cart_counter}",
                        items=[], value=Decimal("0"), currency=shopper.market.currency, created_at=at,
                        last_activity_at=at, status=CartStatus.ACTIVE)
            self.store.carts.append(cart)
            shopper.open_cart = cart
        return cart

    def snapshot(self, shopper, cart, at):
        cart.value = sum((Decimal(i["price"]) * i["quantity"] for i in cart.items), Decimal("0"))
        cart.last_activity_at = at
        if cart.status == CartStatus.ABANDONED:
            cart.status = CartStatus.ACTIVE
            cart.abandoned_at = None
        self.event(shopper, "cart_updated", at, {
            "cart_id": cart.external_id, "items": [dict(i) for i in cart.items],
            "value": str(cart.value), "currency": cart.currency,
        })

    def add_to_cart(self, shopper, cart, at, additions):
        t = at
        changed = False
        for n in range(additions):
            item = shopper.viewed if n == 0 else None
            item = item or self.item(self.pick_product(shopper), shopper.market.currency, shopper.lang)
            present = next((i for i in cart.items if i["product_id"] == item["product_id"]), None)
            if present:
                present["quantity"] += 1
            else:
                cart.items.append({**item, "quantity": self.rng.choice((1, 1, 1, 2))})
            t += timedelta(seconds=self.rng.randrange(5, 90))
            self.snapshot(shopper, cart, t)
            changed = True
        if not changed:
            # Back to the cart without adding: the snapshot still moves its activity on.
            t += timedelta(seconds=self.rng.randrange(5, 60))
            self.snapshot(shopper, cart, t)
        return t

    def checkout_started(self, shopper, cart, at):
        cart.checkout_started_at = at
        cart.last_activity_at = max(cart.last_activity_at, at)
        self.event(shopper, "checkout_started", at,
                   {"cart_id": cart.external_id, "value": str(cart.value), "currency": cart.currency})

    def abandon(self, shopper, cart):
        # detect_abandoned_carts runs every minute: marked shortly after the delay.
        at = cart.last_activity_at + timedelta(minutes=settings.CART_ABANDON_MINUTES,
                                               seconds=self.rng.randrange(0, 60))
        cart.status = CartStatus.ABANDONED
        cart.abandoned_at = at
        event = self.event(shopper, "cart_abandoned", at, {}, source=Source.API, event_id="pending")
        self.store.abandonments.append((event, cart, cart.last_activity_at, [dict(i) for i in cart.items],
                                        cart.value, cart.checkout_started_at is not None))

    def place_order(self, shopper, cart, at):
        rng = self.rng
        self.order_counter += 1
        order_id = f"ORD-{300000 + self.order_counter}"
        items = [dict(i) for i in cart.items]
        order = Order(subscriber=shopper.subscriber, external_id=order_id, cart=cart, items=items,
                      value=cart.value, currency=cart.currency, placed_at=at, status=OrderStatus.PLACED)
        self.store.orders.append(order)
        cart.status = CartStatus.CONVERTED
        cart.converted_at = at
        shopper.open_cart = None
        self.event(shopper, "order_placed", at, {
            "order_id": order_id, "cart_id": cart.external_id, "items": items, "value": str(order.value),
            "currency": order.currency,
        }, source=Source.API)
        if rng.random() < 0.04:
            cancelled = at + timedelta(hours=rng.randrange(1, 20))
            if cancelled < self.now:
                order.status = OrderStatus.CANCELLED
                self.event(shopper, "order_cancelled", cancelled, {"order_id": order_id,
                                                                   "reason": "customer request"},
                           source=Source.API)
            return
        shipped = at + timedelta(hours=rng.randrange(6, 72))
        if shipped >= self.now:
            return
        carrier = rng.choice(shopper.market.carriers)
        tracking = f"{carrier[:3].upper()}{rng.randrange(10**9, 10**10)}"
        order.status, order.shipped_at = OrderStatus.SHIPPED, shipped
        self.event(shopper, "order_shipped", shipped, {
            "order_id": order_id, "carrier": carrier,
            "tracking_url": f"https://track.demo-store.example/{tracking}",
        }, source=Source.API)
        delivered = shipped + timedelta(hours=rng.randrange(20, 130))
        if delivered >= self.now:
            return
        order.status, order.delivered_at = OrderStatus.DELIVERED, delivered
        self.event(shopper, "order_delivered", delivered, {"order_id": order_id, "carrier": carrier},
                   source=Source.API)


def _cumulative(weights):
    total, out = 0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate_store(*, subscribers=DEFAULT_SUBSCRIBERS, seed=DEFAULT_SEED, now=None, site_url=None):
    """Build the demo store in memory (no database access but the models' defaults)."""
    generator = Generator(seed=seed, now=now or timezone.now(), site_url=site_url or settings.SITE_URL)
    return generator.generate(subscribers)


def write_store(store, *, batch_size=2000):
    """Insert the rows of `store` in dependency order; returns counts per kind."""
    Subscriber.objects.bulk_create(store.subscribers, batch_size=batch_size)
    AnonymousId.objects.bulk_create(store.anonymous_ids, batch_size=batch_size)
    Consent.objects.bulk_create(store.consents, batch_size=batch_size)
    ConsentChange.objects.bulk_create(store.consent_changes, batch_size=batch_size)
    PushSubscription.objects.bulk_create(store.push_subscriptions, batch_size=batch_size)
    Cart.objects.bulk_create(store.carts, batch_size=batch_size)
    Order.objects.bulk_create(store.orders, batch_size=batch_size)
    for event, cart, last_activity, items, value, checkout_started in store.abandonments:
        # The id and restore link detect_abandoned_carts would have written.
        event.event_id = f"cart_abandoned:{cart.pk}:{int(last_activity.timestamp())}"
        event.properties = {
            "cart_id": cart.external_id, "value": str(value), "currency": cart.currency, "items": items,
            "item_count": sum(int(i["quantity"]) for i in items), "restore_url": cart.restore_url,
            "checkout_started": checkout_started,
        }
    Event.objects.bulk_create(store.events, batch_size=batch_size)
    return {
        "subscribers": len(store.subscribers),
        "anonymous visitors": sum(1 for s in store.subscribers if s.external_id is None),
        "consents": len(store.consents),
        "consent changes": len(store.consent_changes),
        "push subscriptions": len(store.push_subscriptions),
        "carts": len(store.carts),
        "orders": len(store.orders),
        "events": len(store.events),
    }


def refresh_figures(store):
    """Commerce figures and lifecycle stages through the services that keep them."""
    buyers = {order.subscriber.pk for order in store.orders}
    for subscriber_id in sorted(buyers):
        services.refresh_commerce_stats(subscriber_id=subscriber_id)
    services.refresh_lifecycle_stages()


def create_demo_keys():
    """A secret key for the store's backend (returned raw, shown once) and the storefront's publishable key."""
    from .demo_keys import ensure_demo_publishable_key

    ApiKey.objects.filter(name=SECRET_KEY_NAME, kind=ApiKeyKind.SECRET).delete()
    _, secret = ApiKey.create_secret(SECRET_KEY_NAME)
    publishable = ensure_demo_publishable_key(settings.SITE_URL)
    return secret, publishable


def flush_store():
    """Delete every shopper and everything about them (the demo's --flush)."""
    Subscriber.objects.all().delete()


# The segments a marketer starts from. Names and descriptions are stored in
# English (the catalog's msgids) and shown in the operator's language
# (Segment.__str__ / Segment.display_description for starters).
STARTER_SEGMENTS = [
    {"starter": "interested-in-fashion", "name": gettext_noop("Interested in fashion"),
     "description": gettext_noop("Viewed fashion products at least twice in the last 30 days, or subscribed on a fashion page."),
     "rules": {"type": "group", "match": "any", "conditions": [
         {"type": "event", "name": "product_viewed", "operator": "at_least", "count": 2, "within_days": 30,
          "properties": [{"property": "category", "operator": "equals", "value": "fashion"}]},
         {"type": "subscription", "field": "category", "operator": "equals", "value": "fashion"}]}},
    {"starter": "repeat-customers", "name": gettext_noop("Repeat customers"),
     "description": gettext_noop("Shoppers with two orders or more."),
     "rules": {"type": "group", "match": "all", "conditions": [
         {"type": "commerce", "field": "orders_count", "operator": "gte", "value": 2}]}},
    {"starter": "new-visitors", "name": gettext_noop("New visitors"),
     "description": gettext_noop("First seen in the last 7 days and no order yet."),
     "rules": {"type": "group", "match": "all", "conditions": [
         {"type": "attribute", "field": "created_at", "operator": "within_last_days", "value": 7},
         {"type": "commerce", "field": "orders_count", "operator": "equals", "value": 0}]}},
    {"starter": "abandoned-carts-24h", "name": gettext_noop("Abandoned carts in the last 24 hours"),
     "description": gettext_noop("Left a cart in the last 24 hours without ordering it."),
     "rules": {"type": "group", "match": "all", "conditions": [
         {"type": "abandoned_cart", "operator": "has", "within_hours": 24}]}},
    {"starter": "inactive-30-days", "name": gettext_noop("Inactive for 30 days"),
     "description": gettext_noop("Not seen on the store for 30 days or more."),
     "rules": {"type": "group", "match": "all", "conditions": [
         {"type": "attribute", "field": "last_seen_at", "operator": "not_within_last_days", "value": 30}]}},
    {"starter": "high-value-at-risk", "name": gettext_noop("High-value customers at risk"),
     "description": gettext_noop("Spent 1,000 or more, or ordered three times or more, and have not ordered for 60 days."),
     "rules": {"type": "group", "match": "all", "conditions": [
         {"type": "group", "match": "any", "conditions": [
             {"type": "commerce", "field": "total_spent", "operator": "gte", "value": 1000},
             {"type": "commerce", "field": "orders_count", "operator": "gte", "value": 3}]},
         {"type": "lifecycle", "operator": "in", "value": ["at_risk", "lapsed"]}]}},
]


def load_starter_segments(*, overwrite=False):
    """Create the starter segments that are missing (by their starter key); returns how many were written.

    A starter segment the marketer already has is left as they edited it unless `overwrite`.
    """
    from .segments import validate_rules

    written = 0
    for spec in STARTER_SEGMENTS:
        validate_rules(spec["rules"])
        fields = {"name": spec["name"], "description": spec["description"], "kind": SegmentKind.DYNAMIC,
                  "rules": spec["rules"]}
        segment = Segment.objects.filter(starter=spec["starter"]).first()
        if segment is None:
            Segment.objects.create(starter=spec["starter"], **fields)
            written += 1
        elif overwrite:
            Segment.objects.filter(pk=segment.pk).update(**fields, updated_at=timezone.now())
            written += 1
    return written


def load_demo_store(*, subscribers=DEFAULT_SUBSCRIBERS, seed=DEFAULT_SEED, now=None, log=None):
    """Generate and write the demo store in one transaction; returns a summary with timings."""
    log = log or (lambda message: None)
    started = time.perf_counter()
    store = generate_store(subscribers=subscribers, seed=seed, now=now)
    generated = time.perf_counter()
    log(f"generated in {generated - started:.1f}s")
    with transaction.atomic():
        counts = write_store(store)
        written = time.perf_counter()
        log(f"written in {written - generated:.1f}s")
        refresh_figures(store)
        load_starter_segments()
        secret, publishable = create_demo_keys()
    finished = time.perf_counter()
    log(f"figures refreshed in {finished - written:.1f}s")
    return {
        "counts": counts,
        "abandoned_carts": sum(1 for c in store.carts if c.status == CartStatus.ABANDONED),
        "carts_awaiting_abandonment": sum(
            1 for c in store.carts if c.status == CartStatus.ACTIVE
            and c.last_activity_at <= (now or timezone.now()) - timedelta(minutes=settings.CART_ABANDON_MINUTES)
        ),
        "secret_key": secret,
        "publishable_key": publishable.publishable_key,
        "publishable_origins": publishable.allowed_origins,
        "seconds": finished - started,
    }
