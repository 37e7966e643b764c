import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
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

    def add_arguments(self, parser):
        parser.add_argument(
            "--save", action="store_true",
            help="Instead of printing, keep a pair in VAPID_KEYS_FILE (data/vapid-keys.json) unless the "
                 "environment or that file already has one.",
        )

    def handle(self, *args, **options):
        if options["save"]:
            return self._save()
        public, private = generate_vapid_keypair()
        self.stdout.write(f"VAPID_PUBLIC_KEY={public}\nVAPID_PRIVATE_KEY={private}\n")

    def _save(self):
        path = Path(settings.VAPID_KEYS_FILE)
        if settings.VAPID_PUBLIC_KEY and settings.VAPID_PRIVATE_KEY:
            self.stdout.write("VAPID keys are already configured; nothing written.")
            return
        public, private = generate_vapid_keypair()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only from the start: the private key signs every push we send.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"public_key": public, "private_key": private}, handle)
        self.stdout.write(f"New VAPID key pair kept in {path} (public key {public}).")
