from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .forms import TemplateContentForm, describe_render_error
from .models import (
    DeliveryChannel,
    Message,
    MessageEvent,
    MessageTemplate,
    NotificationReport,
    Suppression,
    TemplateContent,
)
from .policy import normalize_suppressed_address
from .rendering import RenderError, render_sample, sample_shopper, sms_info

RTL_LANGUAGES = {"ar", "fa", "he", "ur"}


@admin.register(NotificationReport)
class NotificationReportAdmin(admin.ModelAdmin):
    """Reports are evidence from browsers: read-only."""

    list_display = ("code", "kind", "action", "subscription", "occurred_at", "received_at")
    list_filter = ("kind", "received_at")
    search_fields = ("code", "endpoint")
    date_hierarchy = "received_at"
    list_select_related = ("subscription",)
    raw_id_fields = ("subscription",)
    readonly_fields = [f.name for f in NotificationReport._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- Message templates -------------------------------------------------------------

class _OneLocaleEachFormSet(forms.BaseInlineFormSet):
    """One content per locale on a channel (the table's unique constraint, said before saving)."""

    def clean(self):
        super().clean()
        seen = set()
        for form in self.forms:
            if not getattr(form, "cleaned_data", None) or form.cleaned_data.get("DELETE"):
                continue
            locale = form.cleaned_data.get("locale")
            if locale in seen:
                form.add_error("locale", _("This channel already has content in %(locale)s.") % {"locale": locale})
            seen.add(locale)


class _ChannelContentInline(admin.StackedInline):
    model = TemplateContent
    formset = _OneLocaleEachFormSet
    extra = 0
    channel = None

    def get_queryset(self, request):
        return super().get_queryset(request).filter(channel=self.channel).order_by("locale")

    def get_formset(self, request, obj=None, **kwargs):
        kwargs["form"] = type(f"{self.channel.title()}ContentForm", (TemplateContentForm,), {"channel": self.channel})
        return super().get_formset(request, obj, **kwargs)


class PushContentInline(_ChannelContentInline):
    channel = DeliveryChannel.PUSH
    verbose_name = gettext_lazy("web push content")
    verbose_name_plural = gettext_lazy("web push: one per locale")
    fields = ("locale", "title", "body", "click_url", "icon", "image", "badge", "actions", "tag",
              "ttl_seconds", "urgency", "topic")


class SmsContentInline(_ChannelContentInline):
    channel = DeliveryChannel.SMS
    verbose_name = gettext_lazy("SMS content")
    verbose_name_plural = gettext_lazy("SMS: one per locale")
    fields = ("locale", "body")


class WhatsAppContentInline(_ChannelContentInline):
    channel = DeliveryChannel.WHATSAPP
    verbose_name = gettext_lazy("WhatsApp content")
    verbose_name_plural = gettext_lazy("WhatsApp: one per locale")
    fields = ("locale", "body", "whatsapp_content_sid", "whatsapp_variables")


class EmailContentInline(_ChannelContentInline):
    channel = DeliveryChannel.EMAIL
    verbose_name = gettext_lazy("email content")
    verbose_name_plural = gettext_lazy("email: one per locale")
    fields = ("locale", "subject", "html_body", "text_body")


class InAppContentInline(_ChannelContentInline):
    channel = DeliveryChannel.INAPP
    verbose_name = gettext_lazy("in-app content")
    verbose_name_plural = gettext_lazy("in-app: one per locale")
    fields = ("locale", "title", "body", "image", "button_label", "button_url", "placement")


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    """Templates with their content per channel and locale; Liquid is checked on save, previews use a sample shopper."""

    list_display = ("name", "slug", "channels", "locales", "is_transactional", "default_locale", "updated_at",
                    "preview_link")
    list_filter = ("is_transactional", "contents__channel")
    search_fields = ("name", "slug", "description")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [PushContentInline, SmsContentInline, WhatsAppContentInline, EmailContentInline, InAppContentInline]
    change_form_template = "admin/delivery/messagetemplate/change_form.html"
    fields = ("name", "slug", "description", "is_transactional", "default_locale", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("contents")

    @admin.display(description=gettext_lazy("channels"))
    def channels(self, obj):
        present = {c.channel for c in obj.contents.all()}
        return ", ".join(str(label) for value, label in DeliveryChannel.choices if value in present) or "—"

    @admin.display(description=gettext_lazy("locales"))
    def locales(self, obj):
        return ", ".join(sorted({c.locale for c in obj.contents.all()})) or "—"

    @admin.display(description=gettext_lazy("preview"))
    def preview_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:delivery_messagetemplate_preview", args=[obj.pk]),
                           _("Preview"))

    def get_urls(self):
        return [
            path("<int:template_id>/preview/", self.admin_site.admin_view(self.preview_view),
                 name="delivery_messagetemplate_preview"),
        ] + super().get_urls()

    def preview_view(self, request, template_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        template = MessageTemplate.objects.filter(pk=template_id).prefetch_related("contents").first()
        if template is None:
            raise Http404
        context = {
            **self.admin_site.each_context(request),
            "title": _("Preview: %(name)s") % {"name": template.name},
            "opts": self.opts,
            "original": template,
            "previews": preview_contents(template),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/delivery/messagetemplate/preview.html", context)


def preview_contents(template):
    """Each channel and locale rendered for a sample shopper, or the error that would refuse it."""
    labels = dict(DeliveryChannel.choices)
    order = list(labels)
    previews = []
    for content in sorted(template.contents.all(), key=lambda c: (order.index(c.channel), c.locale)):
        language = content.locale.split("-")[0].lower()
        preview = {
            "channel": content.channel, "channel_label": labels[content.channel], "locale": content.locale,
            "dir": "rtl" if language in RTL_LANGUAGES else "ltr", "lang": content.locale,
            "shopper": sample_shopper(content.locale), "content": None, "error": "",
        }
        try:
            preview["content"] = render_sample(template=template, channel=content.channel, locale=content.locale)
        except RenderError as error:
            preview["error"] = describe_render_error(error)
            preview["error_field"] = error.field
        else:
            if content.channel == "sms":
                preview["sms"] = sms_info(preview["content"]["body"])
        previews.append(preview)
    return previews


# --- The suppression list (sending policies, docs/policies.md) ----------------------

class SuppressionForm(forms.ModelForm):
    channel = forms.ChoiceField(label=gettext_lazy("channel"), required=False,
                                choices=[("", gettext_lazy("All channels"))] + list(DeliveryChannel.choices))

    class Meta:
        model = Suppression
        fields = ("value", "channel", "reason")

    def clean_value(self):
        return normalize_suppressed_address(self.cleaned_data["value"])


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Addresses never messaged: on one channel, or on every channel when the channel is blank."""

    form = SuppressionForm
    list_display = ("value", "channel_or_all", "reason", "created_at")
    list_filter = ("channel", "created_at")
    search_fields = ("value", "reason")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")

    @admin.display(description=gettext_lazy("channel"), ordering="channel")
    def channel_or_all(self, obj):
        return obj.get_channel_display() if obj.channel else _("All channels")


# --- The outbox ------------------------------------------------------------------------

class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    fields = ("occurred_at", "kind", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("occurred_at", "id")
    verbose_name_plural = gettext_lazy("history")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Every message written, with its status and the reason a policy held or suppressed it: read-only.

    Status changes only through the outbox; the one thing staff may do here is
    cancel messages that have not been sent yet.
    """

    list_display = ("code", "channel", "subscriber", "template", "status", "status_reason", "source",
                    "send_at", "sent_at")
    list_filter = ("status", "channel", "lane", "source_type", "is_transactional", "template")
    search_fields = ("=code", "=to", "=provider_id", "subscriber__external_id", "subscriber__email",
                     "subscriber__phone", "source_id")
    date_hierarchy = "queued_at"
    list_select_related = ("subscriber", "template")
    show_full_result_count = False  # an outbox of millions: no COUNT(*) of the whole table per page
    ordering = ("-id",)
    inlines = [MessageEventInline]
    actions = ["cancel_pending"]
    fieldsets = (
        (None, {"fields": ("code", "subscriber", "channel", "to", "template", "locale", "content")}),
        (gettext_lazy("Status"), {"fields": ("status", "status_reason", "error", "attempts", "provider",
                                             "provider_id")}),
        (gettext_lazy("When"), {"fields": ("queued_at", "send_at", "sent_at", "delivered_at", "displayed_at",
                                           "clicked_at", "failed_at")}),
        (gettext_lazy("Where it came from"), {"fields": ("source_type", "source_id", "occurrence", "lane",
                                                         "is_transactional", "context", "idempotency_key")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]

    @admin.display(description=gettext_lazy("source"), ordering="source_type")
    def source(self, obj):
        return f"{obj.source_type}:{obj.source_id}" if obj.source_id else obj.source_type

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=gettext_lazy("Cancel the selected messages not yet sent"),
                  permissions=["change"])
    def cancel_pending(self, request, queryset):
        from . import outbox

        cancelled = outbox.cancel_pending(queryset, reason=f"cancelled by {request.user.get_username()}")
        self.message_user(request, _("%(count)d message(s) cancelled; messages already sending or sent are "
                                     "unchanged.") % {"count": cancelled})

    def has_change_permission(self, request, obj=None):
        # Viewing needs view permission; the change permission only gates the cancel action.
        return super().has_change_permission(request, obj) if obj is None else False
