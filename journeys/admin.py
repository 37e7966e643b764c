"""Journeys for ops: read and fix journeys, their versions and enrolments (marketers build them in the app)."""
from django.contrib import admin

from .models import Enrolment, Journey, JourneyVersion, StepRun


class VersionInline(admin.TabularInline):
    model = JourneyVersion
    extra = 0
    fields = ("number", "published_at", "steps")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Journey)
class JourneyAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "trigger_kind", "trigger_event", "goal_event", "entry_rule", "current_version",
                    "updated_at")
    list_filter = ("status", "trigger_kind", "recipe")
    search_fields = ("name", "description", "trigger_event")
    readonly_fields = ("current_version", "created_by", "created_at", "updated_at")
    inlines = [VersionInline]


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    fields = ("visit", "step", "kind", "outcome", "detail", "at")
    readonly_fields = fields
    can_delete = False
    ordering = ("visit",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Enrolment)
class EnrolmentAdmin(admin.ModelAdmin):
    list_display = ("journey", "subscriber", "status", "step", "next_run_at", "entered_at", "finished_at",
                    "exit_reason", "is_test")
    list_filter = ("status", "journey", "is_test")
    search_fields = ("subscriber__external_id", "subscriber__email", "subscriber__phone", "exit_reason")
    raw_id_fields = ("subscriber", "last_message")
    readonly_fields = ("journey", "version", "subscriber", "visits", "trigger_key", "entered_at", "last_message")
    list_select_related = ("journey", "subscriber")
    show_full_result_count = False
    inlines = [StepRunInline]
