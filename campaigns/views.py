"""The marketer's campaign pages: list, builder (audience → message → schedule → review → send), and the
live page of a campaign being sent. Thin: campaigns.engine and campaigns.services decide."""
import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from delivery.models import DeliveryChannel
from subscribers.models import Segment

from . import engine, services
from .forms import CampaignForm, TestSendForm, variant_formset
from .models import LIVE_STATUSES, Campaign, CampaignStatus, Variant

VIEW = "campaigns.view_campaign"
CHANGE = "campaigns.change_campaign"
ADD = "campaigns.add_campaign"
PROGRESS_COLOURS = ("queued", "held", "sending", "sent", "delivered", "failed", "suppressed", "cancelled", "unknown")


def _page(request, template, context):
    return render(request, template, {"section": "campaigns", **context})


def _test_send_context(request):
    return {"test_form": TestSendForm(), "vapid_public_key": settings.VAPID_PUBLIC_KEY,
            "has_test_device": request.user.has_perm(CHANGE) and services.test_devices(request.user).exists()}


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def campaign_list(request):
    campaigns = list(Campaign.objects.prefetch_related("include_segments").order_by("-created_at", "-pk")[:200])
    return _page(request, "campaigns/list.html", {"campaigns": campaigns})


@require_POST
@login_required
@permission_required(ADD, raise_exception=True)
def campaign_create(request):
    name = (request.POST.get("name") or "").strip()[:200] or _("New campaign")
    campaign = Campaign.objects.create(name=name, created_by=request.user, channels=[DeliveryChannel.PUSH])
    return redirect("campaigns:edit", campaign.pk)


@login_required
@permission_required(VIEW, raise_exception=True)
def campaign_edit(request, pk):
    """The builder: one page with the four steps and the review; only a draft is edited."""
    campaign = get_object_or_404(Campaign, pk=pk)
    if not campaign.is_editable:
        return redirect("campaigns:detail", campaign.pk)
    extra = 1 if request.GET.get("add_variant") and campaign.variants.count() < 4 else 0
    if not campaign.variants.exists():
        extra = 0
    Formset = variant_formset(extra)
    if request.method == "POST":
        if not request.user.has_perm(CHANGE):
            return HttpResponse(status=403)
        form = CampaignForm(request.POST, instance=campaign)
        variants = Formset(request.POST, instance=campaign)
        if form.is_valid() and variants.is_valid():
            with transaction.atomic():
                form.save()
                variants.save()
            messages.success(request, _("Draft saved."))
            target = reverse("campaigns:edit", args=[campaign.pk])
            if "add_variant" in request.POST:
                target += "?add_variant=1"
            return redirect(f"{target}#{request.POST.get('anchor', 'review')}")
        messages.error(request, _("Please correct the errors below."))
    else:
        form = CampaignForm(instance=campaign)
        variants = Formset(instance=campaign)
    review = engine.review(campaign) if request.method == "GET" and campaign.variants.exists() else None
    return _page(request, "campaigns/edit.html", {
        "campaign": campaign, "form": form, "variants": variants, "review": review, **_test_send_context(request),
        "can_change": request.user.has_perm(CHANGE),
    })


@require_POST
@login_required
@permission_required(VIEW, raise_exception=True)
def audience_count(request, pk):
    """htmx: the live count of the audience as the marketer ticks segments (nothing is saved)."""
    get_object_or_404(Campaign, pk=pk)
    include = _ids(request.POST.getlist("include_segments"))
    exclude = _ids(request.POST.getlist("exclude_segments"))
    count = None
    if include:
        from subscribers.segments import RulesError

        try:
            count = engine.audience_count(include, exclude)
        except RulesError:
            count = None
    return render(request, "campaigns/_audience_count.html", {"count": count, "include": include})


def _ids(values):
    wanted = [int(v) for v in values if str(v).isdigit()]
    return list(Segment.objects.filter(pk__in=wanted).values_list("pk", flat=True))


