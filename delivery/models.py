"""Messages and what happened to them."""
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class NotificationReportKind(models.TextChoices):
    DISPLAYED = "displayed", _("Displayed")
    CLICKED = "clicked", _("Clicked")
    CLOSED = "closed", _("Closed")


class NotificationReport(models.Model):
    """What a browser's service worker said about one web push notification.

    Each report carries the opaque message code that was in the push payload;
    reports are stored as they come, and tying them to the message sent under
    that code is the outbox's job.
    """

    code = models.CharField(_("message code"), max_length=64, db_index=True)
    kind = models.CharField(_("kind"), max_length=10, choices=NotificationReportKind.choices)
    action = models.CharField(
        _("action"), max_length=64, blank=True,
        help_text=_("The action button clicked; empty for a click on the notification itself."),
    )
    endpoint = models.CharField(_("push endpoint"), max_length=1000, blank=True)
    subscription = models.ForeignKey(
        "subscribers.PushSubscription", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="notification_reports", verbose_name=_("push subscription"),
    )
    user_agent = models.CharField(_("user agent"), max_length=500, blank=True)
    occurred_at = models.DateTimeField(_("occurred"), default=timezone.now)
    received_at = models.DateTimeField(_("received"), default=timezone.now)

    class Meta:
        verbose_name = _("notification report")
        verbose_name_plural = _("notification reports")
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["code", "kind"], name="notifreport_code_kind_idx"),
            models.Index(fields=["received_at"], name="notifreport_received_idx"),
        ]

    def __str__(self):
        label = self.get_kind_display()
        if self.action:
            label = f"{label} ({self.action})"
        return f"{self.code} · {label}"


# --- Templates ----------------------------------------------------------------------

class DeliveryChannel(models.TextChoices):
    PUSH = "push", _("Web push")
    SMS = "sms", _("SMS")
    WHATSAPP = "whatsapp", _("WhatsApp")
    EMAIL = "email", _("Email")
    INAPP = "inapp", _("In-app")


class PushUrgency(models.TextChoices):
    VERY_LOW = "very-low", _("Very low")
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")


class InAppPlacement(models.TextChoices):
    BANNER = "banner", _("Banner at the top")
    BOTTOM = "bottom", _("Bar at the bottom")
    MODAL = "modal", _("Dialog (modal)")


