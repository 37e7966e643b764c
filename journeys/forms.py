"""The journey builder's forms: the settings, one form per step type, the raw steps, the test run.

A step form reads a step (its JSON) into fields and writes the fields back over a copy of it, so
keys a form does not show (a wait for event's property filters, say) stay as they were.
"""
import copy
import json

from django import forms
from django.utils.translation import gettext_lazy as _

from delivery.models import DeliveryChannel, MessageTemplate

from . import builder
from .models import Journey

END = ""


class JourneySettingsForm(forms.ModelForm):
    trigger = forms.JSONField(
        label=_("Trigger settings"), required=False,
        help_text=_('Property filters for an event, e.g. {"properties": [{"property": "value", "operator": '
                    '"exists"}]}; {"segment": id}; {"attribute": "birthday", "offset_days": 0, "local_time": '
                    '"10:00"}; {"days": 30} of inactivity.'),
        widget=forms.Textarea(attrs={"rows": 3, "dir": "ltr", "spellcheck": "false"}))

    class Meta:
        model = Journey
        fields = ["name", "description", "trigger_kind", "trigger_event", "trigger", "entry_rule",
                  "entry_period_days", "daily_cap", "goal_event", "goal_same_cart", "time_limit_days"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2}),
                   "trigger_event": forms.TextInput(attrs={"dir": "ltr"}),
                   "goal_event": forms.TextInput(attrs={"dir": "ltr"})}

    def clean_trigger(self):
        value = self.cleaned_data.get("trigger")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_("Expected an object, e.g. {\"days\": 30}."))
        return value

    def clean(self):
        data = super().clean()
        if data.get("trigger_kind") == "event" and not data.get("trigger_event"):
            self.add_error("trigger_event", _("Name the event that starts the journey, e.g. cart_abandoned."))
        return data


def _link_choices(graph, optional):
    keys = sorted((graph.get("steps") or {}).keys())
    choices = [(key, key) for key in keys]
    if optional:
        choices.insert(0, (END, _("— the end —")))
    return choices


class StepForm(forms.Form):
    """The fields every step type shares; subclasses add theirs and say how to read and write them."""

    links = ()  # (field name, optional)

    def __init__(self, *args, graph, step, **kwargs):
        self.graph, self.step = graph, step
        kwargs.setdefault("initial", self.read(step))
        super().__init__(*args, **kwargs)
        for name, optional in self.links:
            self.fields[name] = forms.ChoiceField(label=LINK_LABELS[name], choices=_link_choices(graph, optional),
                                                  required=not optional)
            self.fields[name].initial = step.get(name) or END

    def read(self, step):
        return {name: step.get(name) for name in self.base_fields}

    def write(self, step):
        for name in self.base_fields:
            step[name] = self.cleaned_data[name]
        for name, optional in self.links:
            step[name] = self.cleaned_data.get(name) or None
        return step

    def updated_step(self):
        return self.write(copy.deepcopy(self.step))


LINK_LABELS = {"next": _("Then"), "yes": _("If yes"), "no": _("If no")}


class WaitForm(StepForm):
    links = (("next", False),)
    days = forms.IntegerField(label=_("Days"), min_value=0, required=False)
    hours = forms.IntegerField(label=_("Hours"), min_value=0, required=False)
    minutes = forms.IntegerField(label=_("Minutes"), min_value=0, required=False)

    def write(self, step):
        super().write(step)
        for unit in ("days", "hours", "minutes"):
            if not step.get(unit):
                step.pop(unit, None)
        return step

    def clean(self):
        data = super().clean()
        if not any(data.get(unit) for unit in ("days", "hours", "minutes")):
            raise forms.ValidationError(_("A wait needs minutes, hours or days."))
        return data


