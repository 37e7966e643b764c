"""Addresses that providers and shoppers call back (docs/channels.md lists what to set in Twilio)."""
from django.urls import path

from . import webhooks

app_name = "delivery-webhooks"

urlpatterns = [
    path("webhooks/twilio/status/<str:code>", webhooks.twilio_status, name="twilio-status"),
    path("webhooks/twilio/inbound", webhooks.twilio_inbound, name="twilio-inbound"),
    path("u/<str:code>/<str:signature>", webhooks.email_unsubscribe, name="email-unsubscribe"),
]
