"""The marketer's journey pages: the list, the journey drawn as a diagram with live figures per step,
a form per step that publishes a new version, the settings, activation, and the test run.
Thin: journeys.builder and journeys.engine decide."""
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from . import builder, engine, recipes
from .forms import (
    STEP_TYPE_LABELS, AddStepForm, JourneySettingsForm, StepsJSONForm, TestRunForm, step_form,
)
from .models import Enrolment, Journey, JourneyStatus

VIEW = "journeys.view_journey"
CHANGE = "journeys.change_journey"
ADD = "journeys.add_journey"


def _page(request, template, context):
    return render(request, template, {"section": "journeys", "can_change": request.user.has_perm(CHANGE),
                                      **context})


def _recipe_list():
    return [{"slug": recipe.slug, "name": recipe.name, "description": recipe.description,
             "discount_code": "discount_code" in recipe.options} for recipe in recipes.RECIPES.values()]


def _problems(request, error):
    for path, problem in error.problems:
        messages.error(request, f"{path}: {problem}")


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def journey_list(request):
    return _page(request, "journeys/list.html", {
        "journeys": list(builder.journeys_with_counts()[:500]), "recipes": _recipe_list(),
        "can_add": request.user.has_perm(ADD)})


@require_POST
@login_required
@permission_required(ADD, raise_exception=True)
def journey_create(request):
    recipe = request.POST.get("recipe")
    if recipe:
        options = {}
        if request.POST.get("discount_code"):
            options["discount_code"] = request.POST["discount_code"].strip()
        try:
            with transaction.atomic():
                journey = recipes.create_from_recipe(recipe, by=request.user, options=options)
        except recipes.RecipeError as error:
            for _path, problem in error.problems:
                messages.error(request, problem)
            return redirect("journeys:list")
        messages.success(request, _("Journey created from the recipe: check its steps, then activate it."))
        return redirect("journeys:detail", journey.pk)
    name = (request.POST.get("name") or "").strip()[:200] or _("New journey")
    with transaction.atomic():
        journey = Journey.objects.create(name=name, created_by=request.user, goal_event="order_placed")
        builder.publish(journey, builder.BLANK)
    messages.success(request, _("Journey created: choose its trigger, then build its steps."))
    return redirect("journeys:detail", journey.pk)


def _detail_context(journey):
    figures = builder.step_figures(journey)
    graph = journey.current_version.steps if journey.current_version else {}
    return {"journey": journey, "diagram": builder.layout(graph, figures), "totals": builder.journey_totals(journey),
            "trigger": builder.trigger_summary(journey)}


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def journey_detail(request, pk):
    journey = get_object_or_404(Journey.objects.select_related("current_version"), pk=pk)
    tests = list(Enrolment.objects.filter(journey=journey, is_test=True).select_related("subscriber")
                 .order_by("-entered_at", "-pk")[:10])
    return _page(request, "journeys/detail.html", {
        **_detail_context(journey), "add_form": AddStepForm(), "test_form": TestRunForm(), "tests": tests,
        "versions": journey.versions.order_by("-number")[:5]})


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def journey_figures(request, pk):
    """htmx: the diagram with fresh figures, polled every few seconds."""
    journey = get_object_or_404(Journey.objects.select_related("current_version"), pk=pk)
    return _page(request, "journeys/_flow.html", _detail_context(journey))


@login_required
@permission_required(VIEW, raise_exception=True)
def journey_settings(request, pk):
    journey = get_object_or_404(Journey, pk=pk)
    if request.method == "POST":
        if not request.user.has_perm(CHANGE):
            return HttpResponse(status=403)
        form = JourneySettingsForm(request.POST, instance=journey)
        if form.is_valid():
            form.save()
            engine.forget_interest()
            messages.success(request, _("Settings saved."))
            return redirect("journeys:detail", journey.pk)
        messages.error(request, _("Please correct the errors below."))
    else:
        form = JourneySettingsForm(instance=journey)
    return _page(request, "journeys/settings.html", {"journey": journey, "form": form})


def _graph_and_step(journey, key):
    graph = builder.current_graph(journey)
    step = (graph.get("steps") or {}).get(key)
    if step is None:
        raise Http404("no such step")
    return graph, step


@login_required
@permission_required(VIEW, raise_exception=True)
def step_edit(request, pk, key):
    journey = get_object_or_404(Journey.objects.select_related("current_version"), pk=pk)
    graph, step = _graph_and_step(journey, key)
    if request.method == "POST":
        if not request.user.has_perm(CHANGE):
            return HttpResponse(status=403)
        form = step_form(step, graph, request.POST)
        if form.is_valid():
            graph["steps"][key] = form.updated_step()
            if request.POST.get("first"):
                graph["start"] = key
            try:
                version = builder.publish(journey, graph)
            except engine.StepsError as error:
                _problems(request, error)
            else:
                messages.success(request, _("Saved as version %(number)s.") % {"number": version.number})
                return redirect(f"{reverse('journeys:detail', args=[journey.pk])}#step-{key}")
        else:
            messages.error(request, _("Please correct the errors below."))
    else:
        form = step_form(step, graph)
    return _page(request, "journeys/step.html", {
        "journey": journey, "key": key, "step": step, "form": form, "summary": builder.summary(step),
        "type_label": STEP_TYPE_LABELS.get(step.get("type"), step.get("type")),
        "is_first": graph.get("start") == key})


