"""The campaign builder's forms: thin, the rules live in campaigns.engine."""
import zoneinfo
from datetime import datetime

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from delivery.models import DeliveryChannel, MessageTemplate
from subscribers.models import Segment
from subscribers.validation import timezone_names

from . import engine
from .models import Campaign, ScheduleKind, Variant

CHANNEL_SLOTS = 5
NO_CHANNEL = [("", "—")]


def store_zone():
    return zoneinfo.ZoneInfo(getattr(settings, "STORE_TIMEZONE", "UTC") or "UTC")


class CampaignForm(forms.ModelForm):
    send_at_local = forms.DateTimeField(
        label=_("Send at"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("In the store's timezone."))

    class Meta:
        model = Campaign
        fields = ["name", "description", "include_segments", "exclude_segments", "schedule_kind", "local_date",
                  "local_time", "missed_local_time", "recurrence", "recurrence_timezone", "throttle_per_minute",
                  "is_critical", "holdout_percent", "test_percent", "winner_metric", "winner_wait_hours",
                  "conversion_event", "conversion_window_hours"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "include_segments": forms.CheckboxSelectMultiple,
            "exclude_segments": forms.CheckboxSelectMultiple,
            "schedule_kind": forms.RadioSelect,
            "local_date": forms.DateInput(attrs={"type": "date"}),
            "local_time": forms.TimeInput(attrs={"type": "time"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        segments = Segment.objects.order_by("name")
        self.fields["include_segments"].queryset = segments
        self.fields["exclude_segments"].queryset = segments
        self.fields["recurrence_timezone"].widget = forms.Select(
            choices=[("", _("Each subscriber's own timezone"))] + [(name, name) for name in sorted(timezone_names())])
        for slot in range(CHANNEL_SLOTS):
            self.fields[f"channel_{slot}"] = forms.ChoiceField(
                label=_("Channel %(n)d") % {"n": slot + 1} if slot else _("First channel"),
                choices=NO_CHANNEL + list(DeliveryChannel.choices), required=False)
            if self.instance and slot < len(self.instance.channels or []):
                self.initial[f"channel_{slot}"] = self.instance.channels[slot]
        if self.instance and self.instance.send_at:
            self.initial["send_at_local"] = timezone.localtime(self.instance.send_at, store_zone()).replace(tzinfo=None)

    def channel_fields(self):
        return [self[f"channel_{slot}"] for slot in range(CHANNEL_SLOTS)]

    def clean(self):
        data = super().clean()
        channels = []
        for slot in range(CHANNEL_SLOTS):
            channel = data.get(f"channel_{slot}")
            if channel and channel not in channels:
                channels.append(channel)
        if not channels:
            self.add_error("channel_0", _("Choose at least one channel."))
        data["channels"] = channels
        if data.get("recurrence"):
            try:
                engine.parse_recurrence(data["recurrence"])
            except ValueError as error:
                self.add_error("recurrence", str(error))
        local = data.get("send_at_local")
        if local is not None:
            data["send_at"] = datetime.combine(local.date(), local.time(), tzinfo=store_zone())
        elif data.get("schedule_kind") == ScheduleKind.AT:
            self.add_error("send_at_local", _("Choose the date and time to send."))
        include = set(data.get("include_segments") or [])
        if include & set(data.get("exclude_segments") or []):
            self.add_error("exclude_segments", _("A segment can't be both included and excluded."))
        return data

    def save(self, commit=True):
        campaign = super().save(commit=False)
        campaign.channels = self.cleaned_data["channels"]
        campaign.send_at = self.cleaned_data.get("send_at")
        if commit:
            campaign.save()
            self.save_m2m()
        return campaign


class VariantForm(forms.ModelForm):
    channel = forms.ChoiceField(
        label=_("Channel"), required=False, choices=[("", _("The campaign's channels"))] + list(DeliveryChannel.choices),
        help_text=_("Set to test a channel against another."))
    discount_code = forms.CharField(label=_("Discount code"), required=False, max_length=50,
                                    help_text=_("{{ discount_code }} in the template: test an incentive."))

    class Meta:
        model = Variant
        fields = ["template"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = MessageTemplate.objects.order_by("name")
        if self.instance and self.instance.pk:
            self.initial["channel"] = (self.instance.channels or [""])[0]
            self.initial["discount_code"] = (self.instance.context or {}).get("discount_code", "")

    def save(self, commit=True):
        variant = super().save(commit=False)
        variant.channels = [self.cleaned_data["channel"]] if self.cleaned_data.get("channel") else []
        context = dict(variant.context or {})
        if self.cleaned_data.get("discount_code"):
            context["discount_code"] = self.cleaned_data["discount_code"]
        else:
            context.pop("discount_code", None)
        variant.context = context
        if commit:
            variant.save()
        return variant


class BaseVariantFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        kept = [form for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        if not kept:
            raise forms.ValidationError(_("Add at least one variant (a template)."))

    def save(self, commit=True):
        variants = super().save(commit=False)
        for variant in self.deleted_objects:
            variant.delete()
        kept = sorted([v for v in self.instance.variants.all() if v.pk not in {d.pk for d in self.deleted_objects}]
                      + [v for v in variants if not v.pk], key=lambda v: (v.pk is None, v.label, v.pk or 0))
        # Labels follow the order on the page: A, B, C, D (two passes to keep the unique constraint happy).
        for index, variant in enumerate(kept):
            if variant.pk:
                Variant.objects.filter(pk=variant.pk).update(label=str(index))
        for index, variant in enumerate(kept):
            variant.label = "ABCD"[index]
            variant.campaign = self.instance
            variant.save()
        return kept


def variant_formset(extra=0):
    """The variants' formset class, with `extra` empty forms (the builder's "add a variant")."""
    return forms.inlineformset_factory(
        Campaign, Variant, form=VariantForm, formset=BaseVariantFormSet, extra=extra, min_num=1, max_num=4,
        validate_max=True, can_delete=True)


class TestSendForm(forms.Form):
    recipients = forms.CharField(
        label=_("Send a test to"), max_length=500,
        help_text=_("Customer ids, emails or phone numbers of shoppers in Tanbih, separated by commas."))

    def clean_recipients(self):
        from django.db.models import Q

        from subscribers.models import Subscriber

        wanted = [value.strip() for value in self.cleaned_data["recipients"].split(",") if value.strip()]
        found, missing = [], []
        for value in wanted[:10]:
            subscriber = Subscriber.objects.filter(
                Q(external_id=value) | Q(email__iexact=value) | Q(phone=value)).first()
            (found if subscriber else missing).append(subscriber or value)
        if missing:
            raise forms.ValidationError(_("No shopper found for: %(values)s") % {"values": ", ".join(missing)})
        return found
