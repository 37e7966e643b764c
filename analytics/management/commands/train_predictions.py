from django.core.management.base import BaseCommand

from analytics import predictions
from analytics.models import PredictionRun, PredictionStatus


class Command(BaseCommand):
    help = ("Train the purchase-likelihood and churn-risk models on point-in-time snapshots (each run recorded "
            "with its held-out AUC and baseline), then score every shopper, best send hour included.")

    def add_arguments(self, parser):
        parser.add_argument("--if-never", action="store_true",
                            help="Do nothing when a model was already trained (the demo's first run).")

    def handle(self, *args, if_never=False, **options):
        if if_never and PredictionRun.objects.filter(status=PredictionStatus.SUCCEEDED).exists():
            self.stdout.write("Predictions: already trained.")
            return
        runs, counts = predictions.train_and_score(triggered_by="manage.py train_predictions")
        for run in runs:
            if run.status == PredictionStatus.SUCCEEDED:
                self.stdout.write(self.style.SUCCESS(
                    f"{run.kind}: {run.rows} rows ({run.positives} positive) from {len(run.snapshots)} snapshots; "
                    f"held-out AUC {run.auc:.3f} vs baseline {run.baseline_auc:.3f}; {run.scored} shoppers scored."))
            else:
                self.stdout.write(self.style.WARNING(f"{run.kind}: {run.get_status_display()} — {run.error}"))
        peak = counts["peak_hour"]
        self.stdout.write(f"Best send hour: {counts['with_history']} shoppers from their own clicks and displays; "
                          + (f"the others get the store's peak, {peak}:00." if peak is not None
                             else "no engagement recorded yet, so no best hours."))
