"""The subscriber CRM: profiles, consent, push subscriptions, events, carts, orders."""
import base64
import hashlib
import secrets
import zoneinfo
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import base36_to_int, int_to_base36
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Left, Lower
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext_lazy as _

EVENT_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,79}$"
validate_event_name = RegexValidator(
    EVENT_NAME_PATTERN,
    _("Event names are 1–80 characters: lowercase letters, digits, '_', '.', '-', starting with a letter."),
    code="invalid_event_name",
)

# The standard vocabulary (docs/events.md). Any other valid name is a custom event.
STANDARD_EVENTS = (
    "product_viewed",
    "cart_updated",
    "checkout_started",
    "order_placed",
    "order_shipped",
    "order_delivered",
    "order_cancelled",
    "signed_up",
    "subscribed",
    "unsubscribed",
    "cart_abandoned",
    "push_prompt_shown",
    "push_prompt_accepted",
    "push_prompt_declined",
)

SUPPORTED_LOCALES = ("ar", "en")


def validate_timezone(value):
    from .validation import timezone_names

    if value in timezone_names():
        return
    raise ValidationError(
        _("'%(value)s' is not an IANA timezone name (for example Asia/Riyadh or Europe/London)."),
        code="invalid_timezone",
        params={"value": value},
    )


class Channel(models.TextChoices):
    PUSH = "push", _("Web push")
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    WHATSAPP = "whatsapp", _("WhatsApp")


class Source(models.TextChoices):
    API = "api", _("API")
    SDK = "sdk", _("SDK")
    IMPORT = "import", _("Import")
    KEYWORD = "keyword", _("Keyword (STOP)")
    ADMIN = "admin", _("Admin")
    WEBHOOK = "webhook", _("Webhook")
    PROVIDER = "provider", _("Provider")
    DEMO = "demo", _("Demo data")


class LifecycleStage(models.TextChoices):
    NEW = "new", _("New")
    ACTIVE = "active", _("Active")
    AT_RISK = "at_risk", _("At risk")
    LAPSED = "lapsed", _("Lapsed")
    LOYAL = "loyal", _("Loyal")


class SubscriberQuerySet(models.QuerySet):
    def known(self):
        return self.exclude(external_id=None)

    def anonymous(self):
        return self.filter(external_id=None)