@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def campaign_schedule(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        services.schedule_campaign(campaign, by=request.user.get_username())
    except engine.CampaignError as error:
        for _field, problem in error.problems:
            messages.error(request, problem)
        return redirect(f"{reverse('campaigns:edit', args=[campaign.pk])}#review")
    messages.success(request, _("Campaign scheduled."))
    return redirect("campaigns:detail", campaign.pk)


@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def register_test_device(request):
    """This browser's push subscription (JSON, as PushSubscription.toJSON() gives it) joins the staff member's
    test devices: "Send test to my browser" reaches it."""
    from subscribers.push_endpoints import PushEndpointRefused

    try:
        data = json.loads(request.body or b"{}")
        endpoint, keys = str(data["endpoint"]), data["keys"]
        p256dh, auth = str(keys["p256dh"]), str(keys["auth"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"errors": [{"field": "endpoint", "code": "invalid",
                                         "message": _("Expected a push subscription: endpoint and keys.")}]},
                            status=400)
    try:
        services.register_test_device(request.user, endpoint=endpoint, p256dh=p256dh, auth=auth,
                                      user_agent=request.headers.get("User-Agent", ""))
    except (PushEndpointRefused, ValidationError) as refused:
        reason = "; ".join(getattr(refused, "messages", None) or [str(refused)])
        return JsonResponse({"errors": [{"field": "endpoint", "code": "refused", "message": reason}]}, status=400)
    return JsonResponse({"registered": True})


@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def campaign_test_send(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk)
    if request.POST.get("to_my_browser"):
        if not services.test_devices(request.user).exists():
            messages.error(request, _("This browser is not set up for tests yet: allow notifications first."))
        else:
            me = services.test_device_subscriber(request.user)
            sent = services.send_test(campaign, subscribers=[me], by=request.user.get_username(), channel="push")
            messages.success(request, _("%(count)d test push(es) sent to your browsers.") % {"count": len(sent)})
        return redirect(request.POST.get("next") or reverse("campaigns:edit", args=[campaign.pk]))
    form = TestSendForm(request.POST)
    if form.is_valid():
        sent = services.send_test(campaign, subscribers=form.cleaned_data["recipients"],
                                  by=request.user.get_username())
        messages.success(request, _("%(count)d test message(s) sent: see them in the Sandbox inbox or on the "
                                    "test phones.") % {"count": len(sent)})
    else:
        for problem in form.errors.get("recipients", []):
            messages.error(request, problem)
    return redirect(request.POST.get("next") or reverse("campaigns:edit", args=[campaign.pk]))


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def campaign_detail(request, pk):
    campaign = get_object_or_404(Campaign.objects.select_related("winner"), pk=pk)
    if campaign.is_editable:
        return redirect("campaigns:edit", campaign.pk)
    return _page(request, "campaigns/detail.html", {
        "campaign": campaign, **_progress_context(campaign), **_test_send_context(request),
        "can_change": request.user.has_perm(CHANGE),
    })


def _progress_context(campaign):
    progress = engine.progress(campaign)
    total = progress["total"] or 1
    bars = [{"status": status, "count": progress["counts"][status],
             "percent": round(100 * progress["counts"][status] / total, 2)} for status in PROGRESS_COLOURS]
    results = None
    if campaign.variants.count() > 1:
        results = engine.variant_results(campaign)
    return {"progress": progress, "bars": bars, "results": results, "live": campaign.status in LIVE_STATUSES}


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def campaign_progress(request, pk):
    """htmx: the progress block, polled every few seconds while the campaign is live."""
    campaign = get_object_or_404(Campaign.objects.select_related("winner"), pk=pk)
    return render(request, "campaigns/_progress.html", {"campaign": campaign, **_progress_context(campaign)})


@require_POST
@login_required
@permission_required(CHANGE, raise_exception=True)
def campaign_action(request, pk, action):
    campaign = get_object_or_404(Campaign, pk=pk)
    by = request.user.get_username()
    if action == "pause":
        done = services.pause(campaign, by=by)
        messages.success(request, _("Paused: nothing more is sent until you resume.")) if done else None
    elif action == "resume":
        done = services.resume(campaign, by=by)
        messages.success(request, _("Resumed.")) if done else None
    elif action == "cancel":
        cancelled = services.cancel(campaign, by=by)
        done = campaign.status == CampaignStatus.CANCELLED
        messages.success(request, _("Cancelled: %(count)d message(s) not yet sent were stopped.")
                         % {"count": cancelled})
    elif action == "winner":
        variant = get_object_or_404(Variant, campaign=campaign, pk=request.POST.get("variant"))
        done = services.choose_winner(campaign, variant=variant, by=by) is not None
        if done:
            messages.success(request, _("Variant %(label)s wins: the rest of the audience gets it now.")
                             % {"label": variant.label})
    else:
        return HttpResponse(status=404)
    if not done:
        messages.warning(request, _("Nothing changed: the campaign is %(status)s.")
                         % {"status": campaign.get_status_display()})
    return redirect("campaigns:detail", campaign.pk)
