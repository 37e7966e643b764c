"""manage.py rebuild_rollups: compute the analytics rollups again from the raw rows (backfill, or after a fix)."""
from django.core.management.base import BaseCommand

from analytics import attribution, rollups


class Command(BaseCommand):
    help = ("Attribute every order not attributed yet, then drop the daily rollups and compute them again from "
            "the message events, the attributions and the consent history. Safe while workers run.")

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=rollups.DEFAULT_BATCH,
                            help="Message events rolled up per transaction (default %(default)s).")

    def handle(self, *args, batch_size, **options):
        attributed = attribution.sweep_all()
        events = rollups.rebuild(batch_size=batch_size)
        self.stdout.write(f"Orders attributed: {attributed}. Message events rolled up: {events}.")