class Subscriber(models.Model):
    """One shopper, known (store customer id, email, phone) or anonymous (a browser)."""

    external_id = models.CharField(
        _("store customer id"), max_length=128, null=True, blank=True,
        help_text=_("The customer's id in the store. Empty for anonymous visitors."),
    )
    email = models.EmailField(_("email"), blank=True, db_index=True)
    phone = models.CharField(_("phone (E.164)"), max_length=20, blank=True, db_index=True)
    first_name = models.CharField(_("first name"), max_length=150, blank=True)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    locale = models.CharField(_("locale"), max_length=10, default="en")
    timezone = models.CharField(_("timezone"), max_length=64, default="UTC", validators=[validate_timezone])
    country = models.CharField(_("country"), max_length=2, blank=True, help_text=_("ISO 3166-1 alpha-2"))
    city = models.CharField(_("city"), max_length=120, blank=True)
    latitude = models.FloatField(_("latitude"), null=True, blank=True)
    longitude = models.FloatField(_("longitude"), null=True, blank=True)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    gender = models.CharField(_("gender"), max_length=20, blank=True)
    attributes = models.JSONField(_("custom attributes"), default=dict, blank=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    subscribed_page_url = models.URLField(_("subscribed on page"), max_length=2000, blank=True)
    subscribed_category = models.CharField(_("subscribed in category"), max_length=200, blank=True)

    # Commerce facts, kept current by services.refresh_commerce_stats().
    orders_count = models.PositiveIntegerField(_("orders"), default=0)
    total_spent = models.DecimalField(_("total spent"), max_digits=14, decimal_places=2, default=Decimal("0"))
    average_order_value = models.DecimalField(_("average order value"), max_digits=14, decimal_places=2, default=Decimal("0"))
    first_order_at = models.DateTimeField(_("first order"), null=True, blank=True)
    last_order_at = models.DateTimeField(_("last order"), null=True, blank=True)
    lifecycle_stage = models.CharField(
        _("lifecycle stage"), max_length=10, choices=LifecycleStage.choices, default=LifecycleStage.NEW
    )

    created_at = models.DateTimeField(_("created"), default=dj_timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    # Predictions, written in bulk by analytics (docs/predictions.md); null until scored. Scores are exact
    # decimals so a segment's "churn risk > 0.7" means the same in SQL as in Python.
    best_send_hour = models.PositiveSmallIntegerField(
        _("best send hour"), null=True, blank=True, validators=[MaxValueValidator(23)],
        help_text=_("The local hour (0-23) the shopper most often opens or clicks messages."))
    purchase_likelihood = models.DecimalField(
        _("purchase likelihood"), max_digits=5, decimal_places=4, null=True, blank=True,
        help_text=_("Chance of an order in the next 7 days (0-1)."))
    churn_risk = models.DecimalField(
        _("churn risk"), max_digits=5, decimal_places=4, null=True, blank=True,
        help_text=_("Chance of no order in the next 60 days (0-1)."))
    scores_updated_at = models.DateTimeField(_("scores updated"), null=True, blank=True)

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        verbose_name = _("subscriber")
        verbose_name_plural = _("subscribers")
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=Q(external_id__isnull=False), name="subscriber_external_id_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["lifecycle_stage"], name="subscriber_stage_idx"),
            models.Index(fields=["last_order_at"], name="subscriber_last_order_idx"),
            models.Index(fields=["created_at"], name="subscriber_created_idx"),
        ]

    def __str__(self):
        name = self.full_name
        if name:
            return name
        if self.external_id:
            return self.external_id
        return self.email or self.phone or _("anonymous #%(id)s") % {"id": self.pk}

    @property
    def full_name(self):
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_anonymous(self):
        return self.external_id is None

    @property
    def tzinfo(self):
        return zoneinfo.ZoneInfo(self.timezone)


class AnonymousId(models.Model):
    """A browser's anonymous id; it keeps pointing at the profile it was merged into."""

    value = models.CharField(_("value"), max_length=128, unique=True)
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="anonymous_ids", verbose_name=_("subscriber"))
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now)

    class Meta:
        verbose_name = _("anonymous id")
        verbose_name_plural = _("anonymous ids")

    def __str__(self):
        return self.value


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", _("Granted")
    REVOKED = "revoked", _("Revoked")