class WaitUntilForm(StepForm):
    links = (("next", False),)
    time = forms.TimeField(label=_("Local time of day"), widget=forms.TimeInput(attrs={"type": "time"},
                                                                                 format="%H:%M"))
    weekdays = forms.TypedMultipleChoiceField(label=_("Allowed weekdays (none: any day)"), coerce=int,
                                              required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["weekdays"].choices = list(builder.weekday_names().items())

    def read(self, step):
        return {"time": step.get("time"), "weekdays": step.get("weekdays") or []}

    def write(self, step):
        StepForm.write(self, step)
        step["time"] = self.cleaned_data["time"].strftime("%H:%M")
        return step


class WaitForEventForm(StepForm):
    links = (("yes", False), ("no", False))
    event = forms.CharField(label=_("Event"), max_length=100, widget=forms.TextInput(attrs={"dir": "ltr"}))
    timeout_minutes = forms.IntegerField(label=_("Wait at most (minutes)"), min_value=1)


class SendForm(StepForm):
    links = (("next", True),)
    template = forms.ChoiceField(label=_("Template"))
    channel_1 = forms.ChoiceField(label=_("First channel"), choices=DeliveryChannel.choices)
    channel_2 = forms.ChoiceField(label=_("Else"), required=False)
    channel_3 = forms.ChoiceField(label=_("Else"), required=False)
    channel_4 = forms.ChoiceField(label=_("Else"), required=False)
    unless_clicked = forms.BooleanField(label=_("Skip it when the last message was clicked"), required=False)
    transactional = forms.BooleanField(label=_("Transactional (no marketing consent or quiet hours)"),
                                       required=False)
    at_best_time = forms.BooleanField(
        label=_("At the shopper's best hour"), required=False,
        help_text=_("Wait until the local hour the shopper most often opens messages (predicted nightly)."))
    FLAGS = ("unless_clicked", "transactional", "at_best_time")
    CHANNEL_FIELDS = ("channel_1", "channel_2", "channel_3", "channel_4")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        slugs = list(MessageTemplate.objects.order_by("slug").values_list("slug", "name"))
        current = self.step.get("template") or ""
        choices = [(slug, f"{slug} — {name}" if name != slug else slug) for slug, name in slugs]
        if current and current not in dict(slugs):
            choices.insert(0, (current, current))
        self.fields["template"].choices = [("", "—")] + choices
        for name in self.CHANNEL_FIELDS[1:]:
            self.fields[name].choices = [("", "—")] + list(DeliveryChannel.choices)

    def read(self, step):
        data = {"template": step.get("template"), **{flag: bool(step.get(flag)) for flag in self.FLAGS}}
        for name, channel in zip(self.CHANNEL_FIELDS, step.get("channels") or []):
            data[name] = channel
        return data

    def clean(self):
        data = super().clean()
        channels = [data.get(name) for name in self.CHANNEL_FIELDS if data.get(name)]
        if len(set(channels)) != len(channels):
            raise forms.ValidationError(_("Name each channel once."))
        data["channels"] = channels
        return data

    def write(self, step):
        step["template"] = self.cleaned_data["template"]
        step["channels"] = self.cleaned_data["channels"]
        for flag in self.FLAGS:
            if self.cleaned_data[flag]:
                step[flag] = True
            else:
                step.pop(flag, None)
        step["next"] = self.cleaned_data.get("next") or None
        return step


class BranchForm(StepForm):
    links = (("yes", False), ("no", False))
    CONDITIONS = (("clicked", _("Clicked the last message")), ("not_clicked", _("Did not click the last message")),
                  ("event", _("An event happened")), ("rules", _("Matches segment rules")))
    condition = forms.ChoiceField(label=_("Condition"), choices=CONDITIONS)
    event = forms.CharField(label=_("Event"), max_length=100, required=False,
                            widget=forms.TextInput(attrs={"dir": "ltr"}))
    within_minutes = forms.IntegerField(label=_("Within the last (minutes)"), min_value=1, required=False)
    rules = forms.JSONField(label=_("Segment rules (JSON)"), required=False,
                            widget=forms.Textarea(attrs={"rows": 4, "dir": "ltr", "spellcheck": "false"}))

    def read(self, step):
        condition = step.get("condition") or {}
        if "rules" in condition:
            return {"condition": "rules", "rules": condition["rules"]}
        if "event" in condition:
            return {"condition": "event", "event": condition["event"],
                    "within_minutes": condition.get("within_minutes")}
        return {"condition": "clicked" if condition.get("clicked_last", True) else "not_clicked"}

    def clean(self):
        data = super().clean()
        kind = data.get("condition")
        if kind == "event":
            if not data.get("event"):
                self.add_error("event", _("Name the event."))
            if not data.get("within_minutes"):
                self.add_error("within_minutes", _("Say within how many minutes."))
        if kind == "rules" and not isinstance(data.get("rules"), dict):
            self.add_error("rules", _("Expected segment rules: {\"type\": \"group\", …}."))
        return data

    def write(self, step):
        kind = self.cleaned_data["condition"]
        if kind in ("clicked", "not_clicked"):
            step["condition"] = {"clicked_last": kind == "clicked"}
        elif kind == "event":
            step["condition"] = {"event": self.cleaned_data["event"],
                                 "within_minutes": self.cleaned_data["within_minutes"]}
        else:
            step["condition"] = {"rules": self.cleaned_data["rules"]}
        for name, _optional in self.links:
            step[name] = self.cleaned_data[name]
        return step


class SplitForm(StepForm):
    PATHS = 4

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = _link_choices(self.graph, True)
        paths = self.step.get("paths") or []
        for index in range(self.PATHS):
            option = paths[index] if index < len(paths) else {}
            self.fields[f"percent_{index}"] = forms.IntegerField(
                label=_("Path %(n)s: percent") % {"n": index + 1}, min_value=0, max_value=100, required=False,
                initial=option.get("percent"))
            self.fields[f"next_{index}"] = forms.ChoiceField(
                label=_("Path %(n)s: then") % {"n": index + 1}, choices=choices, required=False,
                initial=option.get("next") or END)

    def read(self, step):
        return {}

    def clean(self):
        data = super().clean()
        paths = []
        for index in range(self.PATHS):
            percent = data.get(f"percent_{index}")
            if percent:
                if not data.get(f"next_{index}"):
                    self.add_error(f"next_{index}", _("Choose where this path goes."))
                paths.append({"percent": percent, "next": data.get(f"next_{index}")})
        if sum(p["percent"] for p in paths) != 100:
            raise forms.ValidationError(_("The paths' percents must add up to 100."))
        data["paths"] = paths
        return data

    def write(self, step):
        step["paths"] = self.cleaned_data["paths"]
        return step


class UpdateForm(StepForm):
    links = (("next", True),)
    attributes = forms.JSONField(label=_("Set attributes (JSON object)"), required=False,
                                 widget=forms.Textarea(attrs={"rows": 3, "dir": "ltr", "spellcheck": "false"}))
    add_tags = forms.CharField(label=_("Add tags (comma-separated)"), required=False)
    remove_tags = forms.CharField(label=_("Remove tags (comma-separated)"), required=False)

    def read(self, step):
        return {"attributes": step.get("attributes") or {}, "add_tags": ", ".join(step.get("add_tags") or []),
                "remove_tags": ", ".join(step.get("remove_tags") or [])}

    def clean_attributes(self):
        value = self.cleaned_data.get("attributes")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_("Expected an object, e.g. {\"vip\": true}."))
        return value

    def write(self, step):
        step["attributes"] = self.cleaned_data["attributes"]
        for name in ("add_tags", "remove_tags"):
            step[name] = [tag.strip() for tag in self.cleaned_data[name].split(",") if tag.strip()]
        step["next"] = self.cleaned_data.get("next") or None
        return step


