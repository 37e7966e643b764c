"""Celery wrappers for campaigns: they take ids and call campaigns.services."""
from celery import shared_task
from django.utils import timezone

from . import engine, services
from .models import Campaign


@shared_task(name="campaigns.tasks.tick", time_limit=3600, soft_time_limit=3500)
def tick():
    """celery-beat, every CAMPAIGN_TICK_SECONDS: launch due campaigns, pick A/B winners, mark completion."""
    return services.tick()


@shared_task(name="campaigns.tasks.advance_campaign", time_limit=3600, soft_time_limit=3500)
def advance_campaign(campaign_id):
    """Advance one campaign now (a "send now" does not wait for the next tick); a no-op unless it is due."""
    campaign = engine.claim(campaign_id, timezone.now())
    if campaign is not None:
        services.advance(campaign)


@shared_task(name="campaigns.tasks.run_recurring", time_limit=3600, soft_time_limit=3500)
def run_recurring(campaign_id):
    """celery-beat's crontab for a recurring campaign in a fixed timezone fired."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is not None:
        services.run_recurring(campaign)
