"""The marketer's template pages: the list, and the editor with a live preview per channel and locale.

Thin: delivery.forms.TemplateContentForm validates (the admin's checks, Liquid errors with their
line) and delivery.rendering renders. The preview renders what the marketer has typed for a
made-up shopper in that locale; the typed content lives in an unsaved TemplateContent and is
never written.
"""
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.forms import modelform_factory
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from subscribers.validation import normalize_locale

from .forms import TemplateContentForm, describe_render_error
from .models import DeliveryChannel, MessageTemplate, TemplateContent
from .rendering import (
    PUSH_PAYLOAD_LIMIT,
    RenderError,
    push_payload_size,
    render_sample,
    sms_info,
    validate_content,
)

VIEW = "delivery.view_messagetemplate"
CHANGE = "delivery.change_messagetemplate"
ADD = "delivery.add_messagetemplate"

RTL_LANGUAGES = {"ar", "fa", "he", "ur"}
# The fields the editor shows per channel (the admin's inlines show the same).
CHANNEL_FIELDS = {
    DeliveryChannel.PUSH: ("title", "body", "click_url", "icon", "image", "badge", "actions", "tag",
                           "ttl_seconds", "urgency", "topic"),
    DeliveryChannel.SMS: ("body",),
    DeliveryChannel.WHATSAPP: ("body", "whatsapp_content_sid", "whatsapp_variables"),
    DeliveryChannel.EMAIL: ("subject", "html_body", "text_body"),
    DeliveryChannel.INAPP: ("title", "body", "image", "button_label", "button_url", "placement"),
}
URL_FIELDS = {"click_url", "icon", "image", "badge", "button_url", "actions", "whatsapp_variables",
              "whatsapp_content_sid", "tag", "topic"}
# The push warning shows from this share of the limit on.
PUSH_SIZE_WARNING = 0.9


def _page(request, template, context):
    return render(request, template, {"section": "templates", **context})


def _direction(locale):
    return "rtl" if (locale or "").split("-")[0].lower() in RTL_LANGUAGES else "ltr"


# --- Forms ---------------------------------------------------------------------------

class TemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ("name", "slug", "description", "is_transactional", "default_locale")
        widgets = {
            "name": forms.TextInput(attrs={"dir": "auto", "size": 40}),
            "description": forms.Textarea(attrs={"rows": 2, "dir": "auto"}),
            "slug": forms.TextInput(attrs={"dir": "ltr"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(code, f"{name} ({code})") for code, name in settings.LANGUAGES]
        current = self.instance.default_locale
        if current and current not in dict(choices):
            choices.append((current, current))
        self.fields["default_locale"].widget = forms.Select(choices=choices)

    def clean_default_locale(self):
        return normalize_locale(self.cleaned_data.get("default_locale"))


class _SlotForm(TemplateContentForm):
    """One channel in one locale; the slot decides the locale, whatever is posted."""

    slot_locale = None
    # Settings with a default (time to live, urgency, placement) do not make a slot written.
    SETTINGS = {"locale", "ttl_seconds", "urgency", "placement"}

    def clean_locale(self):
        return self.slot_locale

    def is_blank(self):
        """Nothing typed in this slot: no text, no links, no buttons."""
        if not self.is_bound:
            return self.instance.pk is None
        return all((self.data.get(self.add_prefix(name)) or "").strip() in ("", "[]", "{}")
                   for name in self.fields if name not in self.SETTINGS)

    def has_changed(self):
        # A new slot left blank is skipped (neither validated nor saved), whatever its settings say.
        if self.instance.pk is None:
            return not self.is_blank()
        return super().has_changed()


def slot_form(channel, locale, *, instance=None, data=None, readonly=False):
    base = type(f"{channel.title()}SlotForm", (_SlotForm,), {"channel": channel, "slot_locale": locale})
    Form = modelform_factory(TemplateContent, form=base, fields=("locale", *CHANNEL_FIELDS[channel]))
    if instance is None:
        instance = TemplateContent(channel=channel, locale=locale)
    form = Form(data=data, instance=instance, prefix=f"{channel}-{locale}", initial={"locale": locale},
                empty_permitted=instance.pk is None, use_required_attribute=False)
    # The slot decides the locale: never taken from the post, never "changed".
    form.fields["locale"].widget = forms.HiddenInput()
    form.fields["locale"].disabled = True
    for name, field in form.fields.items():
        if name in URL_FIELDS:
            field.widget.attrs["dir"] = "ltr"
        elif name in ("title", "body", "subject", "html_body", "text_body", "button_label"):
            field.widget.attrs["dir"] = _direction(locale)
        if name in ("actions", "whatsapp_variables"):
            field.widget.attrs["rows"] = 2
        if readonly:
            field.widget.attrs["readonly"] = "readonly"
    return form


def _locales(template):
    """The locales the editor offers: the fallback first, then the site's languages, then any others saved."""
    ordered = [template.default_locale, *(code for code, _name in settings.LANGUAGES),
               *sorted({content.locale for content in template.contents.all()})]
    return list(dict.fromkeys(locale for locale in ordered if locale))


def _slots(template, data=None, readonly=False):
    """Per channel, per locale: the content form (bound to `data` when posting)."""
    saved = {(content.channel, content.locale): content for content in template.contents.all()}
    locales = _locales(template)
    names = dict(settings.LANGUAGES)
    channels = []
    for channel, label in DeliveryChannel.choices:
        slots = []
        for locale in locales:
            instance = saved.get((channel, locale))
            form = slot_form(channel, locale, instance=instance, data=data, readonly=readonly)
            slots.append({"channel": channel, "locale": locale, "dir": _direction(locale), "form": form,
                          "locale_label": names.get(locale.split("-")[0], locale),
                          "saved": instance is not None,
                          "delete_name": f"{channel}-{locale}-delete"})
        channels.append({"channel": channel, "label": label, "slots": slots,
                         "has_content": any(slot["saved"] for slot in slots)})
    return channels


# --- The preview ---------------------------------------------------------------------

def preview(channel, locale, candidate=None, form=None):
    """What the preview partial shows for one channel and locale: the message rendered for the sample
    shopper, or why it cannot be (the form's errors, a missing variable, a bad URL)."""
    result = {"channel": channel, "channel_label": DeliveryChannel(channel).label, "locale": locale,
              "dir": _direction(locale), "content": None, "errors": [], "empty": False,
              "origin": urlsplit(settings.STORE_URL).netloc or settings.STORE_URL}
    if form is not None:
        if form.instance.pk is None and not form.has_changed():
            result["empty"] = True
            return result
        if not form.is_valid():
            for name, problems in form.errors.items():
                label = form.fields[name].label if name in form.fields else ""
                result["errors"].extend({"field": str(label), "message": problem} for problem in problems)
            return result
        candidate = form.instance
    if candidate is None:
        result["empty"] = True
        return result
    candidate.channel = channel
    # An unsaved template holding only the candidate: render_sample chooses among the template's
    # (prefetched) contents, so nothing is read from or written to the database.
    transient = MessageTemplate(name="preview", default_locale=locale)
    transient._prefetched_objects_cache = {"contents": [candidate]}
    try:
        validate_content(candidate)
        content = render_sample(template=transient, channel=channel, locale=locale)
    except RenderError as error:
        field = (error.field or "").split("[")[0].split(".")[0]
        label = TemplateContent._meta.get_field(field).verbose_name if field in CHANNEL_FIELDS[channel] else ""
        result["errors"].append({"field": str(label), "message": describe_render_error(error)})
        return result
    result["content"] = content
    if channel == DeliveryChannel.SMS:
        result["sms"] = sms_info(content["body"])
    elif channel == DeliveryChannel.INAPP:
        placements = dict(TemplateContent._meta.get_field("placement").choices or ())
        result["placement"] = content["placement"] if content["placement"] in placements else "banner"
        result["placement_label"] = placements.get(result["placement"], result["placement"])
    elif channel == DeliveryChannel.PUSH:
        size = push_payload_size(content)
        result["push_size"] = {"bytes": size, "limit": PUSH_PAYLOAD_LIMIT,
                               "warn": size >= PUSH_PAYLOAD_LIMIT * PUSH_SIZE_WARNING}
    return result


# --- Views ---------------------------------------------------------------------------

@require_safe
@login_required
@permission_required(VIEW, raise_exception=True)
def template_list(request):
    templates = list(MessageTemplate.objects.prefetch_related("contents").order_by("name", "pk"))
    labels = dict(DeliveryChannel.choices)
    rows = []
    for template in templates:
        present = {content.channel for content in template.contents.all()}
        rows.append({"template": template,
                     "channels": [str(label) for value, label in labels.items() if value in present],
                     "locales": sorted({content.locale for content in template.contents.all()})})
    return _page(request, "delivery/editor/list.html", {"rows": rows})


def _unique_slug(base):
    base = (base or "template")[:70].strip("-") or "template"
    slug, number = base, 1
    while MessageTemplate.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug


@require_POST
@login_required
@permission_required(ADD, raise_exception=True)
def template_create(request):
    name = (request.POST.get("name") or "").strip()[:150] or _("New template")
    template = MessageTemplate.objects.create(name=name, slug=_unique_slug(slugify(name)))
    messages.success(request, _("Template created: write its content per channel and locale."))
    return redirect("templates:edit", template.pk)


@require_POST
@login_required
@permission_required(ADD, raise_exception=True)
def template_duplicate(request, pk):
    original = get_object_or_404(MessageTemplate.objects.prefetch_related("contents"), pk=pk)
    with transaction.atomic():
        copy = MessageTemplate.objects.create(
            name=(_("%(name)s (copy)") % {"name": original.name})[:150],
            slug=_unique_slug(f"{original.slug}-copy"), description=original.description,
            is_transactional=original.is_transactional, default_locale=original.default_locale)
        contents = list(original.contents.all())
        for content in contents:
            content.pk = None
            content.id = None
            content._state.adding = True
            content.template = copy
        TemplateContent.objects.bulk_create(contents)
    messages.success(request, _("Duplicated “%(name)s”.") % {"name": original.name})
    return redirect("templates:edit", copy.pk)


@login_required
@permission_required(VIEW, raise_exception=True)
def template_edit(request, pk):
    template = get_object_or_404(MessageTemplate.objects.prefetch_related("contents"), pk=pk)
    can_change = request.user.has_perm(CHANGE)
    if request.method == "POST":
        if not can_change:
            return HttpResponse(status=403)
        form = TemplateForm(request.POST, instance=template)
        channels = _slots(template, data=request.POST)
        deleting = {(slot["channel"], slot["locale"]) for channel in channels for slot in channel["slots"]
                    if slot["saved"] and request.POST.get(slot["delete_name"])}
        live = [slot for channel in channels for slot in channel["slots"]
                if (slot["channel"], slot["locale"]) not in deleting]
        valid = form.is_valid()
        valid = all([slot["form"].is_valid() for slot in live]) and valid
        if valid:
            with transaction.atomic():
                form.save()
                template.contents.filter(pk__in=[
                    slot["form"].instance.pk for channel in channels for slot in channel["slots"]
                    if (slot["channel"], slot["locale"]) in deleting]).delete()
                for slot in live:
                    slot_form_ = slot["form"]
                    if slot_form_.instance.pk is None and not slot_form_.has_changed():
                        continue
                    content = slot_form_.save(commit=False)
                    content.template = template
                    content.channel = slot["channel"]
                    content.locale = slot["locale"]
                    content.save()
            messages.success(request, _("Template saved."))
            return redirect("templates:edit", template.pk)
        messages.error(request, _("Please correct the errors below."))
        for channel in channels:
            channel["has_errors"] = any(slot["form"].errors for slot in channel["slots"]
                                        if (slot["channel"], slot["locale"]) not in deleting)
    else:
        form = TemplateForm(instance=template)
        channels = _slots(template, readonly=not can_change)
    for channel in channels:
        # Locales are tabs: the first one with errors is shown, else the first (the fallback locale).
        channel["selected"] = next((index for index, slot in enumerate(channel["slots"], start=1)
                                    if slot["form"].is_bound and slot["form"].errors), 1)
        for index, slot in enumerate(channel["slots"], start=1):
            slot["tab"] = index
            bound = slot["form"] if slot["form"].is_bound else None
            slot["has_errors"] = bool(bound and bound.errors)
            slot["preview"] = preview(slot["channel"], slot["locale"],
                                      candidate=slot["form"].instance if slot["saved"] and not bound else None,
                                      form=bound)
    if not can_change:
        for field in form.fields.values():
            field.disabled = True
    return _page(request, "delivery/editor/edit.html", {
        "template": template, "form": form, "channels": channels, "can_change": can_change,
    })


@require_POST
@login_required
@permission_required(VIEW, raise_exception=True)
def template_preview(request, pk, channel, locale):
    """htmx: one channel and locale rendered from the unsaved fields the marketer is typing."""
    template = get_object_or_404(MessageTemplate, pk=pk)
    if channel not in CHANNEL_FIELDS:
        raise Http404
    try:
        locale = normalize_locale(locale)
    except ValidationError:
        raise Http404 from None
    instance = template.contents.filter(channel=channel, locale=locale).first()
    form = slot_form(channel, locale, instance=instance, data=request.POST)
    return render(request, "delivery/editor/_preview.html", {"p": preview(channel, locale, form=form)})