class Consent(models.Model):
    """The current consent of one subscriber on one channel (history in ConsentChange).

    Written only by services.grant_consent / services.revoke_consent.
    """

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="consents", verbose_name=_("subscriber"))
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    status = models.CharField(_("status"), max_length=10, choices=ConsentStatus.choices)
    granted_at = models.DateTimeField(_("granted at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    updated_at = models.DateTimeField(_("updated at"), default=dj_timezone.now)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "channel"], name="consent_one_per_channel"),
        ]
        indexes = [models.Index(fields=["channel", "status"], name="consent_channel_status_idx")]

    def __str__(self):
        return f"{self.subscriber} · {self.get_channel_display()} · {self.get_status_display()}"

    @property
    def is_granted(self):
        return self.status == ConsentStatus.GRANTED


class ConsentChange(models.Model):
    """Append-only history of every consent grant and revocation."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="consent_changes", verbose_name=_("subscriber"))
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    status = models.CharField(_("status"), max_length=10, choices=ConsentStatus.choices)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=dj_timezone.now)

    class Meta:
        verbose_name = _("consent change")
        verbose_name_plural = _("consent changes")
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["subscriber", "channel", "occurred_at"], name="consentchange_sub_idx")]

    def __str__(self):
        return f"{self.subscriber} {self.channel} {self.status} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class PushSubscriptionStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    EXPIRED = "expired", _("Expired")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")


class PushSubscription(models.Model):
    """One browser's web push subscription; a subscriber may have several."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="push_subscriptions", verbose_name=_("subscriber"))
    endpoint = models.URLField(_("endpoint"), max_length=1000, unique=True)
    p256dh = models.CharField(_("p256dh key"), max_length=200)
    auth = models.CharField(_("auth secret"), max_length=100)
    user_agent = models.CharField(_("user agent"), max_length=500, blank=True)
    browser = models.CharField(_("browser"), max_length=50, blank=True)
    page_url = models.URLField(_("page URL"), max_length=2000, blank=True)
    category = models.CharField(_("category"), max_length=200, blank=True)
    status = models.CharField(_("status"),
        max_length=15, choices=PushSubscriptionStatus.choices, default=PushSubscriptionStatus.ACTIVE
    )
    failure_count = models.PositiveIntegerField(_("failure count"), default=0)
    last_success_at = models.DateTimeField(_("last success at"), null=True, blank=True)
    last_failure_at = models.DateTimeField(_("last failure at"), null=True, blank=True)
    last_failure_reason = models.CharField(_("last failure reason"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("push subscription")
        verbose_name_plural = _("push subscriptions")
        indexes = [models.Index(fields=["subscriber", "status"], name="pushsub_subscriber_status_idx")]

    def __str__(self):
        return f"{self.browser or 'browser'} · {self.get_status_display()}"


# How much of an event's category the database keeps beside the JSON for segments; longer categories
# are still matched, through the JSON (subscribers.segments).
EVENT_CATEGORY_KEY_LENGTH = 200


class Event(models.Model):
    """Something a shopper did, stored before anything reacts to it."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="events", verbose_name=_("subscriber"))
    event_id = models.CharField(_("event id"),
        max_length=128, null=True, blank=True,
        help_text=_("The sender's id for this event; a repeat is accepted and ignored."),
    )
    name = models.CharField(_("name"), max_length=80, validators=[validate_event_name])
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=dj_timezone.now)
    received_at = models.DateTimeField(_("received at"), default=dj_timezone.now)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default=Source.API)
    # properties.category, lower-cased (first EVENT_CATEGORY_KEY_LENGTH characters), kept by the database
    # beside the JSON so "viewed shoes 3 times in 30 days" is answered from the index alone (segments).
    category_key = models.GeneratedField(
        expression=Left(Lower(KeyTextTransform("category", "properties")), EVENT_CATEGORY_KEY_LENGTH),
        output_field=models.TextField(null=True), db_persist=True, verbose_name=_("category (for segments)"),
    )

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints = [
            models.UniqueConstraint(
                fields=["event_id"], condition=Q(event_id__isnull=False), name="event_event_id_unique"
            ),
        ]
        indexes = [
            # "did X in the last N days" for one shopper, and across shoppers.
            # ...carrying the category, so a category filter needs no heap fetch (an index-only scan).
            models.Index(fields=["subscriber", "name", "occurred_at"], include=["category_key"],
                         name="event_sub_name_time_idx"),
            # "who did X in the last N days" across shoppers (a hash semi-join in segments), from the index alone.
            models.Index(fields=["name", "occurred_at"], include=["subscriber"], name="event_name_time_idx"),
        ]

    def __str__(self):
        return f"{self.name} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class CartStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    ABANDONED = "abandoned", _("Abandoned")
    CONVERTED = "converted", _("Converted")


class Cart(models.Model):
    """A shopper's cart as last reported by a `cart_updated` snapshot."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="carts", verbose_name=_("subscriber"))
    external_id = models.CharField(_("external id"), max_length=128, null=True, blank=True, help_text=_("The store's cart id"))
    items = models.JSONField(_("items"), default=list, blank=True)
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(_("currency"), max_length=3, default="SAR")
    status = models.CharField(_("status"), max_length=10, choices=CartStatus.choices, default=CartStatus.ACTIVE)
    checkout_started_at = models.DateTimeField(_("checkout started at"), null=True, blank=True)
    last_activity_at = models.DateTimeField(_("last activity at"), default=dj_timezone.now)
    abandoned_at = models.DateTimeField(_("abandoned at"), null=True, blank=True)
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now)

    class Meta:
        verbose_name = _("cart")
        verbose_name_plural = _("carts")
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=Q(external_id__isnull=False), name="cart_external_id_unique"
            ),
        ]
        indexes = [
            models.Index(
                fields=["last_activity_at"], condition=Q(status="active"), name="cart_active_activity_idx"
            ),
            models.Index(fields=["subscriber", "status"], name="cart_subscriber_status_idx"),
        ]

    def __str__(self):
        return f"{self.external_id or '#%s' % self.pk} · {self.value} {self.currency} · {self.get_status_display()}"

    @property
    def item_count(self):
        return sum(int(item.get("quantity") or 0) for item in self.items)

    def restore_token(self):
        """A short signed token naming this cart; it restores the cart without a login.

        `<cart id in base 36>.<12 characters of HMAC>`: short enough for an SMS
        (where every character of a link counts), unguessable, and checked in
        constant time. It stays valid for CART_RESTORE_MAX_AGE_DAYS after the
        cart's last activity.
        """
        return f"{base36(self.pk)}.{_restore_signature(self.pk)}"

    @property
    def restore_url(self):
        base = settings.CART_RESTORE_URL or f"{settings.SITE_URL}/r/cart"
        return f"{base.rstrip('/')}/{self.restore_token()}"

    @classmethod
    def from_restore_token(cls, token):
        """The cart a restore token names; Cart.DoesNotExist for a bad, forged or expired one."""
        pk_part, _, signature = str(token).partition(".")
        try:
            pk = base36_decode(pk_part)
        except ValueError:
            raise cls.DoesNotExist("malformed cart token")
        if not signature or not constant_time_compare(signature, _restore_signature(pk)):
            raise cls.DoesNotExist("bad cart token signature")
        cutoff = dj_timezone.now() - timedelta(days=settings.CART_RESTORE_MAX_AGE_DAYS)
        return cls.objects.get(pk=pk, last_activity_at__gte=cutoff)


