"""The marketer's segment pages: the list with live counts, the visual rule builder with a live count and a
sample of matching shoppers (htmx), static lists from CSV/XLSX, the preview, duplicate and delete.

Thin: subscribers.segments validates, compiles and counts; subscribers.segment_builder translates between
the builder's inputs and the rule tree. Nothing here imports campaigns: the campaigns (or anything else)
using a segment are found through the many-to-many relations that point at Segment.
"""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.db.models import ManyToManyRel
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST, require_safe

from . import segment_builder as builder
from .imports import ImportFileError, guess_format
from .models import Segment, SegmentKind, SegmentMembership
from .segments import RulesError, add_static_members, count_and_sample, count_segments, validate_rules

VIEW = "subscribers.view_segment"
ADD = "subscribers.add_segment"
CHANGE = "subscribers.change_segment"
DELETE = "subscribers.delete_segment"
SAMPLE_SIZE = 10
SHOWN_ROW_PROBLEMS = 200


class SegmentForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    description = forms.CharField(label=gettext_lazy("Description"), required=False,
                                  widget=forms.Textarea(attrs={"rows": 2}))


class StaticListForm(forms.Form):
    members_file = forms.FileField(
        label=gettext_lazy("Add shoppers from a list (CSV or XLSX)"), required=False,
        help_text=gettext_lazy("A header row with an external_id, email or phone column (phones in E.164, "
                               "+9665…). Rows naming nobody are listed below after the upload."))
    replace_members = forms.BooleanField(label=gettext_lazy("Replace the current members with the list"),
                                         required=False)

    def clean_members_file(self):
        upload = self.cleaned_data.get("members_file")
        if upload and not guess_format(upload.name):
            raise forms.ValidationError(_("The file name ends neither in .csv nor .xlsx."))
        return upload


def _page(request, template, context):
    return render(request, template, {"section": "segments", **context})


def users_of(segment_ids):
    """{segment id: [names of what uses it]} through every many-to-many relation pointing at Segment
    (a campaign's include and exclude segments), one query per relation."""
    users = {}
    for relation in Segment._meta.get_fields(include_hidden=True):
        if not isinstance(relation, ManyToManyRel):
            continue
        through = relation.through
        owner = relation.field.m2m_field_name()
        target = relation.field.m2m_reverse_field_name()
        rows = through.objects.filter(**{f"{target}__in": segment_ids}).select_related(owner)
        for row in rows:
            name = str(getattr(row, owner))
            listed = users.setdefault(getattr(row, f"{target}_id"), [])
            if name not in listed:
                listed.append(name)
    return users


def segments_naming(segment):
    """The other segments whose rules include or exclude `segment` (a "segment" condition)."""
    def names(node):
        if not isinstance(node, dict):
            return False
        if node.get("type") == "segment" and node.get("segment") == segment.pk:
            return True
        return any(names(child) for child in node.get("conditions") or [])

    others = Segment.objects.filter(kind=SegmentKind.DYNAMIC).exclude(pk=segment.pk).only("pk", "name", "rules",
                                                                                         "starter")
    return [other for other in others if names(other.rules)]


def _sample_rows(subscribers):
    return [{
        "pk": s.pk,
        "name": " ".join(part for part in (s.first_name, s.last_name) if part) or s.external_id or f"#{s.pk}",
        "contact": builder.masked_email(s.email) or builder.masked_phone(s.phone),
        "locale": s.locale, "city": s.city, "country": s.country, "last_seen_at": s.last_seen_at,
    } for s in subscribers]


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def segment_list(request):
    segments = list(Segment.objects.order_by("name", "pk")[:500])
    counts = count_segments(segments)  # one query for every segment
    users = users_of([segment.pk for segment in segments])
    for segment in segments:
        segment.live_count = counts.get(segment.pk)
        segment.used_by = users.get(segment.pk, [])
    return _page(request, "subscribers/segments/list.html", {"segments": segments})


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def segment_detail(request, pk):
    """The preview: how many shoppers now, a sample of them, what uses the segment; duplicate and delete."""
    segment = get_object_or_404(Segment, pk=pk)
    count = count_segments([segment]).get(segment.pk)
    sample = []
    if count is not None:
        sample = _sample_rows(segment.subscribers().order_by("-pk")[:SAMPLE_SIZE])
    problems = []
    if segment.kind == SegmentKind.DYNAMIC and count is None:
        try:
            validate_rules(segment.rules, segment=segment)
        except RulesError as error:
            problems = error.problems
    return _page(request, "subscribers/segments/detail.html", {
        "segment": segment, "count": count, "sample": sample, "problems": problems,
        "used_by": users_of([segment.pk]).get(segment.pk, []), "named_by": segments_naming(segment),
    })


@login_required
@permission_required(VIEW, raise_exception=True)
def segment_new(request):
    kind = request.POST.get("kind") or request.GET.get("kind") or SegmentKind.DYNAMIC
    if kind not in SegmentKind.values:
        kind = SegmentKind.DYNAMIC
    if request.method == "POST" and not request.user.has_perm(ADD):
        return HttpResponse(status=403)
    return _edit(request, Segment(kind=kind))


@login_required
@permission_required(VIEW, raise_exception=True)
def segment_edit(request, pk):
    segment = get_object_or_404(Segment, pk=pk)
    if request.method == "POST" and not request.user.has_perm(CHANGE):
        return HttpResponse(status=403)
    return _edit(request, segment)