class MessageTemplate(models.Model):
    """What a message says, per channel and locale (TemplateContent), written in Liquid."""

    name = models.CharField(_("name"), max_length=150)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    description = models.TextField(_("description"), blank=True)
    is_transactional = models.BooleanField(
        _("transactional"), default=False,
        help_text=_("Order updates and the like: exempt from frequency caps."),
    )
    default_locale = models.CharField(
        _("fallback locale"), max_length=10, default="ar",
        help_text=_("Used when there is no content in the subscriber's locale."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["name"]

    def __str__(self):
        return self.name


class TemplateContent(models.Model):
    """The content of one template on one channel in one locale. Text fields are Liquid."""

    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="contents",
                                 verbose_name=_("template"))
    channel = models.CharField(_("channel"), max_length=10, choices=DeliveryChannel.choices)
    locale = models.CharField(_("locale"), max_length=10, default="ar")
    # Push and in-app
    title = models.CharField(_("title"), max_length=300, blank=True)
    body = models.TextField(_("body"), blank=True, help_text=_("Push, SMS, WhatsApp session text and in-app body."))
    icon = models.CharField(_("icon URL"), max_length=1000, blank=True)
    image = models.CharField(_("image URL"), max_length=1000, blank=True)
    badge = models.CharField(_("badge URL"), max_length=1000, blank=True)
    click_url = models.CharField(_("click URL"), max_length=2000, blank=True)
    actions = models.JSONField(
        _("action buttons"), default=list, blank=True,
        help_text=_('Up to two: [{"action": "buy", "title": "Buy now", "url": "https://…"}]'),
    )
    tag = models.CharField(_("tag"), max_length=100, blank=True)
    ttl_seconds = models.PositiveIntegerField(_("time to live (seconds)"), default=86400)
    urgency = models.CharField(_("urgency"), max_length=10, choices=PushUrgency.choices, default=PushUrgency.NORMAL)
    topic = models.CharField(_("topic"), max_length=32, blank=True)
    # WhatsApp outside the 24-hour session window: an approved template.
    whatsapp_content_sid = models.CharField(_("WhatsApp Content SID"), max_length=64, blank=True)
    whatsapp_variables = models.JSONField(
        _("WhatsApp template variables"), default=dict, blank=True,
        help_text=_('Liquid per numbered variable: {"1": "{{ first_name }}"}'),
    )
    # Email
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    html_body = models.TextField(_("HTML body"), blank=True)
    text_body = models.TextField(_("text body"), blank=True, help_text=_("Derived from the HTML when empty."))
    # In-app
    button_label = models.CharField(_("button label"), max_length=60, blank=True)
    button_url = models.CharField(_("button URL"), max_length=2000, blank=True)
    placement = models.CharField(_("placement"), max_length=20, blank=True, default="banner",
                                 choices=InAppPlacement.choices,
                                 help_text=_("Where the storefront SDK shows it: a banner at the top, a bar at the "
                                             "bottom, or a dialog in the middle of the page."))

    class Meta:
        verbose_name = _("template content")
        verbose_name_plural = _("template contents")
        constraints = [
            models.UniqueConstraint(fields=["template", "channel", "locale"], name="templatecontent_unique"),
        ]

    def __str__(self):
        return f"{self.template} · {self.get_channel_display()} · {self.locale}"


# --- The outbox ---------------------------------------------------------------------

class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    HELD = "held", _("Held (quiet hours or rate limit)")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")
    SUPPRESSED = "suppressed", _("Suppressed")
    UNKNOWN = "unknown", _("Unknown (provider did not answer)")
    CANCELLED = "cancelled", _("Cancelled")


PENDING_STATUSES = (MessageStatus.QUEUED, MessageStatus.HELD)


class MessageLane(models.TextChoices):
    TRANSACTIONAL = "transactional", _("Transactional")
    BULK = "bulk", _("Bulk")


class Message(models.Model):
    """One message to one subscriber on one channel: a row before it is a send.

    `idempotency_key` (source + subscriber + channel + occurrence) is unique, so
    retries, crashed workers and double clicks never send twice; `code` is the
    public id that click links, push reports, unsubscribe links and provider
    callbacks come back to. Status changes only through delivery.outbox.
    """

    idempotency_key = models.CharField(_("idempotency key"), max_length=255, unique=True)
    code = models.CharField(_("code"), max_length=32, unique=True)
    subscriber = models.ForeignKey("subscribers.Subscriber", on_delete=models.CASCADE, related_name="messages",
                                   verbose_name=_("subscriber"))
    channel = models.CharField(_("channel"), max_length=10, choices=DeliveryChannel.choices)
    template = models.ForeignKey(MessageTemplate, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="messages", verbose_name=_("template"))
    locale = models.CharField(_("locale"), max_length=10, blank=True)
    source_type = models.CharField(_("source type"), max_length=30,
                                   help_text=_("campaign, journey_step, api, test …: opaque to delivery."))
    source_id = models.CharField(_("source id"), max_length=64, blank=True)
    occurrence = models.CharField(_("occurrence"), max_length=64, blank=True)
    lane = models.CharField(_("lane"), max_length=15, choices=MessageLane.choices, default=MessageLane.BULK)
    is_transactional = models.BooleanField(_("transactional"), default=False)
    context = models.JSONField(_("personalisation context"), default=dict, blank=True,
                               help_text=_("Extra Liquid variables: cart, order, discount code …"))
    content = models.JSONField(_("rendered content"), default=dict, blank=True)
    push_subscription = models.ForeignKey("subscribers.PushSubscription", null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="messages")
    to = models.CharField(_("to"), max_length=1000, blank=True, help_text=_("Phone, email or push endpoint."))
    status = models.CharField(_("status"), max_length=12, choices=MessageStatus.choices,
                              default=MessageStatus.QUEUED)
    status_reason = models.CharField(_("reason"), max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    provider = models.CharField(_("provider"), max_length=20, blank=True)
    provider_id = models.CharField(_("provider id"), max_length=200, blank=True)
    error = models.TextField(_("last error"), blank=True)
    send_at = models.DateTimeField(_("send at"), default=timezone.now,
                                   help_text=_("Not before: quiet hours, retries and local-time sends move it."))
    queued_at = models.DateTimeField(_("queued"), default=timezone.now)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed"), null=True, blank=True)
    displayed_at = models.DateTimeField(_("displayed"), null=True, blank=True)
    clicked_at = models.DateTimeField(_("clicked"), null=True, blank=True)
    # Set by the claim (queued -> sending) so a worker learns which rows it won;
    # a conditional UPDATE alone does not say which ones matched.
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    # When a send task was last enqueued for this row, so the periodic tick does
    # not enqueue a backlog again on every run (only rows whose task got lost).
    dispatched_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        indexes = [
            models.Index(fields=["send_at"], condition=models.Q(status__in=["queued", "held"]),
                         name="message_pending_due_idx"),
            models.Index(fields=["subscriber", "channel", "sent_at"], name="message_sub_channel_sent_idx"),
            models.Index(fields=["source_type", "source_id", "status"], name="message_source_status_idx"),
            models.Index(fields=["provider", "provider_id"], name="message_provider_id_idx"),
        ]

    def __str__(self):
        return f"{self.code} · {self.get_channel_display()} · {self.get_status_display()}"


class MessageEventKind(models.TextChoices):
    QUEUED = "queued", _("Queued")
    HELD = "held", _("Held")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")
    SUPPRESSED = "suppressed", _("Suppressed")
    RETRY = "retry", _("Retry scheduled")
    UNKNOWN = "unknown", _("Unknown (provider did not answer)")
    DISPLAYED = "displayed", _("Displayed")
    CLICKED = "clicked", _("Clicked")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    CANCELLED = "cancelled", _("Cancelled")


class MessageEvent(models.Model):
    """Append-only history of one message: what analytics counts and the marketer reads."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="history")
    kind = models.CharField(max_length=15, choices=MessageEventKind.choices)
    detail = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    # Set when analytics has added the event to its daily rollups (claimed with SKIP LOCKED, so each
    # event is counted once however many workers roll up at the same time); NULL until then.
    rolled_up_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("message event")
        verbose_name_plural = _("message events")
        ordering = ["occurred_at", "id"]
        indexes = [
            models.Index(fields=["kind", "occurred_at"], name="messageevent_kind_time_idx"),
            # The rollup's queue: only the events not rolled up yet, in id order.
            models.Index(fields=["id"], condition=models.Q(rolled_up_at__isnull=True),
                         name="messageevent_pending_idx"),
            # "Is this the message's first event of this kind?" when rolling up.
            models.Index(fields=["message", "kind"], name="messageevent_message_kind_idx"),
        ]

    def __str__(self):
        return f"{self.message_id} {self.kind}"


class Suppression(models.Model):
    """The global suppression list: never send to this address on this channel (or any, when blank)."""

    channel = models.CharField(_("channel"), max_length=10, choices=DeliveryChannel.choices, blank=True)
    value = models.CharField(_("address"), max_length=320, help_text=_("An email address or an E.164 phone."))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("suppression")
        verbose_name_plural = _("suppression list")
        constraints = [models.UniqueConstraint(fields=["channel", "value"], name="suppression_unique")]

    def __str__(self):
        return f"{self.value} ({self.channel or 'all channels'})"
