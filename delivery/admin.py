from django.contrib import admin

from .models import NotificationReport


@admin.register(NotificationReport)
class NotificationReportAdmin(admin.ModelAdmin):
    """Reports are evidence from browsers: read-only."""

    list_display = ("code", "kind", "action", "subscription", "occurred_at", "received_at")
    list_filter = ("kind", "received_at")
    search_fields = ("code", "endpoint")
    date_hierarchy = "received_at"
    list_select_related = ("subscription",)
    raw_id_fields = ("subscription",)
    readonly_fields = [f.name for f in NotificationReport._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
