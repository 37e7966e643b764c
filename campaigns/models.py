"""Broadcast campaigns: an audience, a message (variants), a schedule, and what happened.

A campaign's messages are ordinary outbox rows (delivery.Message) with
source_type "campaign", source_id "<campaign id>:<variant label>" and the run's
occurrence, so the outbox's idempotency key makes every send happen once and the
progress bar is a count by status over one index.
"""
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

SOURCE_TYPE = "campaign"
TEST_SOURCE_TYPE = "campaign_test"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    TESTING = "testing", _("A/B test running")
    PAUSED = "paused", _("Paused")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


EDITABLE_STATUSES = (CampaignStatus.DRAFT,)
LIVE_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.TESTING, CampaignStatus.PAUSED)


class ScheduleKind(models.TextChoices):
    NOW = "now", _("Now")
    AT = "at", _("At a date and time")
    LOCAL_TIME = "local_time", _("At a local time in each subscriber's timezone")
    RECURRING = "recurring", _("Recurring")
    BEST_TIME = "best_time", _("At each subscriber's best hour")


class MissedLocalTime(models.TextChoices):
    NEXT_DAY = "next_day", _("Send the next day at the same local time")
    IMMEDIATELY = "immediately", _("Send at once")
    SKIP = "skip", _("Don't send")


class WinnerMetric(models.TextChoices):
    CLICK_RATE = "click_rate", _("Click rate")
    CONVERSIONS = "conversions", _("Conversion rate")


