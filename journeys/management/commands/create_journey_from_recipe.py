from django.core.management.base import BaseCommand, CommandError

from journeys import recipes
from journeys.models import Journey, JourneyStatus


class Command(BaseCommand):
    help = ("Create a journey from a recipe (" + ", ".join(recipes.RECIPES) + ") with its Arabic and English "
            "templates. It is a draft unless --activate; templates the store already has are kept.")

    def add_arguments(self, parser):
        parser.add_argument("recipe", choices=sorted(recipes.RECIPES))
        parser.add_argument("--activate", action="store_true", help="Make the journey active at once.")
        parser.add_argument("--if-missing", action="store_true",
                            help="Do nothing when a journey made from this recipe already exists (not archived).")
        parser.add_argument("--discount-code", default="",
                            help="For abandoned-cart, win-back and birthday: the code the journey offers.")

    def handle(self, *args, recipe, activate=False, if_missing=False, discount_code="", **options):
        if if_missing:
            existing = Journey.objects.filter(recipe=recipe).exclude(status=JourneyStatus.ARCHIVED).first()
            if existing is not None:
                self.stdout.write(f"{recipe}: already there as “{existing.name}” ({existing.get_status_display()}).")
                return
        try:
            journey = recipes.create_from_recipe(
                recipe, options={"discount_code": discount_code} if discount_code else None)
        except recipes.RecipeError as error:
            raise CommandError(str(error)) from None
        if activate:
            recipes.activate(journey)
        self.stdout.write(self.style.SUCCESS(
            f"{recipe}: created “{journey.name}” ({journey.get_status_display()}), journey {journey.pk}."))
