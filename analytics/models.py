"""What messages earned, kept as facts (Attribution) and as daily aggregates (the rollups).

Reports read the rollups so that their cost depends on the number of days and
sources shown, not on the number of messages ever sent (docs/analytics.md).
"""
from decimal import Decimal

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AttributionKind(models.TextChoices):
    CLICK = "click", _("Click-through")
    VIEW = "view", _("View-through")
    NONE = "none", _("Not attributed")


class Attribution(models.Model):
    """The one answer to "which message earned this order?" (exactly one row per order).

    An order no message can claim still gets a row (kind "none"), so that
    "orders without a row" is exactly the work the sweep has left to do.
    The recovery fields say whether the order bought back an abandoned cart
    after a recovery message (docs/analytics.md, Cart recovery).
    """

    order = models.OneToOneField("subscribers.Order", on_delete=models.CASCADE, related_name="attribution",
                                 verbose_name=_("order"))
    message = models.ForeignKey("delivery.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+", verbose_name=_("message"))
    kind = models.CharField(_("kind"), max_length=5, choices=AttributionKind.choices)
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    source_type = models.CharField(_("source type"), max_length=30, blank=True)
    source_id = models.CharField(_("source id"), max_length=64, blank=True)
    channel = models.CharField(_("channel"), max_length=10, blank=True)
    touched_at = models.DateTimeField(_("clicked or seen at"), null=True, blank=True)
    placed_at = models.DateTimeField(_("order placed at"))
    attributed_at = models.DateTimeField(_("attributed at"), default=timezone.now)
    recovered_cart = models.ForeignKey("subscribers.Cart", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+", verbose_name=_("recovered cart"))
    cart_abandoned_at = models.DateTimeField(_("cart abandoned at"), null=True, blank=True,
                                             help_text=_("The abandonment this order recovered."))
    recovery_message = models.ForeignKey("delivery.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+", verbose_name=_("recovery message"))
    recovery_source_id = models.CharField(_("recovery journey step"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("attribution")
        verbose_name_plural = _("attributions")
        indexes = [
            models.Index(fields=["placed_at"], name="attribution_placed_idx"),
            models.Index(fields=["source_type", "source_id"], name="attribution_source_idx"),
            models.Index(fields=["cart_abandoned_at"], condition=models.Q(recovered_cart__isnull=False),
                         name="attribution_recovered_idx"),
        ]

    def __str__(self):
        return f"{self.order_id} · {self.get_kind_display()}"


class DailyRollup(models.Model):
    """Per store-timezone day, source (campaign variant or journey step) and channel: what happened.

    Message counts are distinct messages, counted on the day of their first event
    of that kind; conversions and revenue on the day the order was placed.
    """

    day = models.DateField(_("day"))
    source_type = models.CharField(_("source type"), max_length=30)
    source_id = models.CharField(_("source id"), max_length=64, blank=True)
    channel = models.CharField(_("channel"), max_length=10)
    targeted = models.BigIntegerField(_("targeted"), default=0)
    sent = models.BigIntegerField(_("sent"), default=0)
    delivered = models.BigIntegerField(_("delivered"), default=0)
    displayed = models.BigIntegerField(_("displayed"), default=0)
    clicked = models.BigIntegerField(_("clicked"), default=0)
    failed = models.BigIntegerField(_("failed"), default=0)
    suppressed = models.BigIntegerField(_("suppressed"), default=0)
    unsubscribed = models.BigIntegerField(_("unsubscribed"), default=0)
    converted_click = models.BigIntegerField(_("converted (click)"), default=0)
    converted_view = models.BigIntegerField(_("converted (view)"), default=0)
    revenue_click = models.DecimalField(_("revenue (click)"), max_digits=18, decimal_places=2, default=Decimal("0"))
    revenue_view = models.DecimalField(_("revenue (view)"), max_digits=18, decimal_places=2, default=Decimal("0"))

    class Meta:
        verbose_name = _("daily figures")
        verbose_name_plural = _("daily figures")
        constraints = [models.UniqueConstraint(fields=["day", "source_type", "source_id", "channel"],
                                               name="dailyrollup_unique")]
        indexes = [models.Index(fields=["source_type", "source_id", "day"], name="dailyrollup_source_idx")]

    def __str__(self):
        return f"{self.day} · {self.source_type}:{self.source_id} · {self.channel}"


class ReasonRollup(models.Model):
    """Per day, source and channel: messages that failed or were suppressed, by reason."""

    day = models.DateField(_("day"))
    source_type = models.CharField(_("source type"), max_length=30)
    source_id = models.CharField(_("source id"), max_length=64, blank=True)
    channel = models.CharField(_("channel"), max_length=10)
    outcome = models.CharField(_("outcome"), max_length=10)  # failed | suppressed
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    count = models.BigIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("failures by reason")
        verbose_name_plural = _("failures by reason")
        constraints = [models.UniqueConstraint(
            fields=["day", "source_type", "source_id", "channel", "outcome", "reason"], name="reasonrollup_unique")]
        indexes = [
            models.Index(fields=["source_type", "source_id", "outcome"], name="reasonrollup_source_idx"),
            models.Index(fields=["outcome", "day"], name="reasonrollup_day_idx"),
        ]

    def __str__(self):
        return f"{self.day} · {self.channel} · {self.outcome} · {self.reason}"


class SubscriberDaily(models.Model):
    """Subscribers reachable (consent granted) on each channel at the end of each store-timezone day."""

    day = models.DateField(_("day"))
    channel = models.CharField(_("channel"), max_length=10)
    reachable = models.BigIntegerField(_("reachable"), default=0)
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)

    class Meta:
        verbose_name = _("subscribers per channel")
        verbose_name_plural = _("subscribers per channel")
        constraints = [models.UniqueConstraint(fields=["day", "channel"], name="subscriberdaily_unique")]

    def __str__(self):
        return f"{self.day} · {self.channel} · {self.reachable}"


class LiftRollup(models.Model):
    """One campaign run's hold-out figures (units converted within the conversion window), kept by a periodic
    task until the window has closed, so a report sums a few rows instead of testing every message."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+",
                                 verbose_name=_("campaign"))
    occurrence = models.CharField(_("occurrence"), max_length=64)
    messaged = models.BigIntegerField(_("messaged"), default=0)
    messaged_converted = models.BigIntegerField(_("messaged and converted"), default=0)
    control = models.BigIntegerField(_("held out"), default=0)
    control_converted = models.BigIntegerField(_("held out and converted"), default=0)
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)
    is_final = models.BooleanField(_("final"), default=False,
                                   help_text=_("The run's conversion window has closed: no longer recomputed."))

    class Meta:
        verbose_name = _("hold-out figures")
        verbose_name_plural = _("hold-out figures")
        constraints = [models.UniqueConstraint(fields=["campaign", "occurrence"], name="liftrollup_unique")]

    def __str__(self):
        return f"{self.campaign_id} · {self.occurrence}"


class PredictionKind(models.TextChoices):
    PURCHASE = "purchase", _("Purchase in the next 7 days")
    CHURN = "churn", _("No order in the next 60 days (churn)")


class PredictionStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Trained")
    NOT_ENOUGH_DATA = "not_enough_data", _("Not enough data")
    FAILED = "failed", _("Failed")


class PredictionRun(models.Model):
    """One training of a prediction model (analytics/predictions.py): what it learnt from, how well it did on
    held-out shoppers against a recency-only baseline, and the fitted model itself (joblib bytes), which the
    scoring of every shopper loads from the latest successful run."""

    kind = models.CharField(_("prediction"), max_length=10, choices=PredictionKind.choices)
    status = models.CharField(_("status"), max_length=16, choices=PredictionStatus.choices,
                              default=PredictionStatus.RUNNING)
    triggered_by = models.CharField(_("started by"), max_length=150, blank=True)
    cutoff = models.DateTimeField(_("as of"), help_text=_("Snapshots are taken before this moment."))
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    snapshots = models.JSONField(_("snapshot cutoffs"), default=list, blank=True)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    positives = models.PositiveIntegerField(_("positive rows"), default=0)
    test_rows = models.PositiveIntegerField(_("held-out rows"), default=0)
    test_positives = models.PositiveIntegerField(_("held-out positive rows"), default=0)
    auc = models.FloatField(_("AUC"), null=True, blank=True)
    baseline_auc = models.FloatField(_("baseline AUC"), null=True, blank=True)
    scored = models.PositiveIntegerField(_("shoppers scored"), default=0)
    features = models.JSONField(_("features"), default=list, blank=True)
    params = models.JSONField(_("model parameters"), default=dict, blank=True)
    error = models.TextField(_("problem"), blank=True)
    model = models.BinaryField(_("fitted model"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("prediction run")
        verbose_name_plural = _("prediction runs")
        indexes = [models.Index(fields=["kind", "status", "-finished_at"], name="predictionrun_latest_idx")]

    def __str__(self):
        return f"{self.get_kind_display()} · {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def positive_rate(self):
        return self.positives / self.rows if self.rows else None
