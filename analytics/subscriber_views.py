"""The marketer's shopper pages: /app/subscribers/ (search, newest first) and a shopper's 360° page.

Thin: analytics.subscriber_profile reads everything in a fixed number of queries.
Reading shoppers needs `subscribers.view_subscriber` (marketers and viewers have it);
their messages and journeys show to those who may view messages and enrolments;
whole email addresses and phone numbers only to those who may change shoppers
(the ops admins), everyone else sees them masked like a segment's sample.
"""
from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_safe

from . import subscriber_profile as selectors

VIEW = "subscribers.view_subscriber"
SEE_CONTACT = "subscribers.change_subscriber"
SEE_MESSAGES = "delivery.view_message"
SEE_JOURNEYS = "journeys.view_enrolment"


def _page(request, template, context):
    return render(request, template, {"section": "subscribers", "default_currency": settings.DEFAULT_CURRENCY,
                                      **context})


def _positive_int(text):
    return int(text) if str(text or "").isdigit() and int(text) > 0 else None


def _shopper_or_404(pk):
    subscriber = selectors.load_subscriber(pk)
    if subscriber is None:
        raise Http404
    return subscriber


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def subscriber_list(request):
    """Shoppers newest first, searched by store id, email, phone or name, paged by "older" links (no OFFSET)."""
    query = request.GET.get("q", "")[:200]
    rows, older = selectors.subscriber_list(query, before=_positive_int(request.GET.get("before")))
    unmasked = request.user.has_perm(SEE_CONTACT)
    shoppers = [{"subscriber": row, "contact": selectors.contact_of(row, unmasked=unmasked)} for row in rows]
    return _page(request, "analytics/subscriber_list.html", {
        "query": query, "shoppers": shoppers, "older": older, "paged": "before" in request.GET})


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def subscriber_detail(request, pk):
    subscriber = _shopper_or_404(pk)
    can_see_messages = request.user.has_perm(SEE_MESSAGES)
    email, phone = selectors.contact_of(subscriber, unmasked=request.user.has_perm(SEE_CONTACT))
    return _page(request, "analytics/subscriber_detail.html", {
        "subscriber": subscriber, "email": email, "phone": phone, "can_see_messages": can_see_messages,
        "can_see_journeys": request.user.has_perm(SEE_JOURNEYS),
        **selectors.profile(subscriber, with_messages=can_see_messages,
                            with_journeys=request.user.has_perm(SEE_JOURNEYS)),
    })


@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def subscriber_timeline(request, pk):
    """htmx: the next page of the timeline after the cursor a "load more" button carries."""
    subscriber = _shopper_or_404(pk)
    cursor = selectors.Cursor.parse(request.GET.get("after", ""))
    if cursor is None:
        raise Http404
    entries, following = selectors.timeline(subscriber, cursor=cursor,
                                            with_messages=request.user.has_perm(SEE_MESSAGES))
    return render(request, "analytics/subscriber_timeline.html", {
        "subscriber": subscriber, "timeline": entries, "timeline_next": following})