def _edit(request, segment):
    creating = segment.pk is None
    can_save = request.user.has_perm(ADD if creating else CHANGE)
    if segment.kind == SegmentKind.STATIC:
        return _edit_static(request, segment, creating, can_save)
    problems = []
    if request.method == "POST":
        form = SegmentForm(request.POST)
        rules = builder.rules_from_post(request.POST)
        try:
            validate_rules(rules, segment=segment)
        except RulesError as error:
            problems = error.problems
        if form.is_valid() and not problems:
            segment.name = form.cleaned_data["name"]
            segment.description = form.cleaned_data["description"]
            segment.rules = rules
            if creating:
                segment.created_by = request.user
            segment.save()
            messages.success(request, _("Segment saved."))
            return redirect("segments:detail", segment.pk)
        messages.error(request, _("The segment was not saved: please correct the problems below."))
    else:
        form = SegmentForm(initial={"name": segment.name, "description": segment.description})
        rules = segment.rules
        if not creating:
            try:
                validate_rules(rules, segment=segment)
            except RulesError as error:
                problems = error.problems
    return _page(request, "subscribers/segments/edit.html", {
        "segment": segment, "form": form, "creating": creating, "can_save": can_save,
        "tree": builder.tree_view(rules, problems, builder.segment_choices(exclude=segment)),
        "problems": problems,
    })


def _edit_static(request, segment, creating, can_save):
    report = None
    if request.method == "POST":
        form = SegmentForm(request.POST)
        upload_form = StaticListForm(request.POST, request.FILES)
        if form.is_valid() and upload_form.is_valid():
            segment.name = form.cleaned_data["name"]
            segment.description = form.cleaned_data["description"]
            if creating:
                segment.created_by = request.user
            upload = upload_form.cleaned_data.get("members_file")
            try:
                with transaction.atomic():
                    segment.save()
                    if upload:
                        report = add_static_members(
                            segment=segment, file=upload, file_format=guess_format(upload.name),
                            replace=upload_form.cleaned_data["replace_members"])
            except ImportFileError as error:
                if creating:
                    segment.pk = None
                upload_form.add_error("members_file", str(error))
            else:
                if report is None:
                    messages.success(request, _("Segment saved."))
                    return redirect("segments:detail", segment.pk)
                messages.success(request, _("%(rows)s rows read: %(added)s shoppers added, %(already)s already "
                                            "in the segment, %(left)s left out.") % {
                    "rows": report.rows, "added": report.added, "already": report.already,
                    "left": len(report.problems)})
                creating = False
                form = SegmentForm(initial={"name": segment.name, "description": segment.description})
                upload_form = StaticListForm()
        else:
            messages.error(request, _("The segment was not saved: please correct the problems below."))
    else:
        form = SegmentForm(initial={"name": segment.name, "description": segment.description})
        upload_form = StaticListForm()
    members = 0 if creating else segment.memberships.count()
    return _page(request, "subscribers/segments/edit_static.html", {
        "segment": segment, "form": form, "upload_form": upload_form, "creating": creating, "can_save": can_save,
        "members": members, "report": report,
        "row_problems": report.problems[:SHOWN_ROW_PROBLEMS] if report else [],
        "more_problems": max(len(report.problems) - SHOWN_ROW_PROBLEMS, 0) if report else 0,
    })


@require_POST
@login_required
@permission_required(VIEW, raise_exception=True)
def builder_tree(request):
    """htmx: the rule tree drawn again from the posted inputs (after a change or an add / remove button)."""
    segment = None
    if str(request.POST.get("segment_id", "")).isdigit():
        segment = Segment.objects.filter(pk=int(request.POST["segment_id"])).first()
    rules = builder.rules_from_post(request.POST)
    problems = []
    try:
        validate_rules(rules, segment=segment)
    except RulesError as error:
        problems = error.problems
    return render(request, "subscribers/segments/_tree.html", {
        "tree": builder.tree_view(rules, problems, builder.segment_choices(exclude=segment)),
    })


@require_POST
@login_required
@permission_required(VIEW, raise_exception=True)
def builder_count(request):
    """htmx: how many shoppers the rules being edited match now, and a sample of them.

    Two queries whatever the rules (plus one per other segment a rule names): nothing is saved.
    """
    rules = builder.rules_from_post(request.POST)
    count, sample, problems = None, [], []
    try:
        count, subscribers = count_and_sample(rules, SAMPLE_SIZE)
    except RulesError as error:
        problems = error.problems
    else:
        sample = _sample_rows(subscribers)
    return render(request, "subscribers/segments/_live.html", {"count": count, "sample": sample,
                                                               "problems": problems})


@require_POST
@login_required
@permission_required(ADD, raise_exception=True)
def segment_duplicate(request, pk):
    original = get_object_or_404(Segment, pk=pk)
    with transaction.atomic():
        copy = Segment.objects.create(
            name=(_("Copy of %(name)s") % {"name": original})[:200], description=original.display_description,
            kind=original.kind, rules=original.rules, created_by=request.user)
        if original.kind == SegmentKind.STATIC:
            SegmentMembership.objects.bulk_create(
                [SegmentMembership(segment=copy, subscriber_id=subscriber_id) for subscriber_id in
                 original.memberships.values_list("subscriber_id", flat=True).iterator(chunk_size=2000)],
                batch_size=2000)
    messages.success(request, _("Segment duplicated: this is the copy."))
    return redirect("segments:edit", copy.pk)


@require_POST
@login_required
@permission_required(DELETE, raise_exception=True)
def segment_delete(request, pk):
    segment = get_object_or_404(Segment, pk=pk)
    used_by = users_of([segment.pk]).get(segment.pk, [])
    named_by = segments_naming(segment)
    if used_by or named_by:
        names = ", ".join([*used_by, *(str(other) for other in named_by)])
        messages.error(request, _("“%(name)s” was not deleted: it is used by %(names)s. Take it out of them first.")
                       % {"name": segment, "names": names})
        return redirect("segments:detail", segment.pk)
    name = str(segment)
    segment.delete()
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": name})
    return redirect("segments:list")
