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
