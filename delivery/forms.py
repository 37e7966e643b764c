"""Forms for editing message templates: Liquid is checked on save and errors name the line."""
from django import forms
from django.utils.translation import gettext as _

from subscribers.validation import normalize_locale

from .models import TemplateContent
from .rendering import RenderError, render_content, sample_shopper, validate_content

# RenderError.field is "actions[2].url" or "whatsapp_variables[1]"; the form field is the part before "[".
_FORM_FIELD = {"actions": "actions", "whatsapp_variables": "whatsapp_variables"}


def describe_render_error(error):
    """The operator-facing text of a RenderError: the line first, when known."""
    detail = error.field if "[" in (error.field or "") else ""
    parts = []
    if error.line:
        parts.append(_("Line %(line)s") % {"line": error.line})
    if detail:
        parts.append(detail)
    prefix = ", ".join(parts)
    return f"{prefix}: {error.message}" if prefix else str(error.message)


class TemplateContentForm(forms.ModelForm):
    """One channel's content in one locale; the inline sets the channel."""

    channel = None

    class Meta:
        model = TemplateContent
        exclude = ("channel",)
        widgets = {
            "body": forms.Textarea(attrs={"rows": 4, "dir": "auto"}),
            "title": forms.TextInput(attrs={"dir": "auto", "size": 60}),
            "subject": forms.TextInput(attrs={"dir": "auto", "size": 60}),
            "html_body": forms.Textarea(attrs={"rows": 10, "dir": "auto"}),
            "text_body": forms.Textarea(attrs={"rows": 6, "dir": "auto"}),
            "button_label": forms.TextInput(attrs={"dir": "auto"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.channel:
            self.instance.channel = self.channel

    def clean_locale(self):
        return normalize_locale((self.cleaned_data.get("locale") or "").strip())

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = TemplateContent(channel=self.channel or self.instance.channel,
                                    **{name: value for name, value in cleaned.items()
                                       if name in {f.name for f in TemplateContent._meta.fields}})
        try:
            validate_content(candidate)
            # Render for the sample shopper to catch what only shows once rendered (a javascript: link,
            # a push without a title, a payload too big); data the sample lacks is not the form's concern.
            try:
                render_content(candidate, sample_shopper(candidate.locale))
            except RenderError as error:
                if error.code != "missing_variable":
                    raise
        except RenderError as error:
            field = (error.field or "").split("[")[0].split(".")[0]
            field = _FORM_FIELD.get(field, field)
            self.add_error(field if field in self.fields else None, describe_render_error(error))
        return cleaned
