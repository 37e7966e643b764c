"""Ops screens for the subscriber CRM.

Rows that have a write path in services.py change only through it: consent
through grant/revoke actions, push subscriptions through unregister/expire,
orders through update_order_status, subscribers are erased with
erase_subscriber. Imports go through subscribers/imports.py (the same checks
and services as the API).
"""
import json
from urllib.parse import urlsplit

import phonenumbers
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property, lazy
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV, XLSX

from . import services, tasks
from .imports import (
    RESOURCES,
    ConsentResource,
    ImportFile,
    ImportFileError,
    OrderResource,
    SubscriberResource,
    guess_format,
    problems_as_csv,
)
from .models import (
    STANDARD_EVENTS,
    AnonymousId,
    ApiKey,
    ApiKeyKind,
    Cart,
    Channel,
    Consent,
    ConsentChange,
    ConsentStatus,
    Event,
    ImportJob,
    ImportJobStatus,
    Order,
    OrderStatus,
    PushPromptConfig,
    PushSubscription,
    PushSubscriptionStatus,
    Source,
    Subscriber,
)
from .validation import normalize_locale, normalize_phone, normalize_timezone

admin.site.site_header = _("Tanbih operations")
admin.site.site_title = _("Tanbih admin")
admin.site.index_title = _("Data, imports and fixes")


def admin_evidence(request, **extra):
    return {"admin_user": request.user.get_username(), "via": "django-admin", **extra}


def subscriber_link(subscriber):
    if subscriber is None:
        return "—"
    url = reverse("admin:subscribers_subscriber_change", args=[subscriber.pk])
    return format_html('<a href="{}">{}</a>', url, subscriber)


class ServiceImportExportAdmin(ImportExportModelAdmin):
    """Import/export buttons (small files) plus a link to the background import (large files)."""

    import_formats = [CSV, XLSX]
    export_formats = [CSV, XLSX]
    import_export_change_list_template = "admin/subscribers/change_list_import_export.html"
    import_template_name = "admin/subscribers/import.html"
    background_import_resource = ""

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["background_import_url"] = (
            reverse("admin:subscribers_importjob_upload") + f"?resource={self.background_import_resource}")
        return super().changelist_view(request, extra_context)


class LargeTablePaginator(Paginator):
    """An unfiltered list of a big table shows PostgreSQL's row estimate instead of counting.

    COUNT(*) over millions of events scans the whole table on every page view;
    filtered lists (a name, a day, a shopper) are still counted exactly.
    """

    EXACT_BELOW = 100_000

    @cached_property
    def count(self):
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                               [queryset.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] >= self.EXACT_BELOW:  # small or never-analysed tables: count them
                return int(row[0])
        return super().count


# --- Read-only inlines, newest first, limited -----------------------------------

