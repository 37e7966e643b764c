"""The predictions page (/app/predictions/): the latest training runs with their held-out AUC against the
baseline, how the scores are spread over the shoppers, and "train now" for marketers and admins.

Thin: analytics.predictions computes; the training runs in a Celery task (analytics.tasks).
"""
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Max, Q
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from subscribers.models import Subscriber

from .predictions import hour_distribution, score_distribution
from .models import PredictionKind, PredictionRun, PredictionStatus

RECENT_RUNS = 12
# A run still "running" after this long was lost with its worker; it no longer blocks "train now".
RUN_LEASE = timedelta(hours=3)


def _bars(rows):
    """[(label, count, percent of the largest)] for an HTML bar list."""
    largest = max((count for _label, count in rows), default=0)
    return [(label, count, round(100 * count / largest) if largest else 0) for label, count in rows]


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
    return render(request, "analytics/predictions.html", {
        "section": "predictions", "runs": runs, "scored": scored, "running": _running(),
        "can_train": request.user.has_perm("analytics.add_predictionrun"),
        "kinds": PredictionKind.choices,
        "purchase": _bars([(f"{low * 100:.0f}–{high * 100:.0f}%", n) for low, high, n in score_distribution("purchase_likelihood")]),
        "churn": _bars([(f"{low * 100:.0f}–{high * 100:.0f}%", n) for low, high, n in score_distribution("churn_risk")]),
        "hours": _bars([(f"{hour:02d}:00", n) for hour, n in hour_distribution()]),
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
