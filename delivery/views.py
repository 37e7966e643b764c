"""Pages of the delivery app: click tracking and the staff-only sandbox inbox. Thin: the outbox decides."""
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from . import outbox
from .models import DeliveryChannel, Message

SANDBOX_PAGE_SIZE = 50


@require_safe
def click(request, code, index, signature):
    """/c/<code>/<n>.<sig>: record the click and redirect to link n of that message, and nowhere else.

    The signature covers the code and the link number, and the target is read
    from the stored message, so the address cannot be changed to another site.
    """
    found = outbox.resolve_click(code=code, index=index, signature=signature)
    if found is None:
        raise Http404("Unknown link")
    message, url = found
    if request.method == "GET":
        outbox.mark_clicked(code=message.code, action=outbox.action_for_link(message.content or {}, index))
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


@staff_member_required
def sandbox_inbox(request):
    """What the sandbox backend would have sent, newest first, a page at a time (keyset on the id)."""
    messages = Message.objects.filter(provider="sandbox").select_related("subscriber").order_by("-pk")
    channel = request.GET.get("channel", "")
    if channel in DeliveryChannel.values:
        messages = messages.filter(channel=channel)
    else:
        channel = ""
    before = request.GET.get("before", "")
    if before.isdigit():
        messages = messages.filter(pk__lt=int(before))
    page = list(messages[:SANDBOX_PAGE_SIZE + 1])
    has_more = len(page) > SANDBOX_PAGE_SIZE
    page = page[:SANDBOX_PAGE_SIZE]
    rows = [{"message": message, "fields": _content_fields(message.content or {})} for message in page]
    return render(request, "delivery/sandbox_inbox.html", {
        **admin.site.each_context(request),
        "title": _("Sandbox inbox"),
        "rows": rows,
        "channels": DeliveryChannel.choices,
        "channel": channel,
        "next_before": page[-1].pk if has_more else None,
        "is_first_page": not before,
    })


CONTENT_ORDER = ("subject", "title", "body", "text", "html", "url", "image", "icon", "button_label", "button_url",
                 "placement", "content_sid", "content_variables", "actions", "encoding", "segments")


def _content_fields(content):
    """(label, value) pairs of rendered content in a readable order; the template escapes the values."""
    keys = [key for key in CONTENT_ORDER if content.get(key) not in (None, "", [], {})]
    keys += sorted(key for key in content if key not in CONTENT_ORDER and content[key] not in (None, "", [], {}))
    return [(key.replace("_", " "), content[key]) for key in keys]
