"""Analytics for ops: the prediction training runs (read-only; deleting old runs frees their stored models)."""
from django.contrib import admin

from .models import PredictionRun


@admin.register(PredictionRun)
class PredictionRunAdmin(admin.ModelAdmin):
    list_display = ("kind", "status", "started_at", "finished_at", "rows", "positives", "auc", "baseline_auc",
                    "scored", "triggered_by")
    list_filter = ("kind", "status")
    exclude = ("model",)
    readonly_fields = ("kind", "status", "triggered_by", "cutoff", "started_at", "finished_at", "snapshots", "rows",
                       "positives", "test_rows", "test_positives", "auc", "baseline_auc", "scored", "features",
                       "params", "error")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("model")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
