from django.core.management.base import BaseCommand

from delivery.starter_templates import STARTER_TEMPLATES, load_starter_templates


class Command(BaseCommand):
    help = ("Create the bilingual (Arabic and English) starter message templates: abandoned cart, order shipped, "
            "back in stock and welcome. Existing templates with the same slug are kept unless --overwrite.")

    def add_arguments(self, parser):
        parser.add_argument("--overwrite", action="store_true",
                            help="Reset templates that already exist under a starter slug to the starter content.")

    def handle(self, *args, overwrite=False, **options):
        written = load_starter_templates(overwrite=overwrite)
        for spec in STARTER_TEMPLATES:
            state = "written" if spec["slug"] in written else "kept (already there)"
            self.stdout.write(f"{spec['slug']}: {state}")
        self.stdout.write(self.style.SUCCESS(f"{len(written)} starter template(s) written."))
