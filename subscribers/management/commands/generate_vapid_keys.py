import base64

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management.base import BaseCommand
from py_vapid import Vapid


def _b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate_vapid_keypair():
    """A new P-256 key pair as (public, private): base64url of the raw uncompressed point and scalar.

    The public key is what browsers subscribe with (applicationServerKey); pywebpush
    takes the private one as it is.
    """
    vapid = Vapid()
    vapid.generate_keys()
    public_raw = vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    private_raw = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    return _b64url(public_raw), _b64url(private_raw)


class Command(BaseCommand):
    help = (
        "Print a new VAPID key pair as environment lines (VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY). "
        "Keep the pair for good: changing it orphans every existing push subscription."
    )

    def handle(self, *args, **options):
        public, private = generate_vapid_keypair()
        self.stdout.write(f"VAPID_PUBLIC_KEY={public}\nVAPID_PRIVATE_KEY={private}\n")
