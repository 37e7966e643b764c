"""Journeys: a trigger, a graph of steps, and each shopper's enrolment moving through it.

Waiting is a row, not a broker countdown: an enrolment holds `next_run_at`
(indexed) and the journey tick claims due enrolments with SKIP LOCKED. A step
that sends writes an outbox message whose idempotency key names the enrolment
and the step, so a step runs once even if a worker dies in the middle.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

SOURCE_TYPE = "journey_step"


class JourneyStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    ARCHIVED = "archived", _("Archived")


class EntryRule(models.TextChoices):
    ONCE = "once", _("Once ever")
    ONCE_PER_PERIOD = "once_per_period", _("Once per N days")
    EVERY_TIME = "every_time", _("Every time (never twice at once)")


class TriggerKind(models.TextChoices):
    EVENT = "event", _("An event")
    SEGMENT_ENTERED = "segment_entered", _("Entering a segment")
    DATE_ATTRIBUTE = "date_attribute", _("A date attribute (birthday, anniversary …)")
    INACTIVITY = "inactivity", _("Inactivity for N days")


class Journey(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=JourneyStatus.choices, default=JourneyStatus.DRAFT)
    recipe = models.CharField(_("recipe"), max_length=40, blank=True, help_text=_("The recipe it was made from."))
    trigger_kind = models.CharField(_("trigger"), max_length=20, choices=TriggerKind.choices,
                                    default=TriggerKind.EVENT)
    trigger_event = models.CharField(_("trigger event"), max_length=100, blank=True, db_index=True,
                                     help_text=_("For an event trigger: the event's name, e.g. cart_abandoned."))
    trigger = models.JSONField(_("trigger settings"), default=dict, blank=True,
                               help_text=_("Property filters, the segment, the date attribute and offset, the days "
                                           "of inactivity (see docs/journeys.md)."))
    entry_rule = models.CharField(_("entry"), max_length=20, choices=EntryRule.choices,
                                  default=EntryRule.EVERY_TIME)
    entry_period_days = models.PositiveIntegerField(_("once per (days)"), default=30)
    daily_cap = models.PositiveIntegerField(_("at most per day"), default=0, help_text=_("0: no cap."))
    goal_event = models.CharField(_("goal event"), max_length=100, blank=True,
                                  help_text=_("Exits at once and counts as a conversion, e.g. order_placed."))
    goal_same_cart = models.BooleanField(
        _("goal for the same cart"), default=True,
        help_text=_("With a cart in the context, only an order for that cart (or naming no cart) counts."))
    time_limit_days = models.PositiveIntegerField(_("time limit (days)"), default=30,
                                                  help_text=_("An enrolment still in after this exits."))
    current_version = models.ForeignKey("JourneyVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+", verbose_name=_("current version"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        ordering = ["name", "pk"]
        indexes = [models.Index(fields=["status", "trigger_kind"], name="journey_status_trigger_idx")]

    def __str__(self):
        return self.name


class JourneyVersion(models.Model):
    """The steps as published: enrolments keep the version they started on."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    steps = models.JSONField(_("steps"), default=dict,
                             help_text=_("{\"start\": key, \"steps\": {key: {\"type\": …, \"next\": key, …}}}"))
    published_at = models.DateTimeField(_("published"), default=timezone.now)

    class Meta:
        verbose_name = _("journey version")
        verbose_name_plural = _("journey versions")
        ordering = ["journey", "-number"]
        constraints = [models.UniqueConstraint(fields=["journey", "number"], name="journey_version_unique")]

    def __str__(self):
        return f"{self.journey} v{self.number}"

    def step(self, key):
        return (self.steps.get("steps") or {}).get(key)


class EnrolmentStatus(models.TextChoices):
    ACTIVE = "active", _("In the journey")
    COMPLETED = "completed", _("Reached the end")
    CONVERTED = "converted", _("Converted (goal reached)")
    EXITED = "exited", _("Exited")


class Enrolment(models.Model):
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrolments")
    version = models.ForeignKey(JourneyVersion, on_delete=models.PROTECT, related_name="enrolments")
    subscriber = models.ForeignKey("subscribers.Subscriber", on_delete=models.CASCADE, related_name="enrolments")
    status = models.CharField(_("status"), max_length=10, choices=EnrolmentStatus.choices,
                              default=EnrolmentStatus.ACTIVE)
    step = models.CharField(_("current step"), max_length=40, blank=True)
    visits = models.PositiveIntegerField(default=0, help_text="Steps entered so far: the occurrence of a step run.")
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True)
    is_waiting = models.BooleanField(_("waiting"), default=False,
                                     help_text=_("At a wait step until next_run_at (or the event it waits for)."))
    waiting_for = models.CharField(_("waiting for event"), max_length=100, blank=True)
    context = models.JSONField(_("context"), default=dict, blank=True,
                               help_text=_("What started it: the event, the cart, the order, the product."))
    trigger_key = models.CharField(max_length=200, blank=True,
                                   help_text="What this enrolment is for (the trigger event's id): one each.")
    last_message = models.ForeignKey("delivery.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    entered_at = models.DateTimeField(_("entered"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    exit_reason = models.CharField(_("exit reason"), max_length=200, blank=True)
    is_test = models.BooleanField(_("test run"), default=False)

    class Meta:
        verbose_name = _("enrolment")
        verbose_name_plural = _("enrolments")
        indexes = [
            models.Index(fields=["next_run_at"], condition=Q(status="active"), name="enrolment_due_idx"),
            models.Index(fields=["subscriber", "status"], name="enrolment_subscriber_idx"),
            models.Index(fields=["journey", "entered_at"], name="enrolment_journey_entered_idx"),
        ]
        constraints = [
            # Never twice at once in the same journey.
            models.UniqueConstraint(fields=["journey", "subscriber"], condition=Q(status="active"),
                                    name="enrolment_one_active"),
            models.UniqueConstraint(fields=["journey", "trigger_key"], condition=~Q(trigger_key=""),
                                    name="enrolment_trigger_once"),
        ]

    def __str__(self):
        return f"{self.journey} · {self.subscriber_id} · {self.get_status_display()}"


class StepRun(models.Model):
    """What happened at each step an enrolment went through (the journey's live figures and the test run)."""

    enrolment = models.ForeignKey(Enrolment, on_delete=models.CASCADE, related_name="steps_run")
    step = models.CharField(max_length=40)
    kind = models.CharField(max_length=20)
    visit = models.PositiveIntegerField()
    outcome = models.CharField(max_length=40, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("step run")
        verbose_name_plural = _("step runs")
        ordering = ["enrolment", "visit"]
        constraints = [models.UniqueConstraint(fields=["enrolment", "visit"], name="steprun_once")]
        indexes = [models.Index(fields=["step", "outcome"], name="steprun_step_idx")]

    def __str__(self):
        return f"{self.enrolment_id} · {self.step} · {self.outcome}"


class SegmentMemberSnapshot(models.Model):
    """Who was in a "segment entered" journey's segment at the last scan: entering = not here before."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="segment_snapshot")
    subscriber = models.ForeignKey("subscribers.Subscriber", on_delete=models.CASCADE, related_name="+")
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["journey", "subscriber"], name="segment_snapshot_unique")]
