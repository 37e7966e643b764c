"""The sandbox: every channel's stand-in when no provider is configured.

It sends nothing. The outbox marks the message sent with provider "sandbox",
and the staff-only "Sandbox inbox" page shows what would have gone out.
"""
from .base import ChannelBackend, SendResult


class SandboxBackend(ChannelBackend):
    channel = ""  # serves any channel
    provider = "sandbox"
    # Nothing leaves the machine, so sending a reclaimed message again is harmless.
    resend_safe = True

    def send(self, message):
        return SendResult(provider_id=f"sandbox-{message.code}", status="sent")
