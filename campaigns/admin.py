"""Campaigns for ops: read what was scheduled and what ran; marketers build them in the app (/app/campaigns/)."""
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import Campaign, CampaignRun, HoldoutMember, Variant


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ("label", "template", "channels", "context")


class RunInline(admin.TabularInline):
    model = CampaignRun
    extra = 0
    can_delete = False
    fields = ("occurrence", "phase", "started_at", "finished_writing_at", "counts")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "schedule_kind", "next_run_at", "started_at", "completed_at", "open_in_app")
    list_filter = ("status", "schedule_kind")
    search_fields = ("name", "description")
    date_hierarchy = "created_at"
    readonly_fields = ("status", "next_run_at", "scheduled_at", "started_at", "paused_at", "completed_at",
                       "cancelled_at", "winner", "winner_chosen_at", "winner_chosen_by", "created_by", "created_at")
    filter_horizontal = ("include_segments", "exclude_segments")
    inlines = [VariantInline, RunInline]

    @admin.display(description=_("marketer page"))
    def open_in_app(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("campaigns:detail", args=[obj.pk]), _("Open"))


@admin.register(HoldoutMember)
class HoldoutMemberAdmin(admin.ModelAdmin):
    list_display = ("campaign", "occurrence", "subscriber", "added_at")
    list_filter = ("campaign",)
    raw_id_fields = ("subscriber",)
    readonly_fields = ("campaign", "occurrence", "subscriber", "added_at")

    def has_add_permission(self, request):
        return False