class WebhookForm(StepForm):
    links = (("next", True),)
    url = forms.CharField(label=_("URL (an allowed host, https)"), max_length=500,
                          widget=forms.TextInput(attrs={"dir": "ltr", "type": "url"}))


class ExitForm(StepForm):
    pass


STEP_FORMS = {"wait": WaitForm, "wait_until": WaitUntilForm, "wait_for_event": WaitForEventForm, "send": SendForm,
              "branch": BranchForm, "split": SplitForm, "update": UpdateForm, "webhook": WebhookForm,
              "exit": ExitForm}

STEP_TYPE_LABELS = {"wait": _("Wait"), "wait_until": _("Wait until a time"), "wait_for_event": _("Wait for an event"),
                    "send": _("Send a message"), "branch": _("Branch"), "split": _("Random split"),
                    "update": _("Update attributes or tags"), "webhook": _("Call a webhook"), "exit": _("Exit")}


def step_form(step, graph, data=None):
    form_class = STEP_FORMS.get(step.get("type"), ExitForm)
    return form_class(data, graph=graph, step=step)


class AddStepForm(forms.Form):
    kind = forms.ChoiceField(label=_("New step"), choices=list(STEP_TYPE_LABELS.items()))


class StepsJSONForm(forms.Form):
    steps = forms.CharField(label=_("Steps (JSON)"),
                            widget=forms.Textarea(attrs={"rows": 16, "dir": "ltr", "spellcheck": "false"}))

    def clean_steps(self):
        try:
            return json.loads(self.cleaned_data["steps"])
        except ValueError as error:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": error}) from error


class TestRunForm(forms.Form):
    who = forms.CharField(label=_("Shopper (external id, email or phone)"), max_length=200)

    def clean_who(self):
        subscriber = builder.find_subscriber(self.cleaned_data["who"])
        if subscriber is None:
            raise forms.ValidationError(_("No shopper has this external id, email or phone."))
        self.subscriber = subscriber
        return self.cleaned_data["who"]
