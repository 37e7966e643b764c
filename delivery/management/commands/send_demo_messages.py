from django.core.management.base import BaseCommand

from delivery.demo import has_demo_messages, send_demo_messages


class Command(BaseCommand):
    help = ("Send the starter templates to a few demo shoppers through the outbox (sandbox backends unless "
            "providers are configured), so the Sandbox inbox shows real rendered messages.")

    def add_arguments(self, parser):
        parser.add_argument("--per-channel", type=int, default=2, help="Shoppers per template and channel.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if demo messages exist.")

    def handle(self, *args, per_channel, if_empty, **options):
        if if_empty and has_demo_messages():
            self.stdout.write("Demo messages already sent; nothing to do.")
            return
        counts = send_demo_messages(per_channel=per_channel)
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "none"
        self.stdout.write(self.style.SUCCESS(f"Demo messages: {summary}. See /sandbox/inbox/."))
