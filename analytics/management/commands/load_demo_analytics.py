"""manage.py load_demo_analytics [--if-empty]: the demo store's past messages, attributions and rollups."""
from django.core.management.base import BaseCommand

from analytics.demo_traffic import has_demo_history, load_demo_history


class Command(BaseCommand):
    help = ("Write the messages Tanbih would have sent over the demo store's 90 days (campaigns, the abandoned-cart "
            "journey, push prompts), attribute the orders and rebuild the rollups, so the dashboard has figures.")

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true",
                            help="Do nothing when campaign or journey messages older than a day exist.")

    def handle(self, *args, if_empty=False, **options):
        if if_empty and has_demo_history():
            self.stdout.write("Demo analytics: the message history is already there.")
            return
        load_demo_history(log=lambda line: self.stdout.write(f"Demo analytics: {line}"))