class Campaign(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("notes"), blank=True)
    status = models.CharField(_("status"), max_length=12, choices=CampaignStatus.choices,
                              default=CampaignStatus.DRAFT)

    # Audience
    include_segments = models.ManyToManyField("subscribers.Segment", related_name="+", blank=True,
                                              verbose_name=_("send to"),
                                              help_text=_("Shoppers in any of these segments."))
    exclude_segments = models.ManyToManyField("subscribers.Segment", related_name="+", blank=True,
                                              verbose_name=_("except"),
                                              help_text=_("Shoppers in any of these segments get nothing."))
    # Message: variants hold the templates; channels in priority order (each shopper gets the first they
    # can be reached on).
    channels = models.JSONField(_("channels"), default=list,
                                help_text=_("In priority order, e.g. [\"push\", \"whatsapp\", \"sms\"]."))

    # Schedule
    schedule_kind = models.CharField(_("when"), max_length=12, choices=ScheduleKind.choices,
                                     default=ScheduleKind.NOW)
    send_at = models.DateTimeField(_("send at"), null=True, blank=True,
                                   help_text=_("For \"at a date and time\" (stored in UTC)."))
    local_date = models.DateField(_("local date"), null=True, blank=True)
    local_time = models.TimeField(_("local time"), null=True, blank=True)
    missed_local_time = models.CharField(_("where that time has passed"), max_length=12,
                                         choices=MissedLocalTime.choices, default=MissedLocalTime.NEXT_DAY)
    recurrence = models.CharField(
        _("recurrence (crontab)"), max_length=100, blank=True,
        help_text=_("minute hour day-of-month month day-of-week, e.g. \"0 18 * * 5\" for Fridays at 18:00."))
    recurrence_timezone = models.CharField(
        _("recurrence timezone"), max_length=64, blank=True,
        help_text=_("The timezone the crontab reads in; empty: each subscriber's own (local time)."))
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+", editable=False)

    # Sending rules
    throttle_per_minute = models.PositiveIntegerField(
        _("at most per minute"), default=0, help_text=_("0: as fast as the providers allow."))
    is_critical = models.BooleanField(
        _("critical"), default=False,
        help_text=_("Ignore quiet hours and frequency caps (consent and the suppression list still apply)."))

    # Test and measurement
    holdout_percent = models.PositiveSmallIntegerField(
        _("hold-out %"), default=0, validators=[MaxValueValidator(50)],
        help_text=_("A random share of the audience that receives nothing, to measure lift."))
    test_percent = models.PositiveSmallIntegerField(
        _("A/B test group %"), default=100, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("With several variants: the share that gets the test (split evenly); the rest get the "
                    "winner. 100: everyone is split and there is no winner phase."))
    winner_metric = models.CharField(_("winner by"), max_length=12, choices=WinnerMetric.choices,
                                     default=WinnerMetric.CLICK_RATE)
    winner_wait_hours = models.PositiveSmallIntegerField(_("pick the winner after (hours)"), default=4,
                                                         validators=[MinValueValidator(1), MaxValueValidator(168)])
    winner = models.ForeignKey("Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               verbose_name=_("winner"))
    winner_chosen_at = models.DateTimeField(_("winner chosen at"), null=True, blank=True)
    winner_chosen_by = models.CharField(_("winner chosen by"), max_length=150, blank=True)
    conversion_event = models.CharField(_("conversion goal"), max_length=100, default="order_placed",
                                        help_text=_("The event that counts as a conversion."))
    conversion_window_hours = models.PositiveSmallIntegerField(_("conversion window (hours)"), default=24,
                                                               validators=[MinValueValidator(1)])

    # Life cycle
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True, editable=False,
                                       help_text=_("When the scheduler next acts on the campaign."))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("created by"))
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    scheduled_at = models.DateTimeField(_("scheduled"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    paused_at = models.DateTimeField(_("paused"), null=True, blank=True)
    paused_from = models.CharField(max_length=12, blank=True, editable=False,
                                   help_text="The status a paused campaign resumes to.")
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["next_run_at"], condition=Q(next_run_at__isnull=False),
                         name="campaign_next_run_idx"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_editable(self):
        return self.status in EDITABLE_STATUSES

    @property
    def is_ab_test(self):
        return self.variants.count() > 1

    def source_ids(self):
        return [variant.source_id for variant in self.variants.all()]


class Variant(models.Model):
    """One version of the campaign's message (A, B, C, D): copy, image, incentive or channel."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    label = models.CharField(_("label"), max_length=1, default="A")
    template = models.ForeignKey("delivery.MessageTemplate", on_delete=models.PROTECT, related_name="+",
                                 verbose_name=_("template"))
    channels = models.JSONField(_("channels"), default=list, blank=True,
                                help_text=_("Empty: the campaign's channels. Set to test a channel."))
    context = models.JSONField(_("extra variables"), default=dict, blank=True,
                               help_text=_("e.g. {\"discount_code\": \"FRIDAY20\"} to test an incentive."))

    class Meta:
        verbose_name = _("variant")
        verbose_name_plural = _("variants")
        ordering = ["campaign", "label"]
        constraints = [models.UniqueConstraint(fields=["campaign", "label"], name="variant_label_unique")]

    def __str__(self):
        return f"{self.campaign} · {self.label}"

    @property
    def source_id(self):
        return f"{self.campaign_id}:{self.label}"

    def effective_channels(self):
        return list(self.channels or self.campaign.channels or [])


class RunPhase(models.TextChoices):
    ALL = "all", _("Everyone")
    TEST = "test", _("A/B test group")
    REST = "rest", _("The rest, with the winner")


class CampaignRun(models.Model):
    """One sending of a campaign to its audience: once, or once per occurrence of a recurring one."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    occurrence = models.CharField(_("occurrence"), max_length=40,
                                  help_text=_("\"1\" for a one-off campaign; the date for a recurring one."))
    phase = models.CharField(_("phase"), max_length=4, choices=RunPhase.choices, default=RunPhase.ALL)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_writing_at = models.DateTimeField(_("messages written"), null=True, blank=True)
    counts = models.JSONField(_("counts"), default=dict, blank=True,
                              help_text=_("Audience, hold-out, and messages written per variant and channel."))

    class Meta:
        verbose_name = _("campaign run")
        verbose_name_plural = _("campaign runs")
        ordering = ["campaign", "started_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["campaign", "occurrence", "phase"], name="run_unique")]

    def __str__(self):
        return f"{self.campaign} · {self.occurrence} · {self.get_phase_display()}"


class HoldoutMember(models.Model):
    """A shopper kept out of a run on purpose (the control group): what lift is measured against."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="holdout")
    occurrence = models.CharField(max_length=40)
    subscriber = models.ForeignKey("subscribers.Subscriber", on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("hold-out member")
        verbose_name_plural = _("hold-out members")
        constraints = [models.UniqueConstraint(fields=["campaign", "occurrence", "subscriber"],
                                               name="holdout_unique")]
