"""Load the demo store: ~5,000 shoppers, consents, push subscriptions, 90 days of behaviour."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from subscribers import demo
from subscribers.models import Subscriber


class Command(BaseCommand):
    help = ("Create a realistic, repeatable demo store (shoppers in five timezones, Arabic and English, "
            "consents, push subscriptions, 90 days of views, carts and orders) and demo API keys.")

    def add_arguments(self, parser):
        parser.add_argument("--subscribers", type=int, default=demo.DEFAULT_SUBSCRIBERS,
                            help="How many shoppers (default %(default)s).")
        parser.add_argument("--seed", type=int, default=demo.DEFAULT_SEED,
                            help="The same seed gives the same shoppers (default %(default)s).")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--if-empty", action="store_true",
                           help="Do nothing when the store already has subscribers.")
        group.add_argument("--flush", action="store_true",
                           help="Delete every subscriber (and their events, carts, orders...) first.")

    def handle(self, *args, subscribers, seed, if_empty, flush, **options):
        if subscribers < 1:
            raise CommandError("--subscribers must be at least 1.")
        existing = Subscriber.objects.count()
        if existing and if_empty:
            self.stdout.write(f"The store already has {existing} subscribers; no demo store loaded.")
            return
        if existing and not flush:
            raise CommandError(
                f"The store already has {existing} subscribers. Use --if-empty to leave it alone, "
                f"or --flush to delete them and load a new demo store."
            )
        if existing:
            self.stdout.write(f"Deleting {existing} subscribers and everything about them...")
            demo.flush_store()

        self.stdout.write(f"Loading the demo store: {subscribers} subscribers, seed {seed}...")
        summary = demo.load_demo_store(subscribers=subscribers, seed=seed,
                                       log=lambda message: self.stdout.write(f"  {message}"))
        counts = ", ".join(f"{n} {kind}" for kind, n in summary["counts"].items())
        self.stdout.write(self.style.SUCCESS(f"Loaded the demo store in {summary['seconds']:.1f}s: {counts}."))
        self.stdout.write(
            f"  {summary['abandoned_carts']} carts are abandoned; "
            f"{summary['carts_awaiting_abandonment']} active carts are idle past "
            f"{settings.CART_ABANDON_MINUTES} minutes and wait for the abandonment task."
        )
        self.stdout.write(f"  Secret API key (the store's backend; shown once): {summary['secret_key']}")
        self.stdout.write(
            f"  Publishable key (the storefront SDK, allowed from {', '.join(summary['publishable_origins'])}): "
            f"{summary['publishable_key']}"
        )
