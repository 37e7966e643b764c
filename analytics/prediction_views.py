"""The predictions page (/app/predictions/): the latest training runs with their held-out AUC against the
baseline, how the scores are spread over the shoppers, and "train now" for marketers and admins.

Thin: analytics.predictions computes; the training runs in a Celery task (analytics.tasks).
"""
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Max, Q
from django.shortcuts import redirect
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from subscribers.models import Subscriber

from . import charts
from .models import PredictionRun, PredictionStatus
from .predictions import hour_distribution, score_distribution
from .tables import TEXT, Column, Table
from .views import _page_or_csv

RECENT_RUNS = 12
# A run still "running" after this long was lost with its worker; it no longer blocks "train now".
RUN_LEASE = timedelta(hours=3)


def distribution_tables():
    """The scores' spread over the shoppers as report tables (shown, charted and exported like the reports')."""
    shoppers = Column("shoppers", _("Shoppers"))
    score, hour = Column("score", _("Score"), TEXT), Column("hour", _("Hour"), TEXT)
    empty = _("No shopper has been scored yet.")
    # "80–90%" is a left-to-right run: isolated (U+2066 … U+2069) so a right-to-left page does not read it as 90–80.
    isolate = ("\u2066", "\u2069") if translation.get_language_bidi() else ("", "")
    bins = {field: [{"score": f"{isolate[0]}{low * 100:.0f}–{high * 100:.0f}%{isolate[1]}", "shoppers": n}
                    for low, high, n in score_distribution(field)] for field in ("purchase_likelihood", "churn_risk")}
    return {
        "purchase": Table("purchase", _("Purchase likelihood (next 7 days)"), (score, shoppers),
                          bins["purchase_likelihood"], empty=empty),
        "churn": Table("churn", _("Churn risk (no order in 60 days)"), (score, shoppers), bins["churn_risk"],
                       empty=empty),
        "hours": Table("hours", _("Best send hour (shoppers' local time)"), (hour, shoppers),
                       [{"hour": f"{h:02d}:00", "shoppers": n} for h, n in hour_distribution()], empty=empty),
    }


def _reason(run):
    """Why a run stored no model, in the reader's language (the run's `error` keeps the English detail)."""
    if run.status != PredictionStatus.NOT_ENOUGH_DATA:
        return run.error
    if not run.snapshots:
        return _("Not enough history yet: the first snapshot needs two weeks of data before a full label window.")
    return _("%(positives)s shoppers did it and %(negatives)s did not; at least %(minimum)s of each are needed, "
             "in the held-out shoppers too.") % {
        "positives": run.positives, "negatives": run.rows - run.positives,
        "minimum": settings.PREDICTIONS_MIN_CLASS_ROWS}


def _running():
    return PredictionRun.objects.filter(status=PredictionStatus.RUNNING,
                                        started_at__gte=timezone.now() - RUN_LEASE).exists()


@require_safe
@login_required
@permission_required("analytics.view_predictionrun", raise_exception=True)
def predictions_page(request):
    runs = list(PredictionRun.objects.defer("model").order_by("-started_at", "-pk")[:RECENT_RUNS])
    for run in runs:
        run.reason = _reason(run)
    scored = Subscriber.objects.aggregate(
        shoppers=Count("pk"), scored=Count("pk", filter=Q(scores_updated_at__isnull=False)),
        at=Max("scores_updated_at"))
    report_tables = distribution_tables()
    return _page_or_csv(request, report_tables, "tanbih-predictions", "analytics/predictions.html", {
        "section": "predictions", "runs": runs, "scored": scored, "running": _running(),
        "can_train": request.user.has_perm("analytics.add_predictionrun"),
        "charts": {name: charts.distribution_chart(table, "hour" if name == "hours" else "score", table.title)
                   for name, table in report_tables.items()},
    })


@require_POST
@login_required
@permission_required("analytics.add_predictionrun", raise_exception=True)
def train_now(request):
    from .tasks import train_predictions

    if _running():
        messages.warning(request, _("A training run is already under way; its results appear here when it ends."))
    else:
        train_predictions.delay(triggered_by=request.user.get_username())
        messages.success(request, _("Training started: both models are retrained and every shopper rescored. "
                                    "Reload this page in a minute."))
    return redirect("predictions:page")