def base36(number):
    return int_to_base36(number)


def base36_decode(text):
    if not text or len(text) > 13:
        raise ValueError("not a base 36 id")
    return base36_to_int(text)


def _restore_signature(pk):
    digest = salted_hmac("tanbih.cart.restore", str(pk), algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).decode()[:12]


class OrderStatus(models.TextChoices):
    PLACED = "placed", _("Placed")
    PAID = "paid", _("Paid")
    SHIPPED = "shipped", _("Shipped")
    DELIVERED = "delivered", _("Delivered")
    CANCELLED = "cancelled", _("Cancelled")
    REFUNDED = "refunded", _("Refunded")


class Order(models.Model):
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="orders", verbose_name=_("subscriber"))
    external_id = models.CharField(_("external id"), max_length=128, unique=True)
    cart = models.ForeignKey(Cart, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders", verbose_name=_("cart"))
    items = models.JSONField(_("items"), default=list, blank=True)
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3, default="SAR")
    status = models.CharField(_("status"), max_length=10, choices=OrderStatus.choices, default=OrderStatus.PLACED)
    placed_at = models.DateTimeField(_("placed at"), default=dj_timezone.now)
    shipped_at = models.DateTimeField(_("shipped at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        indexes = [models.Index(fields=["subscriber", "placed_at"], name="order_subscriber_placed_idx")]

    def __str__(self):
        return f"{self.external_id} · {self.value} {self.currency}"


class ApiKeyKind(models.TextChoices):
    SECRET = "secret", _("Secret (store backend)")
    PUBLISHABLE = "publishable", _("Publishable (browser SDK)")


def _new_key(prefix):
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_key(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """A key for the storefront API.

    Secret keys (Bearer) are for the store's backend and are stored hashed; the
    raw key is shown once. Publishable keys are public by nature, live in the
    browser, work only from `allowed_origins` and only for subscribe / identify /
    track. Identifying a shopper from the browser needs an HMAC of their id made
    with `identity_secret` on the store's server, so a visitor can't claim to be
    another customer.
    """

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=12, choices=ApiKeyKind.choices)
    prefix = models.CharField(_("prefix"), max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    publishable_key = models.CharField(_("publishable key"), max_length=64, blank=True, editable=False)
    identity_secret = models.CharField(_("identity secret"), max_length=64, blank=True, editable=False)
    allowed_origins = models.JSONField(_("allowed origins"),
        default=list, blank=True,
        help_text=_("Publishable keys only: origins such as https://shop.example that may use the key."),
    )
    require_identity_verification = models.BooleanField(_("require identity verification"),
        default=True, help_text=_("Publishable keys only: identify() must carry the HMAC of the customer id."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def create_secret(cls, name):
        """Create a secret key; returns (api_key, raw_key). The raw key is not stored."""
        raw = _new_key("tnb_sk")
        key = cls.objects.create(name=name, kind=ApiKeyKind.SECRET, prefix=raw[:12], key_hash=hash_key(raw))
        return key, raw

    @classmethod
    def create_publishable(cls, name, allowed_origins=(), require_identity_verification=True):
        raw = _new_key("tnb_pk")
        key = cls.objects.create(
            name=name, kind=ApiKeyKind.PUBLISHABLE, prefix=raw[:12], key_hash=hash_key(raw),
            publishable_key=raw, identity_secret=secrets.token_hex(32),
            allowed_origins=list(allowed_origins), require_identity_verification=require_identity_verification,
        )
        return key, raw

    def identity_hash(self, external_id):
        import hmac
        return hmac.new(self.identity_secret.encode(), str(external_id).encode(), hashlib.sha256).hexdigest()

    def allows_origin(self, origin):
        if not origin:
            return False
        return origin.rstrip("/") in {o.rstrip("/") for o in self.allowed_origins} or "*" in self.allowed_origins


class PushPromptConfig(models.Model):
    """What the SDK's soft opt-in prompt says and when it appears (set by the marketer)."""

    enabled = models.BooleanField(_("enabled"), default=True)
    title_en = models.CharField(_("title (English)"), max_length=120, default="Get order updates and offers")
    body_en = models.CharField(_("text (English)"), max_length=300, default="We'll only notify you about your orders and deals you'll like.")
    accept_en = models.CharField(_("accept button (English)"), max_length=40, default="Allow")
    decline_en = models.CharField(_("decline button (English)"), max_length=40, default="Not now")
    title_ar = models.CharField(_("title (Arabic)"), max_length=120, default="تابع طلباتك وعروضنا")
    body_ar = models.CharField(_("text (Arabic)"), max_length=300, default="سنرسل لك تنبيهات عن طلباتك والعروض التي تهمك فقط.")
    accept_ar = models.CharField(_("accept button (Arabic)"), max_length=40, default="السماح")
    decline_ar = models.CharField(_("decline button (Arabic)"), max_length=40, default="ليس الآن")
    delay_seconds = models.PositiveIntegerField(_("delay seconds"), default=5)
    page_patterns = models.JSONField(_("page patterns"),
        default=list, blank=True,
        help_text=_("URL path prefixes where the prompt may appear, e.g. [\"/products/\"]. Empty: every page."),
    )
    reprompt_after_days = models.PositiveIntegerField(_("reprompt after days"),
        default=14, help_text=_("After the shopper says 'not now', wait this many days before asking again."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("push prompt")
        verbose_name_plural = _("push prompts")

    def __str__(self):
        return str(_("Push opt-in prompt"))

    @classmethod
    def current(cls):
        config = cls.objects.order_by("pk").first()
        return config or cls.objects.create()


class ImportJobStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    VALIDATING = "validating", _("Checking (dry run)")
    VALIDATED = "validated", _("Checked")
    RUNNING = "running", _("Importing")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ImportJob(models.Model):
    """A CSV/XLSX import run in a task, with progress the operator can watch."""

    resource = models.CharField(_("resource"), max_length=40)  # subscribers | consents | orders
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    file_format = models.CharField(_("file format"), max_length=10, default="csv")
    status = models.CharField(_("status"), max_length=12, choices=ImportJobStatus.choices, default=ImportJobStatus.PENDING)
    dry_run = models.BooleanField(_("dry run"), default=True)
    skip_bad_rows = models.BooleanField(_("skip bad rows"),
        default=False, help_text=_("Import the valid rows and list the bad ones, instead of refusing the whole file."),
    )
    total_rows = models.PositiveIntegerField(_("total rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("processed rows"), default=0)
    created_rows = models.PositiveIntegerField(_("created rows"), default=0)
    updated_rows = models.PositiveIntegerField(_("updated rows"), default=0)
    error_rows = models.PositiveIntegerField(_("error rows"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True, help_text=_("One entry per bad row: row number, field, reason."))
    message = models.TextField(_("message"), blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("created by"))
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.resource} import #{self.pk} ({self.get_status_display()})"

    @property
    def percent(self):
        if not self.total_rows:
            return 0
        return min(100, round(100 * self.processed_rows / self.total_rows))


# --- Segments ---------------------------------------------------------------------

class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", _("Dynamic (rules)")
    STATIC = "static", _("Static (uploaded list)")


def empty_rules():
    return {"type": "group", "match": "all", "conditions": []}


class Segment(models.Model):
    """An audience: shoppers matching a rule tree (dynamic) or an uploaded list (static).

    The rules are described in subscribers/segments.py, which validates them and
    compiles them to one SQL query.
    """

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=10, choices=SegmentKind.choices, default=SegmentKind.DYNAMIC)
    rules = models.JSONField(_("rules"), default=empty_rules, blank=True,
                             help_text=_("Dynamic segments only: a group of conditions (see the segments docs)."))
    starter = models.CharField(_("starter segment"), max_length=40, blank=True, editable=False,
                               help_text=_("Set on the segments Tanbih ships with, so loading them again finds them."))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("created by"))
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["starter"], condition=~Q(starter=""), name="segment_starter_unique"),
        ]

    def __str__(self):
        # Starter segments are named in the catalog's English; show them in the operator's language.
        if self.starter:
            from django.utils.translation import gettext
            return gettext(self.name)
        return self.name

    @property
    def display_description(self):
        if self.starter and self.description:
            from django.utils.translation import gettext
            return gettext(self.description)
        return self.description

    @property
    def is_static(self):
        return self.kind == SegmentKind.STATIC

    def clean(self):
        from .segments import validate_rules

        if self.kind == SegmentKind.DYNAMIC:
            try:
                validate_rules(self.rules, segment=self)
            except ValidationError as error:
                raise ValidationError({"rules": error.messages})

    def subscribers(self, now=None):
        """The matching subscribers as one lazy queryset (no query until evaluated)."""
        from .segments import segment_queryset

        return segment_queryset(self, now=now)


class SegmentMembership(models.Model):
    """One shopper listed in a static segment."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("segment"))
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="segment_memberships",
                                   verbose_name=_("subscriber"))
    added_at = models.DateTimeField(_("added at"), default=dj_timezone.now)

    class Meta:
        verbose_name = _("segment member")
        verbose_name_plural = _("segment members")
        constraints = [
            models.UniqueConstraint(fields=["segment", "subscriber"], name="segment_member_unique"),
        ]
        # "is this shopper in segment S" from the subscriber's side (the unique pair serves the segment's side).
        indexes = [models.Index(fields=["subscriber", "segment"], name="segment_member_sub_idx")]

    def __str__(self):
        return f"{self.segment} · {self.subscriber}"