@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def step_add(request, pk):
    journey = get_object_or_404(Journey.objects.select_related("current_version"), pk=pk)
    form = AddStepForm(request.POST)
    graph = builder.current_graph(journey)
    after = request.POST.get("after") or ""
    if not form.is_valid() or (after and after not in (graph.get("steps") or {})):
        messages.error(request, _("Choose a step type and where it goes."))
        return redirect("journeys:detail", journey.pk)
    try:
        key = builder.add_step(graph, after, form.cleaned_data["kind"])
        builder.publish(journey, graph)
    except engine.StepsError as error:
        _problems(request, error)
        messages.warning(request, _("Not added: the steps would not be valid. Edit them as JSON below to add it "
                                    "with its settings at once."))
        return redirect("journeys:detail", journey.pk)
    messages.success(request, _("Step added: set it up now."))
    return redirect("journeys:step", journey.pk, key)


@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def step_remove(request, pk, key):
    journey = get_object_or_404(Journey.objects.select_related("current_version"), pk=pk)
    graph, _step = _graph_and_step(journey, key)
    try:
        builder.publish(journey, builder.remove_step(graph, key))
    except engine.StepsError as error:
        _problems(request, error)
    else:
        messages.success(request, _("Step %(key)s removed.") % {"key": key})
    return redirect("journeys:detail", journey.pk)


@login_required
@permission_required(VIEW, raise_exception=True)
def steps_json(request, pk):
    """Every step at once, as the JSON the engine reads (for what the forms do not cover)."""
    journey = get_object_or_404(Journey.objects.select_related("current_version"), pk=pk)
    if request.method == "POST":
        if not request.user.has_perm(CHANGE):
            return HttpResponse(status=403)
        form = StepsJSONForm(request.POST)
        if form.is_valid():
            try:
                version = builder.publish(journey, form.cleaned_data["steps"])
            except engine.StepsError as error:
                _problems(request, error)
            else:
                messages.success(request, _("Saved as version %(number)s.") % {"number": version.number})
                return redirect("journeys:detail", journey.pk)
    else:
        form = StepsJSONForm(initial={"steps": json.dumps(builder.current_graph(journey), indent=2,
                                                          ensure_ascii=False)})
    return _page(request, "journeys/steps_json.html", {"journey": journey, "form": form})


@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def journey_action(request, pk, action):
    journey = get_object_or_404(Journey.objects.select_related("current_version"), pk=pk)
    if action == "activate":
        try:
            builder.activate(journey)
        except engine.StepsError as error:
            messages.error(request, _("Not activated: the steps are not valid."))
            _problems(request, error)
        else:
            messages.success(request, _("Active: shoppers enter it from now on."))
    elif action == "pause":
        builder.set_status(journey, JourneyStatus.PAUSED)
        messages.success(request, _("Paused: nobody enters and nobody moves on until you activate it again."))
    elif action == "archive":
        builder.set_status(journey, JourneyStatus.ARCHIVED)
        messages.success(request, _("Archived: nobody enters any more."))
    else:
        raise Http404("no such action")
    return redirect("journeys:detail", journey.pk)


# --- The test run ---------------------------------------------------------------------------------

@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def test_start(request, pk):
    journey = get_object_or_404(Journey.objects.select_related("current_version"), pk=pk)
    form = TestRunForm(request.POST)
    if not form.is_valid():
        for problem in form.errors.get("who", []):
            messages.error(request, problem)
        return redirect(f"{reverse('journeys:detail', args=[journey.pk])}#test-run")
    if journey.current_version is None:
        messages.error(request, _("The journey has no steps yet: add one first."))
        return redirect("journeys:detail", journey.pk)
    enrolment = builder.start_test(journey, form.subscriber)
    if enrolment is None:
        messages.error(request, _("This shopper is in the journey already: stop that run first."))
        return redirect(f"{reverse('journeys:detail', args=[journey.pk])}#test-run")
    return redirect("journeys:test", journey.pk, enrolment.pk)


def _test_context(journey, enrolment):
    runs = list(enrolment.steps_run.order_by("visit"))
    sent = builder.test_messages(enrolment)
    by_code = {m.code: m for m in sent}
    steps = enrolment.version.steps.get("steps") or {}
    for run in runs:
        run.summary = builder.summary(steps.get(run.step))
        run.messages = [by_code[c] for c in (run.detail or {}).get("messages", []) if c in by_code]
    current = steps.get(enrolment.step) if enrolment.status == "active" else None
    return {"journey": journey, "enrolment": enrolment, "runs": runs, "sent": sent,
            "current_summary": builder.summary(current) if current else ""}


def _test_enrolment(pk, enrolment_pk):
    journey = get_object_or_404(Journey, pk=pk)
    enrolment = get_object_or_404(Enrolment.objects.select_related("subscriber", "version"), pk=enrolment_pk,
                                  journey=journey, is_test=True)
    return journey, enrolment


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def test_run(request, pk, enrolment_pk):
    journey, enrolment = _test_enrolment(pk, enrolment_pk)
    template = "journeys/_test_run.html" if request.headers.get("HX-Request") else "journeys/test_run.html"
    return _page(request, template, _test_context(journey, enrolment))


@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def test_action(request, pk, enrolment_pk, action):
    journey, enrolment = _test_enrolment(pk, enrolment_pk)
    if action == "next":
        builder.next_step(enrolment)
    elif action == "stop":
        builder.stop_test(enrolment)
    else:
        raise Http404("no such action")
    enrolment.refresh_from_db()
    if request.headers.get("HX-Request"):
        return _page(request, "journeys/_test_run.html", _test_context(journey, enrolment))
    return redirect("journeys:test", journey.pk, enrolment.pk)
