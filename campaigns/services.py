"""The named write paths of campaigns: schedule, the scheduler's step, pause, resume, cancel, winner, test send.

Every change of status happens here, with a conditional UPDATE where two people
(or a person and the scheduler) could race, so a double click on "send" launches
once and a cancel wins over a run in progress: the run's remaining messages are
stopped by the delivery gate (engine.gate) and cancel_pending.
"""
import json
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from delivery import outbox
from delivery.models import DeliveryChannel
from subscribers.models import PushSubscriptionStatus

from . import engine
from .models import (
    SOURCE_TYPE,
    TEST_SOURCE_TYPE,
    Campaign,
    CampaignStatus,
    RunPhase,
    ScheduleKind,
)

RECURRING_TASK = "campaigns.tasks.run_recurring"


def schedule_campaign(campaign, *, by="", now=None):
    """draft -> scheduled (the scheduler sends it when due). Raises CampaignError listing what is missing."""
    now = now or timezone.now()
    found = engine.problems(campaign, now)
    if found:
        raise engine.CampaignError(found)
    with transaction.atomic():
        changed = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.DRAFT).update(
            status=CampaignStatus.SCHEDULED, scheduled_at=now, next_run_at=engine.first_run_at(campaign, now))
        if not changed:
            raise engine.CampaignError([("status", "Only a draft can be scheduled; this one is already %s."
                                         % Campaign.objects.get(pk=campaign.pk).get_status_display())])
        campaign.refresh_from_db()
        if campaign.schedule_kind == ScheduleKind.RECURRING and campaign.recurrence_timezone:
            _install_periodic_task(campaign)
    if campaign.schedule_kind == ScheduleKind.NOW:
        from .tasks import advance_campaign

        transaction.on_commit(lambda: advance_campaign.delay(campaign.pk))
    return campaign


def _install_periodic_task(campaign):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    minute, hour, day_of_month, month, day_of_week = campaign.recurrence.split()
    schedule, _created = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week,
        timezone=campaign.recurrence_timezone)
    task, _created = PeriodicTask.objects.update_or_create(
        name=f"campaign {campaign.pk}",
        defaults={"task": RECURRING_TASK, "crontab": schedule, "args": json.dumps([campaign.pk]),
                  "enabled": True, "queue": "schedule", "description": str(campaign)[:200]})
    Campaign.objects.filter(pk=campaign.pk).update(periodic_task=task)


def _remove_periodic_task(campaign):
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name=f"campaign {campaign.pk}").delete()


def _set(campaign, **fields):
    Campaign.objects.filter(pk=campaign.pk).update(**fields)
    for name, value in fields.items():
        setattr(campaign, name, value)


def advance(campaign, now=None):
    """One step of the scheduler for a claimed campaign: launch, pick the winner, or check for completion."""
    now = now or timezone.now()
    status = campaign.status
    if status == CampaignStatus.SCHEDULED:
        return _launch(campaign, now)
    if status == CampaignStatus.TESTING:
        if campaign.winner_id is None:
            choose_winner(campaign, by="automatic", now=now)
        campaign.refresh_from_db()
        result = engine.run(campaign, occurrence=_one_off_occurrence(campaign), phase=RunPhase.REST, now=now)
        _set(campaign, status=CampaignStatus.SENDING, next_run_at=_check_at(campaign, result, now))
        return result
    if status == CampaignStatus.SENDING:
        return _check_completion(campaign, now)
    return None


def _one_off_occurrence(campaign):
    return "1"


def _check_at(campaign, result, now):
    later = result.last_send_at if result and result.last_send_at else now
    return max(now + engine.COMPLETION_CHECK, later)


