"""Campaigns for ops: read what was scheduled and what ran; marketers build them in the app (/app/campaigns/)."""
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import engine, services
from .models import Campaign, CampaignRun, CampaignStatus, HoldoutMember, Variant


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


def _cancel(campaign, *, by):
    """services.cancel, true when this call cancelled the campaign (it may have no pending messages)."""
    if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        return False
    services.cancel(campaign, by=by)
    return campaign.status == CampaignStatus.CANCELLED


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
    actions = ["schedule_selected", "pause_selected", "resume_selected", "cancel_selected"]

    def _each(self, request, queryset, act, done_message):
        done = 0
        for campaign in queryset:
            try:
                if act(campaign, by=request.user.get_username()):
                    done += 1
            except engine.CampaignError as error:
                self.message_user(request, f"{campaign}: {error}", messages.ERROR)
        self.message_user(request, done_message % {"count": done})

    @admin.action(description=_("Send / schedule the selected drafts"), permissions=["change"])
    def schedule_selected(self, request, queryset):
        self._each(request, queryset, services.schedule_campaign, _("%(count)d campaign(s) scheduled."))

    @admin.action(description=_("Pause the selected campaigns"), permissions=["change"])
    def pause_selected(self, request, queryset):
        self._each(request, queryset, services.pause, _("%(count)d campaign(s) paused."))

    @admin.action(description=_("Resume the selected campaigns"), permissions=["change"])
    def resume_selected(self, request, queryset):
        self._each(request, queryset, services.resume, _("%(count)d campaign(s) resumed."))

    @admin.action(description=_("Cancel the selected campaigns (stops every message not yet sent)"),
                  permissions=["change"])
    def cancel_selected(self, request, queryset):
        self._each(request, queryset, _cancel, _("%(count)d campaign(s) cancelled."))


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
