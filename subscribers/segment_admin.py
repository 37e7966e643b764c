"""Ops screens for segments: the rules as JSON, a live count per segment, static list uploads.

Imported by subscribers/admin.py so the admin's autodiscovery registers it.
"""
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .imports import ImportFileError, guess_format
from .models import Segment, SegmentKind
from .segments import RulesError, add_static_members, count_segments

SHOWN_PROBLEMS = 20


class SegmentAdminForm(forms.ModelForm):
    members_file = forms.FileField(
        label=_("Add shoppers from a list (CSV or XLSX)"), required=False,
        help_text=_("Static segments only. A header row with an external_id, email or phone column; "
                    "rows naming nobody are listed after saving."))
    replace_members = forms.BooleanField(
        label=_("Replace the current members with the list"), required=False)

    class Meta:
        model = Segment
        fields = ("name", "description", "kind", "rules")
        widgets = {"rules": forms.Textarea(attrs={"rows": 18, "cols": 100, "dir": "ltr",
                                                  "style": "font-family: monospace"})}

    def clean(self):
        data = super().clean()
        upload = data.get("members_file")
        if upload and data.get("kind") != SegmentKind.STATIC:
            self.add_error("members_file", _("Only a static segment takes a list; choose the static kind."))
        if upload and not guess_format(upload.name):
            self.add_error("members_file", _("The file name ends neither in .csv nor .xlsx."))
        return data


class SegmentChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # Every segment on the page counted in one query (COUNT … FILTER per segment).
        counts = count_segments(self.result_list)
        for segment in self.result_list:
            segment.live_count = counts.get(segment.pk)


class SegmentAdmin(admin.ModelAdmin):
    form = SegmentAdminForm
    list_display = ("__str__", "kind", "live_count_column", "updated_at", "created_by")
    list_filter = ("kind",)
    list_select_related = ("created_by",)
    list_per_page = 50
    search_fields = ("name", "description")
    readonly_fields = ("members_count", "starter", "created_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "description", "kind", "rules")}),
        (_("Static list"), {"fields": ("members_file", "replace_members", "members_count")}),
        (_("Record"), {"fields": ("starter", "created_by", "created_at", "updated_at")}),
    )

    def get_changelist(self, request, **kwargs):
        return SegmentChangeList

    @admin.display(description=_("shoppers now"))
    def live_count_column(self, obj):
        count = getattr(obj, "live_count", None)
        if count is None:
            return format_html('<span title="{}">–</span>', _("The rules no longer compile; open the segment."))
        return format_html("{}", f"{count:,}")

    @admin.display(description=_("members"))
    def members_count(self, obj):
        if obj is None or obj.pk is None:
            return "–"
        try:
            return f"{obj.subscribers().count():,}"
        except RulesError:
            return "–"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        upload = form.cleaned_data.get("members_file")
        if not upload:
            return
        try:
            report = add_static_members(segment=obj, file=upload, file_format=guess_format(upload.name),
                                        replace=form.cleaned_data.get("replace_members", False))
        except ImportFileError as error:
            messages.error(request, str(error))
            return
        messages.success(request, ngettext(
            "%(rows)s row read: %(added)s shopper added, %(already)s already in the segment.",
            "%(rows)s rows read: %(added)s shoppers added, %(already)s already in the segment.",
            report.rows) % {"rows": report.rows, "added": report.added, "already": report.already})
        for problem in report.problems[:SHOWN_PROBLEMS]:
            messages.warning(request, _("Row %(row)s left out: %(message)s")
                             % {"row": problem["row"], "message": problem["message"]})
        if len(report.problems) > SHOWN_PROBLEMS:
            messages.warning(request, _("… and %(more)s more rows left out.")
                             % {"more": len(report.problems) - SHOWN_PROBLEMS})


admin.site.register(Segment, SegmentAdmin)
