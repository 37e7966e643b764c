"""The interface every channel backend implements."""
import abc
from dataclasses import dataclass, field


class DeliveryError(Exception):
    """A send that did not go through.

    permanent: retrying can't help (push 404/410, invalid number, opted out):
        the outbox marks the message failed and `on_permanent` actions apply.
    retry_after: seconds the provider asked us to wait (429 / 503 Retry-After).
    unknown: the provider may or may not have sent it (a timeout after the
        request left): never retried blindly where the provider has no
        idempotency key (Twilio), the message is marked unknown.
    code: the provider's error code ("410", "21610", …) for the marketer and
        for the permanent-error handling (expire subscription, revoke consent).
    """

    def __init__(self, message, *, permanent=False, retry_after=None, unknown=False, code=""):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.unknown = unknown
        self.code = str(code or "")


@dataclass
class SendResult:
    provider_id: str = ""
    # "sent" (accepted by the provider) or "delivered" (the channel confirms at once, e.g. in-app).
    status: str = "sent"
    detail: dict = field(default_factory=dict)


class ChannelBackend(abc.ABC):
    """One provider for one channel.

    `send(message)` sends one outbox Message whose `content` is already
    rendered and returns a SendResult or raises DeliveryError. `send_many`
    may overlap many sends (connection pools, threads); the default sends one
    after the other. Backends hold no per-message state and are shared by a
    worker's threads.
    """

    channel = ""
    provider = ""

    def is_configured(self):
        return True

    @abc.abstractmethod
    def send(self, message):
        """Send one message; return a SendResult or raise DeliveryError."""

    def send_many(self, messages):
        """One SendResult or DeliveryError per message, in order."""
        results = []
        for message in messages:
            try:
                results.append(self.send(message))
            except DeliveryError as error:
                results.append(error)
        return results
