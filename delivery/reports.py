"""Reports from service workers: a notification was displayed, clicked or closed."""
from datetime import timedelta

from django.utils import timezone

from subscribers.models import PushSubscription

from . import outbox
from .models import NotificationReport, NotificationReportKind

# Browsers' clocks drift; a report dated further ahead than this is dated on arrival.
MAX_CLOCK_AHEAD = timedelta(minutes=5)


def record_notification_report(*, code, kind, action="", endpoint="", user_agent="", occurred_at=None):
    """Store one report as it came, linked to the push subscription when its endpoint is known."""
    now = timezone.now()
    if occurred_at is None or occurred_at > now + MAX_CLOCK_AHEAD:
        occurred_at = now
    subscription_id = None
    if endpoint:
        subscription_id = PushSubscription.objects.filter(endpoint=endpoint).values_list("pk", flat=True).first()
    report = NotificationReport.objects.create(
        code=code, kind=kind, action=action or "", endpoint=endpoint or "", subscription_id=subscription_id,
        user_agent=(user_agent or "")[:500], occurred_at=occurred_at, received_at=now,
    )
    # Tie the report to the message sent under that code (unknown codes are kept, tied to nothing).
    if kind == NotificationReportKind.DISPLAYED:
        outbox.mark_displayed(code=code, at=occurred_at)
    elif kind == NotificationReportKind.CLICKED:
        outbox.mark_clicked(code=code, at=occurred_at, action=action or "")
    return report