def _launch(campaign, now):
    variants = campaign.variants.count()
    _set(campaign, started_at=campaign.started_at or now)
    if campaign.schedule_kind == ScheduleKind.RECURRING:
        found = engine.next_local_occurrence(campaign, now - engine.RUN_LEASE - engine.LAUNCH_LEAD)
        if found is None:
            _set(campaign, status=CampaignStatus.COMPLETED, completed_at=now, next_run_at=None)
            return None
        day, at = found
        result = engine.run(campaign, occurrence=day.isoformat(), phase=RunPhase.ALL, now=now,
                            local_day=day, local_at=at)
        _set(campaign, status=CampaignStatus.SENDING, next_run_at=_check_at(campaign, result, now))
        return result
    ab_phase = variants > 1 and campaign.test_percent < 100
    result = engine.run(campaign, occurrence=_one_off_occurrence(campaign),
                        phase=RunPhase.TEST if ab_phase else RunPhase.ALL, now=now)
    if ab_phase:
        wait = timedelta(hours=campaign.winner_wait_hours)
        _set(campaign, status=CampaignStatus.TESTING, next_run_at=(result.last_send_at or now) + wait)
    else:
        _set(campaign, status=CampaignStatus.SENDING, next_run_at=_check_at(campaign, result, now))
    return result


def _check_completion(campaign, now):
    upcoming = engine.next_pending_at(campaign)
    if upcoming is not None:
        _set(campaign, next_run_at=max(upcoming, now + engine.COMPLETION_CHECK))
        return None
    if campaign.schedule_kind == ScheduleKind.RECURRING:
        following = None
        if not campaign.recurrence_timezone:
            found = engine.next_local_occurrence(campaign, now)
            following = found and engine.earliest_local_moment(*found) - engine.LAUNCH_LEAD
        _set(campaign, status=CampaignStatus.SCHEDULED, next_run_at=following)
        return None
    _set(campaign, status=CampaignStatus.COMPLETED, completed_at=now, next_run_at=None)
    return None


def run_recurring(campaign, now=None):
    """One occurrence of a recurring campaign in a fixed timezone (celery-beat's crontab fired)."""
    now = now or timezone.now()
    if campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.SENDING):
        return None
    occurrence = now.astimezone(engine.zone(campaign.recurrence_timezone)).strftime("%Y-%m-%dT%H:%M")
    _set(campaign, started_at=campaign.started_at or now)
    result = engine.run(campaign, occurrence=occurrence, phase=RunPhase.ALL, now=now)
    _set(campaign, status=CampaignStatus.SENDING, next_run_at=_check_at(campaign, result, now))
    return result


def pause(campaign, *, by="", now=None):
    """Stop sending for now: due messages are held by the delivery gate until resumed."""
    now = now or timezone.now()
    live = [CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.TESTING]
    current = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
    if current not in live:
        return False
    changed = Campaign.objects.filter(pk=campaign.pk, status=current).update(
        status=CampaignStatus.PAUSED, paused_from=current, paused_at=now)
    campaign.refresh_from_db()
    return bool(changed)


def resume(campaign, *, by="", now=None):
    """Go on where it stopped; the held messages go out at the next tick."""
    now = now or timezone.now()
    campaign.refresh_from_db()
    if campaign.status != CampaignStatus.PAUSED:
        return False
    changed = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.PAUSED).update(
        status=campaign.paused_from or CampaignStatus.SENDING, paused_from="",
        next_run_at=now if campaign.paused_from == CampaignStatus.SENDING else campaign.next_run_at)
    from delivery.models import Message, MessageStatus

    # Messages the gate held come back at once rather than at their next recheck.
    Message.objects.filter(source_type=SOURCE_TYPE, source_id__in=campaign.source_ids(),
                           status=MessageStatus.HELD, status_reason="campaign paused").update(send_at=now)
    campaign.refresh_from_db()
    return bool(changed)


def cancel(campaign, *, by="", now=None):
    """Stop for good: every message not yet sent is cancelled at once. -> messages cancelled."""
    now = now or timezone.now()
    changed = Campaign.objects.filter(pk=campaign.pk).exclude(
        status__in=[CampaignStatus.COMPLETED, CampaignStatus.CANCELLED]).update(
        status=CampaignStatus.CANCELLED, cancelled_at=now, next_run_at=None)
    campaign.refresh_from_db()
    if not changed:
        return 0
    _remove_periodic_task(campaign)
    from delivery.models import Message

    return outbox.cancel_pending(Message.objects.filter(source_type=SOURCE_TYPE,
                                                        source_id__in=campaign.source_ids()),
                                 reason=f"campaign cancelled{' by ' + by if by else ''}")