class NewestFirstFormSet(BaseInlineFormSet):
    """Only the newest `limit` rows: a shopper with 50,000 events still opens fast."""

    limit = 20

    def get_queryset(self):
        if not hasattr(self, "_limited_queryset"):
            self._limited_queryset = super().get_queryset()[: self.limit]
        return self._limited_queryset


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    limit = 20

    def get_formset(self, request, obj=None, **kwargs):
        kwargs["formset"] = type("Limited" + NewestFirstFormSet.__name__, (NewestFirstFormSet,), {"limit": self.limit})
        return super().get_formset(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ConsentInline(ReadOnlyInline):
    model = Consent
    fields = ("channel", "status", "source", "granted_at", "revoked_at", "updated_at", "evidence")
    ordering = ("channel",)
    verbose_name_plural = _("consent (change it with the actions on the subscriber list or the consent list)")


class ConsentChangeInline(ReadOnlyInline):
    model = ConsentChange
    fields = ("occurred_at", "channel", "status", "source", "evidence")
    ordering = ("-occurred_at", "-id")
    verbose_name_plural = _("consent history (newest 20)")


class PushSubscriptionInline(ReadOnlyInline):
    model = PushSubscription
    fields = ("browser", "status", "push_service", "failure_count", "last_success_at", "last_failure_reason",
              "created_at")
    ordering = ("-created_at", "-id")
    show_change_link = True
    verbose_name_plural = _("push subscriptions (newest 20)")

    @admin.display(description=_("push service"))
    def push_service(self, obj):
        return urlsplit(obj.endpoint).hostname or ""


class EventInline(ReadOnlyInline):
    model = Event
    fields = ("occurred_at", "name", "short_properties", "source", "event_id")
    ordering = ("-occurred_at", "-id")
    limit = 25
    show_change_link = True
    verbose_name_plural = _("recent events (newest 25)")

    @admin.display(description=_("properties"))
    def short_properties(self, obj):
        raw = json.dumps(obj.properties, ensure_ascii=False)
        return raw if len(raw) <= 120 else raw[:117] + "…"


class CartInline(ReadOnlyInline):
    model = Cart
    fields = ("external_id", "status", "value", "currency", "item_count", "last_activity_at", "abandoned_at",
              "converted_at")
    ordering = ("-last_activity_at", "-id")
    limit = 10
    show_change_link = True
    verbose_name_plural = _("carts (newest 10)")


class OrderInline(ReadOnlyInline):
    model = Order
    fields = ("external_id", "status", "value", "currency", "placed_at", "shipped_at", "delivered_at")
    ordering = ("-placed_at", "-id")
    show_change_link = True
    verbose_name_plural = _("orders (newest 20)")


class AnonymousIdInline(ReadOnlyInline):
    model = AnonymousId
    fields = ("value", "created_at")
    ordering = ("-created_at",)
    verbose_name_plural = _("browser ids (newest 20)")


# --- Subscribers ------------------------------------------------------------------

class KnownFilter(admin.SimpleListFilter):
    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return (("known", _("Known (store customer id)")), ("anonymous", _("Anonymous (browser only)")))

    def queryset(self, request, queryset):
        if self.value() == "known":
            return queryset.known()
        if self.value() == "anonymous":
            return queryset.anonymous()
        return queryset


class SubscriberAdminForm(forms.ModelForm):
    """The API's rules for a profile: E.164 phone (country as default region), locale, timezone."""

    subscribed_page_url = forms.URLField(label=_("subscribed on page"), max_length=2000, required=False,
                                         assume_scheme="https")

    class Meta:
        model = Subscriber
        fields = "__all__"

    def clean_external_id(self):
        return self.cleaned_data.get("external_id") or None  # blank means anonymous, and must stay unique

    def clean(self):
        data = super().clean()
        country = (data.get("country") or "").upper()
        if country and country not in phonenumbers.SUPPORTED_REGIONS:
            self.add_error("country", _("'%(value)s' is not a country code; use ISO 3166-1 alpha-2 such as SA.")
                           % {"value": country})
            country = ""
        data["country"] = country
        for name, normalize in (
            ("phone", lambda v: normalize_phone(v, default_region=country or None)),
            ("locale", normalize_locale),
            ("timezone", normalize_timezone),
        ):
            if data.get(name):
                try:
                    data[name] = normalize(data[name])
                except ValidationError as error:
                    self.add_error(name, error)
        return data


def _revoke_consent_action(channel):
    def action(modeladmin, request, queryset):
        consents = (Consent.objects.filter(subscriber__in=queryset, channel=channel, status=ConsentStatus.GRANTED)
                    .select_related("subscriber"))
        revoked = 0
        for consent in consents.iterator(chunk_size=500):
            _consent, changed = services.revoke_consent(subscriber=consent.subscriber, channel=channel, source=Source.ADMIN,
                                                 evidence=admin_evidence(request))
            revoked += changed
        modeladmin.message_user(request, _("%(count)d %(channel)s consents revoked.")
                                % {"count": revoked, "channel": Channel(channel).label})

    action.__name__ = f"revoke_{channel}_consent"
    # Formatted when shown, so the label follows the operator's language.
    description = lazy(lambda: _("Revoke %(channel)s consent") % {"channel": Channel(channel).label}, str)()
    return admin.action(description=description,
                        permissions=["change"])(action)


@admin.register(Subscriber)
class SubscriberAdmin(ServiceImportExportAdmin):
    resource_classes = [SubscriberResource]
    background_import_resource = "subscribers"
    form = SubscriberAdminForm
    list_display = ("__str__", "external_id", "email", "phone", "locale", "timezone", "country", "lifecycle_stage",
                    "orders_count", "total_spent", "last_seen_at", "created_at")
    list_filter = (KnownFilter, "lifecycle_stage", ("created_at", DateFieldListFilter),
                   ("last_seen_at", DateFieldListFilter), ("last_order_at", DateFieldListFilter))
    search_fields = ("=external_id", "^email", "=phone", "^first_name", "^last_name")
    search_help_text = _("Store customer id or phone (exact), the start of an email or a name.")
    show_full_result_count = False
    paginator = LargeTablePaginator
    ordering = ("-id",)
    list_per_page = 50
    readonly_fields = ("orders_count", "total_spent", "average_order_value", "first_order_at", "last_order_at",
                       "lifecycle_stage", "created_at", "last_seen_at", "updated_at", "activity_links")
    fieldsets = (
        (None, {"fields": ("external_id", ("first_name", "last_name"), "email", "phone", "locale", "timezone")}),
        (_("Profile"), {"fields": ("country", "city", ("latitude", "longitude"), "birthday", "gender",
                                   "attributes", "tags", "subscribed_page_url", "subscribed_category")}),
        (_("Commerce (kept by the system)"), {"fields": (
            "lifecycle_stage", "orders_count", "total_spent", "average_order_value", "first_order_at",
            "last_order_at")}),
        (_("Activity"), {"fields": ("created_at", "last_seen_at", "updated_at", "activity_links")}),
    )
    inlines = (ConsentInline, PushSubscriptionInline, EventInline, CartInline, OrderInline, ConsentChangeInline,
               AnonymousIdInline)
    actions = [
        _revoke_consent_action(Channel.SMS),
        _revoke_consent_action(Channel.WHATSAPP),
        _revoke_consent_action(Channel.EMAIL),
        _revoke_consent_action(Channel.PUSH),
        "refresh_commerce_stats",
        "erase_subscribers",
    ]

    @admin.display(description=_("everything about this shopper"))
    def activity_links(self, obj):
        if obj.pk is None:
            return "—"
        links = [
            (reverse("admin:subscribers_event_changelist"), _("all events")),
            (reverse("admin:subscribers_order_changelist"), _("all orders")),
            (reverse("admin:subscribers_cart_changelist"), _("all carts")),
            (reverse("admin:subscribers_consentchange_changelist"), _("full consent history")),
            (reverse("admin:subscribers_pushsubscription_changelist"), _("all push subscriptions")),
        ]
        return format_html_join(" · ", '<a href="{}?subscriber__id__exact={}">{}</a>',
                                ((url, obj.pk, label) for url, label in links))

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Deleting a shopper is an erasure with its signal: use "erase" instead.
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description=_("Refresh commerce stats (orders, total spent, lifecycle stage)"),
                  permissions=["change"])
    def refresh_commerce_stats(self, request, queryset):
        count = 0
        for pk in queryset.values_list("pk", flat=True).iterator(chunk_size=500):
            services.refresh_commerce_stats(subscriber_id=pk)
            count += 1
        self.message_user(request, _("Commerce stats refreshed for %(count)d subscribers.") % {"count": count})

    @admin.action(description=_("Erase selected subscribers and everything about them (GDPR)"),
                  permissions=["delete"])
    def erase_subscribers(self, request, queryset):
        if request.POST.get("post") == "yes":
            count = 0
            for subscriber in queryset.iterator(chunk_size=200):
                services.erase_subscriber(subscriber=subscriber)
                count += 1
            self.message_user(request, _("%(count)d subscribers erased.") % {"count": count}, messages.SUCCESS)
            return None
        return self._erase_confirmation(request, queryset, action="erase_subscribers")

    def _erase_confirmation(self, request, queryset, action=None):
        count = queryset.count()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Erase subscribers?"),
            "opts": self.opts,
            "subscribers": list(queryset[:100]),
            "count": count,
            "pks": list(queryset.values_list("pk", flat=True)) if action else [],
            "action": action,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/subscribers/subscriber/erase_confirmation.html", context)

    def delete_view(self, request, object_id, extra_context=None):
        # The change page's "Delete" goes through the erasure too, without
        # listing every event of the shopper on the way.
        if not self.has_delete_permission(request):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=object_id)
        if request.method == "POST" and request.POST.get("post") == "yes":
            name = str(subscriber)
            services.erase_subscriber(subscriber=subscriber)
            self.message_user(request, _("“%(name)s” was erased.") % {"name": name}, messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:subscribers_subscriber_changelist"))
        return self._erase_confirmation(request, Subscriber.objects.filter(pk=subscriber.pk))

    def delete_model(self, request, obj):
        services.erase_subscriber(subscriber=obj)

    def delete_queryset(self, request, queryset):
        for subscriber in queryset.iterator(chunk_size=200):
            services.erase_subscriber(subscriber=subscriber)


@admin.register(AnonymousId)
class AnonymousIdAdmin(admin.ModelAdmin):
    list_display = ("value", "subscriber", "created_at")
    list_select_related = ("subscriber",)
    search_fields = ("=value", "=subscriber__external_id")
    readonly_fields = ("value", "subscriber", "created_at")
    ordering = ("-id",)
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- Consent ------------------------------------------------------------------------

@admin.register(Consent)
class ConsentAdmin(ServiceImportExportAdmin):
    resource_classes = [ConsentResource]
    background_import_resource = "consents"
    list_display = ("subscriber", "channel", "status", "source", "granted_at", "revoked_at", "updated_at")
    list_select_related = ("subscriber",)
    list_filter = ("channel", "status", "source", ("updated_at", DateFieldListFilter))
    search_fields = ("=subscriber__external_id", "^subscriber__email", "=subscriber__phone")
    search_help_text = _("Store customer id or phone (exact), or the start of an email.")
    readonly_fields = ("subscriber", "channel", "status", "source", "granted_at", "revoked_at", "updated_at",
                       "evidence")
    ordering = ("-id",)
    show_full_result_count = False
    actions = ["revoke_selected", "grant_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # only through grant_consent / revoke_consent (the actions)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_consent_write_permission(self, request):
        return request.user.has_perm("subscribers.change_consent")

    @admin.action(description=_("Revoke the selected consents"), permissions=["consent_write"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for consent in queryset.select_related("subscriber").iterator(chunk_size=500):
            _consent, changed = services.revoke_consent(subscriber=consent.subscriber, channel=consent.channel,
                                                 source=Source.ADMIN, evidence=admin_evidence(request))
            revoked += changed
        self.message_user(request, _("%(count)d consents revoked.") % {"count": revoked})

    @admin.action(description=_("Grant the selected consents again (the shopper asked for it)"),
                  permissions=["consent_write"])
    def grant_selected(self, request, queryset):
        granted, refused = 0, []
        for consent in queryset.select_related("subscriber").iterator(chunk_size=500):
            try:
                _consent, changed = services.grant_consent(subscriber=consent.subscriber, channel=consent.channel,
                                                    source=Source.ADMIN, evidence=admin_evidence(request))
            except ValidationError as error:
                refused.append(f"{consent.subscriber}: {' '.join(error.messages)}")
                continue
            granted += changed
        self.message_user(request, _("%(count)d consents granted.") % {"count": granted})
        for reason in refused[:20]:
            self.message_user(request, reason, messages.ERROR)


@admin.register(ConsentChange)
class ConsentChangeAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "subscriber", "channel", "status", "source")
    list_select_related = ("subscriber",)
    list_filter = ("channel", "status", "source")
    date_hierarchy = "occurred_at"
    search_fields = ("=subscriber__external_id", "^subscriber__email", "=subscriber__phone")
    readonly_fields = ("subscriber", "channel", "status", "source", "evidence", "occurred_at")
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # history is append-only

    def has_delete_permission(self, request, obj=None):
        return False


# --- Push subscriptions, events, carts, orders -------------------------------------

@admin.register(PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    list_display = ("subscriber", "browser", "status", "push_service", "failure_count", "last_success_at",
                    "last_failure_at", "created_at")
    list_select_related = ("subscriber",)
    list_filter = ("status", "browser", ("created_at", DateFieldListFilter))
    search_fields = ("=subscriber__external_id", "=endpoint")
    search_help_text = _("Store customer id or the full endpoint URL.")
    readonly_fields = ("subscriber", "endpoint", "p256dh", "auth", "user_agent", "browser", "page_url", "category",
                       "status", "failure_count", "last_success_at", "last_failure_at", "last_failure_reason",
                       "created_at", "updated_at")
    ordering = ("-id",)
    show_full_result_count = False
    actions = ["mark_unsubscribed", "mark_expired"]

    @admin.display(description=_("push service"))
    def push_service(self, obj):
        return urlsplit(obj.endpoint).hostname or ""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # status changes through the services (the actions)

    def has_push_write_permission(self, request):
        return request.user.has_perm("subscribers.change_pushsubscription")

    @admin.action(description=_("Mark unsubscribed (the shopper asked to stop push)"), permissions=["push_write"])
    def mark_unsubscribed(self, request, queryset):
        count = 0
        for endpoint in queryset.exclude(status=PushSubscriptionStatus.UNSUBSCRIBED).values_list("endpoint", flat=True):
            services.unregister_push_subscription(endpoint=endpoint, source=Source.ADMIN)
            count += 1
        self.message_user(request, _("%(count)d push subscriptions unsubscribed.") % {"count": count})

    @admin.action(description=_("Mark expired (never send to them again)"), permissions=["push_write"])
    def mark_expired(self, request, queryset):
        count = 0
        reason = f"marked expired in the admin by {request.user.get_username()}"
        for endpoint in queryset.exclude(status=PushSubscriptionStatus.EXPIRED).values_list("endpoint", flat=True):
            services.expire_push_subscription(endpoint=endpoint, reason=reason)
            count += 1
        self.message_user(request, _("%(count)d push subscriptions expired.") % {"count": count})


class EventNameFilter(admin.SimpleListFilter):
    """The standard vocabulary as fixed choices: no DISTINCT over the whole event table."""

    title = _("event")
    parameter_name = "name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in STANDARD_EVENTS]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "name", "subscriber", "source", "event_id", "received_at")
    list_select_related = ("subscriber",)
    list_filter = (EventNameFilter, "source", ("occurred_at", DateFieldListFilter))
    search_fields = ("=name", "=event_id", "=subscriber__external_id")
    search_help_text = _("Exact event name, event id or store customer id.")
    readonly_fields = ("subscriber", "name", "event_id", "properties", "occurred_at", "received_at", "source")
    # Newest first by primary key: an index, where ordering by time would sort the table.
    ordering = ("-id",)
    show_full_result_count = False
    paginator = LargeTablePaginator
    list_per_page = 50

    def get_search_results(self, request, queryset, search_term):
        # One OR over indexed columns; a join to the subscriber table inside
        # the OR would scan every event.
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(name=term) | Q(event_id=term)
        subscriber_id = Subscriber.objects.filter(external_id=term).values_list("pk", flat=True).first()
        if subscriber_id:
            condition |= Q(subscriber_id=subscriber_id)
        return queryset.filter(condition), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # events are facts; they are never edited

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = ("__str__", "subscriber", "status", "value", "currency", "item_count", "last_activity_at",
                    "abandoned_at", "converted_at")
    list_select_related = ("subscriber",)
    list_filter = ("status", ("last_activity_at", DateFieldListFilter))
    search_fields = ("=external_id", "=subscriber__external_id")
    readonly_fields = ("subscriber", "external_id", "items", "value", "currency", "status", "checkout_started_at",
                       "last_activity_at", "abandoned_at", "converted_at", "created_at", "restore_link")
    ordering = ("-id",)
    show_full_result_count = False

    @admin.display(description=_("restore link"))
    def restore_link(self, obj):
        return format_html('<a href="{0}" target="_blank" rel="noopener">{0}</a>', obj.restore_url) if obj.pk else "—"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # carts follow cart_updated events (services.update_cart)


def _order_status_action(status):
    def action(modeladmin, request, queryset):
        count = 0
        for order_id in queryset.exclude(status=status).values_list("external_id", flat=True):
            services.update_order_status(order_id=order_id, status=status)
            count += 1
        modeladmin.message_user(request, _("%(count)d orders marked %(status)s.")
                                % {"count": count, "status": OrderStatus(status).label.lower()})

    action.__name__ = f"mark_{status}"
    description = lazy(lambda: _("Mark %(status)s") % {"status": OrderStatus(status).label.lower()}, str)()
    return admin.action(description=description,
                        permissions=["order_write"])(action)


@admin.register(Order)
class OrderAdmin(ServiceImportExportAdmin):
    resource_classes = [OrderResource]
    background_import_resource = "orders"
    list_display = ("external_id", "subscriber", "value", "currency", "status", "placed_at", "shipped_at",
                    "delivered_at")
    list_select_related = ("subscriber",)
    list_filter = ("status", "currency")
    date_hierarchy = "placed_at"
    search_fields = ("=external_id", "=subscriber__external_id")
    search_help_text = _("Order id or store customer id (exact).")
    readonly_fields = ("subscriber", "external_id", "cart", "items", "value", "currency", "status", "placed_at",
                       "shipped_at", "delivered_at", "updated_at")
    ordering = ("-placed_at", "-id")
    show_full_result_count = False
    actions = [_order_status_action(OrderStatus.SHIPPED), _order_status_action(OrderStatus.DELIVERED),
               _order_status_action(OrderStatus.CANCELLED), _order_status_action(OrderStatus.REFUNDED),
               "refresh_buyer_stats"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # orders change through services (place_order, update_order_status)

    def has_order_write_permission(self, request):
        return request.user.has_perm("subscribers.change_order")

    @admin.action(description=_("Refresh the buyers' commerce stats"), permissions=["order_write"])
    def refresh_buyer_stats(self, request, queryset):
        ids = set(queryset.values_list("subscriber_id", flat=True))
        for pk in ids:
            services.refresh_commerce_stats(subscriber_id=pk)
        self.message_user(request, _("Commerce stats refreshed for %(count)d subscribers.") % {"count": len(ids)})


# --- API keys -------------------------------------------------------------------------

class ApiKeyForm(forms.ModelForm):
    allowed_origins_text = forms.CharField(
        label=_("Allowed origins"), required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Publishable keys only: one origin per line, such as https://shop.example. "
                    "'*' allows every origin (not recommended)."),
    )

    class Meta:
        model = ApiKey
        fields = ("name", "kind", "require_identity_verification", "is_active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allowed_origins_text"].initial = "\n".join(self.instance.allowed_origins or [])

    def clean_allowed_origins_text(self):
        origins = []
        for line in (self.cleaned_data.get("allowed_origins_text") or "").splitlines():
            line = line.strip().rstrip("/")
            if not line:
                continue
            if line == "*":
                origins.append(line)
                continue
            parts = urlsplit(line)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                raise ValidationError(_("'%(value)s' is not an origin; write scheme and host only, such as "
                                        "https://shop.example."), params={"value": line})
            origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return origins

    def clean(self):
        data = super().clean()
        kind = data.get("kind") or self.instance.kind
        if kind == ApiKeyKind.PUBLISHABLE and not data.get("allowed_origins_text"):
            self.add_error("allowed_origins_text",
                           _("A publishable key works only from the origins listed here; add the store's origin."))
        return data

    def save(self, commit=True):
        self.instance.allowed_origins = self.cleaned_data.get("allowed_origins_text") or []
        return super().save(commit)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "kind", "prefix", "is_active", "origins", "created_at", "last_used_at")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "=prefix")
    actions = ["revoke_keys"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "kind", "allowed_origins_text", "require_identity_verification")
        return ("name", "kind", "key_display", "publishable_key", "identity_secret", "allowed_origins_text",
                "require_identity_verification", "is_active", "created_at", "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("kind", "key_display", "publishable_key", "identity_secret", "created_at", "last_used_at")

    @admin.display(description=_("allowed origins"))
    def origins(self, obj):
        return ", ".join(obj.allowed_origins) if obj.kind == ApiKeyKind.PUBLISHABLE else "—"

    @admin.display(description=_("key"))
    def key_display(self, obj):
        if obj.kind == ApiKeyKind.SECRET:
            return format_html("{}… <small>({})</small>", obj.prefix,
                               _("only a hash is stored; the full key was shown once when it was created"))
        return format_html("<code>{}</code>", obj.publishable_key)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # The key is made by the model's constructors, which hash the secret;
        # the form's instance then becomes that stored row.
        if obj.kind == ApiKeyKind.SECRET:
            key, raw = ApiKey.create_secret(obj.name)
        else:
            key, raw = ApiKey.create_publishable(obj.name, allowed_origins=obj.allowed_origins,
                                                 require_identity_verification=obj.require_identity_verification)
        for field in ("id", "prefix", "key_hash", "publishable_key", "identity_secret", "created_at",
                      "allowed_origins", "require_identity_verification", "is_active"):
            setattr(obj, field, getattr(key, field))
        obj._state.adding = False
        obj._state.db = key._state.db
        if obj.kind == ApiKeyKind.SECRET:
            messages.warning(request, format_html(
                "{} <code class='tanbih-secret-key'>{}</code>",
                _("Copy the secret key now; it is stored only as a hash and will not be shown again:"), raw))
        else:
            messages.info(request, format_html(
                "{} <code>{}</code>. {}", _("Publishable key"), raw,
                _("It goes in the storefront snippet; the identity secret for signing customer ids is on the "
                  "key's page.")))

    @admin.action(description=_("Revoke the selected keys (they stop working at once)"), permissions=["change"])
    def revoke_keys(self, request, queryset):
        count = queryset.filter(is_active=True).update(is_active=False)
        self.message_user(request, _("%(count)d keys revoked.") % {"count": count})


@admin.register(PushPromptConfig)
class PushPromptConfigAdmin(admin.ModelAdmin):
    list_display = ("__str__", "enabled", "delay_seconds", "reprompt_after_days", "updated_at")
    fieldsets = (
        (None, {"fields": ("enabled", "delay_seconds", "page_patterns", "reprompt_after_days")}),
        (_("English"), {"fields": ("title_en", "body_en", "accept_en", "decline_en")}),
        (_("Arabic"), {"fields": ("title_ar", "body_ar", "accept_ar", "decline_ar")}),
    )

    def has_add_permission(self, request):
        # One prompt per store: PushPromptConfig.current() reads the first row.
        return super().has_add_permission(request) and not PushPromptConfig.objects.exists()


# --- Imports --------------------------------------------------------------------------

class ImportUploadForm(forms.Form):
    resource = forms.ChoiceField(label=_("What the file holds"), choices=[
        ("subscribers", _("Subscribers (profiles)")), ("consents", _("Consents")), ("orders", _("Orders"))])
    file = forms.FileField(label=_("File (CSV or XLSX)"))
    file_format = forms.ChoiceField(label=_("Format"), required=False, choices=[
        ("", _("From the file name (.csv / .xlsx)")), ("csv", "CSV (UTF-8)"), ("xlsx", "XLSX (Excel)")])
    dry_run = forms.BooleanField(label=_("Check only (dry run): list every bad row, write nothing"),
                                 required=False, initial=True)
    on_bad_rows = forms.ChoiceField(
        label=_("If some rows are bad"), widget=forms.RadioSelect, initial="refuse", choices=[
            ("refuse", _("Refuse the whole file and show me the bad rows (nothing is imported)")),
            ("skip", _("Import the valid rows and skip the bad ones (the skipped rows are listed in the job)")),
        ])

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if not upload or not data.get("resource"):
            return data
        file_format = data.get("file_format") or guess_format(upload.name)
        if not file_format:
            self.add_error("file_format", _("The file name ends neither in .csv nor .xlsx; choose the format."))
            return data
        data["file_format"] = file_format
        try:
            RESOURCES[data["resource"]].check_headers(ImportFile(upload, file_format).headers())
        except ImportFileError as error:
            self.add_error("file", str(error))
        upload.seek(0)
        return data


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "resource", "status", "dry_run", "file_name", "progress", "error_rows", "created_rows",
                    "updated_rows", "created_by", "created_at")
    list_display_links = ("id", "resource")
    list_select_related = ("created_by",)
    list_filter = ("resource", "status", "dry_run")
    date_hierarchy = "created_at"
    readonly_fields = ("resource", "file", "file_format", "status", "dry_run", "total_rows", "processed_rows",
                       "created_rows", "updated_rows", "error_rows", "message", "progress", "created_by",
                       "created_at", "started_at", "finished_at")
    exclude = ("errors",)

    @admin.display(description=_("file"))
    def file_name(self, obj):
        return obj.file.name.rsplit("/", 1)[-1]

    @admin.display(description=_("progress"))
    def progress(self, obj):
        url = reverse("admin:subscribers_importjob_progress", args=[obj.pk])
        return format_html('<a href="{}">{}% · {}</a>', url, obj.percent, _("watch"))

    def has_change_permission(self, request, obj=None):
        return False  # a job is a record of one run

    def _delete_files(self, jobs):
        # A checked job and the import started from it share one upload.
        names = {job.file.name for job in jobs if job.file}
        still_used = set(ImportJob.objects.filter(file__in=names).values_list("file", flat=True))
        for name in names - still_used:
            ImportJob.file.field.storage.delete(name)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        self._delete_files([obj])

    def delete_queryset(self, request, queryset):
        jobs = list(queryset)
        super().delete_queryset(request, queryset)
        self._delete_files(jobs)

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:subscribers_importjob_upload"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upload/", view(self.upload_view), name="subscribers_importjob_upload"),
            path("<int:job_id>/progress/", view(self.progress_view), name="subscribers_importjob_progress"),
            path("<int:job_id>/status/", view(self.status_view), name="subscribers_importjob_status"),
            path("<int:job_id>/start/", view(require_POST(self.start_view)), name="subscribers_importjob_start"),
            path("<int:job_id>/problems.csv", view(self.problems_view), name="subscribers_importjob_problems"),
        ] + super().get_urls()

    def _job(self, request, job_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = ImportJob.objects.filter(pk=job_id).select_related("created_by").first()
        if job is None:
            raise Http404
        return job

    def _enqueue(self, job):
        tasks.import_file.delay_on_commit(job.pk)

    def upload_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = ImportUploadForm(request.POST, request.FILES)
            if form.is_valid():
                data = form.cleaned_data
                skip = data["on_bad_rows"] == "skip"
                job = ImportJob.objects.create(
                    resource=data["resource"], file=data["file"], file_format=data["file_format"],
                    dry_run=data["dry_run"], skip_bad_rows=skip, created_by=request.user,
                    message=_queued_message(data["dry_run"], skip))
                self._enqueue(job)
                return HttpResponseRedirect(reverse("admin:subscribers_importjob_progress", args=[job.pk]))
        else:
            form = ImportUploadForm(initial={"resource": request.GET.get("resource") or "subscribers"})
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import a file"),
            "opts": self.opts,
            "form": form,
            "columns": [(key, cls.required_columns, cls.optional_columns) for key, cls in RESOURCES.items()],
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/subscribers/importjob/upload.html", context)

    def progress_view(self, request, job_id):
        job = self._job(request, job_id)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import #%(id)s: %(resource)s") % {"id": job.pk, "resource": job.resource},
            "opts": self.opts,
            "job": job,
            "state": _job_state(job),
            "problems": job.errors,
            # A checked file, or one refused for bad rows or stopped half-way (a
            # file that could not be read at all has no rows to offer).
            "can_start": self.has_add_permission(request) and (
                job.status == ImportJobStatus.VALIDATED or (job.status == ImportJobStatus.FAILED and job.total_rows)),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/subscribers/importjob/progress.html", context)

    def status_view(self, request, job_id):
        return JsonResponse(_job_state(self._job(request, job_id)))

    def start_view(self, request, job_id):
        """Run a checked (or refused) file for real, refusing bad rows or skipping them."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        source = self._job(request, job_id)
        if source.status not in (ImportJobStatus.VALIDATED, ImportJobStatus.FAILED):
            messages.error(request, _("This job has not finished checking its file yet."))
            return HttpResponseRedirect(reverse("admin:subscribers_importjob_progress", args=[source.pk]))
        skip = request.POST.get("on_bad_rows") == "skip"
        job = ImportJob.objects.create(
            resource=source.resource, file=source.file.name, file_format=source.file_format, dry_run=False,
            skip_bad_rows=skip, created_by=request.user, message=_queued_message(False, skip) + f" (file checked in job #{source.pk})")
        self._enqueue(job)
        return HttpResponseRedirect(reverse("admin:subscribers_importjob_progress", args=[job.pk]))

    def problems_view(self, request, job_id):
        job = self._job(request, job_id)
        response = HttpResponse(problems_as_csv(job), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-problems.csv"'
        return response


def _queued_message(dry_run, skip):
    if dry_run:
        return "Waiting for a worker: check every row, write nothing."
    if skip:
        return "Waiting for a worker: import the valid rows and skip the bad ones."
    return "Waiting for a worker: import, refusing the whole file if any row is bad."


def _job_state(job):
    finished = job.status in (ImportJobStatus.VALIDATED, ImportJobStatus.DONE, ImportJobStatus.FAILED)
    return {
        "id": job.pk, "status": job.status, "status_label": str(job.get_status_display()), "finished": finished,
        "dry_run": job.dry_run, "percent": 100 if finished and job.total_rows else job.percent,
        "total_rows": job.total_rows, "processed_rows": job.processed_rows, "created_rows": job.created_rows,
        "updated_rows": job.updated_rows, "error_rows": job.error_rows, "message": job.message,
    }


from . import segment_admin  # noqa: E402,F401  (registers SegmentAdmin)