def choose_winner(campaign, *, variant=None, by="", now=None):
    """Set the A/B winner (the best on the campaign's metric unless one is named); the rest get it next tick."""
    now = now or timezone.now()
    chosen = variant or engine.best_variant(campaign)
    changed = Campaign.objects.filter(pk=campaign.pk, winner__isnull=True).update(
        winner=chosen, winner_chosen_at=now, winner_chosen_by=by or "automatic",
        next_run_at=now if campaign.status == CampaignStatus.TESTING else campaign.next_run_at)
    campaign.refresh_from_db()
    return campaign.winner if changed else None


def send_test(campaign, *, subscribers, by="", now=None, channel=None):
    """Each variant to each test shopper now, on the first channel they can get it — or on `channel` (a
    staff member's own browser: push) — marked as a test and left out of the campaign's numbers."""
    messages = []
    batch = uuid.uuid4().hex[:12]
    for variant in campaign.variants.select_related("template").order_by("label"):
        for subscriber in subscribers:
            channel_used, browsers = _test_channel(variant, subscriber, only=channel)
            if channel_used is None:
                continue
            for browser in browsers:
                messages.append(outbox.send_message(
                    subscriber=subscriber, channel=channel_used, template=variant.template,
                    context=variant.context or None, source_type=TEST_SOURCE_TYPE, source_id=variant.source_id,
                    occurrence=batch, transactional=True, push_subscription=browser))
    return messages


TEST_DEVICE_TAG = "test-device"


def _test_device_id(user):
    return f"staff:{user.pk}"


def test_device_subscriber(user):
    """The shopper profile that stands for a staff member's own browsers in test sends (created if needed)."""
    from subscribers import services as subscriber_services

    subscriber, _created = subscriber_services.upsert_subscriber(
        external_id=_test_device_id(user), first_name=user.get_short_name() or user.get_username(),
        tags=[TEST_DEVICE_TAG])
    return subscriber


def test_devices(user):
    """The staff member's registered test browsers (active push subscriptions); no write."""
    from subscribers.models import PushSubscription

    return PushSubscription.objects.filter(subscriber__external_id=_test_device_id(user),
                                           status=PushSubscriptionStatus.ACTIVE)


def register_test_device(user, *, endpoint, p256dh, auth, user_agent=""):
    """This browser receives the staff member's test sends (the endpoint passes the push SSRF guard)."""
    from subscribers import services as subscriber_services
    from subscribers.models import Source

    subscriber = test_device_subscriber(user)
    subscription, _created = subscriber_services.register_push_subscription(
        subscriber=subscriber, endpoint=endpoint, p256dh=p256dh, auth=auth, user_agent=user_agent,
        source=Source.ADMIN)
    return subscription


def _test_channel(variant, subscriber, only=None):
    for channel in [only] if only else variant.effective_channels():
        if channel == DeliveryChannel.PUSH:
            browsers = list(subscriber.push_subscriptions.filter(status=PushSubscriptionStatus.ACTIVE)[:3])
            if browsers:
                return channel, browsers
        elif channel == DeliveryChannel.INAPP:
            return channel, [None]
        elif (subscriber.email if channel == DeliveryChannel.EMAIL else subscriber.phone):
            return channel, [None]
    return None, []


def tick(now=None):
    """The scheduler: every due campaign advanced once, each by the worker that claimed it."""
    now = now or timezone.now()
    advanced = 0
    for campaign_id in engine.due_campaign_ids(now):
        campaign = engine.claim(campaign_id, now)
        if campaign is None:
            continue
        advance(campaign, now)
        advanced += 1
    return advanced
