"""Import and export of subscribers, consents and orders (CSV and XLSX).

Every imported row goes through the same write paths as the API
(`upsert_subscriber`, `grant_consent` / `revoke_consent`, `place_order`) after
being checked with the same rules (subscribers/validation.py), so a file can't
put into the database what the API would refuse.

Two ways in, one set of rules:
- the resources below plug into django-import-export, whose admin buttons
  ("Import" / "Export") suit small files: it checks the whole file, shows each
  bad row and refuses the import while any row is bad;
- `run_import_job` runs an ImportJob in a Celery task for large files: it reads
  the file in chunks, keeps `processed_rows` current for the progress page, and
  either refuses the whole file when a row is bad (the default) or, when the
  operator chose so, imports the valid rows and records the skipped ones.

Row numbers are counted as django-import-export counts them: row 1 is the
first row under the header (a spreadsheet shows it as line 2).
"""
import csv
import io
import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation

import phonenumbers
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.files.base import File as DjangoFile
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.utils import timezone
from import_export import fields, resources, widgets
from import_export.results import RowResult

from . import services
from .models import (
    Channel,
    Consent,
    ConsentStatus,
    ImportJob,
    ImportJobStatus,
    Order,
    OrderStatus,
    Source,
    Subscriber,
)
from .validation import normalize_locale, normalize_phone, normalize_timezone, timezone_names

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
# A file with every row bad still gets a readable page and a bounded JSON column.
MAX_STORED_PROBLEMS = 10_000
FILE_FORMATS = ("csv", "xlsx")
NEW, UPDATE, UNCHANGED = "new", "update", "unchanged"



# --- Problems -------------------------------------------------------------------

@dataclass
class Problem:
    """What is wrong with one cell (or one row, when `field` is empty)."""

    field: str
    code: str
    message: str
    value: str = ""

    def as_dict(self, row):
        return {"row": row, **asdict(self)}


class BadRow(Exception):
    def __init__(self, problems):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems

    def as_validation_error(self):
        errors = {}
        for problem in self.problems:
            errors.setdefault(problem.field or NON_FIELD_ERRORS, []).append(problem.message)
        return ValidationError(errors)


class ImportFileError(Exception):
    """The file as a whole can't be read (format, encoding, missing columns)."""


def problems_from_validation_error(error, default_field=""):
    if hasattr(error, "error_dict"):
        return [
            Problem(field if field != NON_FIELD_ERRORS else default_field, e.code or "invalid", message)
            for field, errors in error.error_dict.items()
            for e in errors
            for message in e.messages
        ]
    return [Problem(default_field, e.code or "invalid", message) for e in error.error_list for message in e.messages]


# --- Cell parsing ---------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"^[+-]?\d[\d.]*$")


def escape_formula(value):
    """Quote text a spreadsheet would run as a formula (a shopper can type "=HYPERLINK(…)" as a name)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def text(value):
    """A cell as stripped text; spreadsheet numbers lose their '.0' (customer ids, phones)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    value = str(value).strip()
    if value[:1] == "'" and value[1:2] and value[1] in "=+-@":
        return value[1:]  # quoted by escape_formula on export
    return value


def normalize_header(header):
    name = text(header)
    if name.lower().startswith("attributes."):
        return "attributes." + name.split(".", 1)[1].strip()
    return re.sub(r"[\s\-]+", "_", name.lower())


def parse_datetime(value, field):
    """An aware datetime from an ISO 8601 text or a spreadsheet date; naive times are UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        raw = text(value)
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise BadRow([Problem(field, "invalid_datetime", (
                f"'{raw}' is not a date and time; use ISO 8601 such as 2026-03-01 14:30 "
                "(UTC) or 2026-03-01T17:30:00+03:00."), raw)])
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt_timezone.utc)
    return parsed


def parse_date(value, field):
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raw = text(value)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRow([Problem(field, "invalid_date", f"'{raw}' is not a date; use YYYY-MM-DD such as 1990-04-23.", raw)])


def parse_amount(value, field):
    raw = text(value)
    try:
        amount = Decimal(str(value) if isinstance(value, float) else raw)
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise BadRow([Problem(field, "invalid_amount",
                              f"'{raw}' is not an amount; write a plain number such as 199.90 "
                              "(no currency sign or thousands separator).", raw)])
    if amount < 0:
        raise BadRow([Problem(field, "negative_amount", f"{raw} is negative; an order's value is 0 or more.", raw)])
    if amount >= Decimal("1e12"):
        raise BadRow([Problem(field, "amount_too_large", f"{raw} is too large for an order value.", raw)])
    return amount.quantize(Decimal("0.01"))


def parse_json(value, field, kind, example):
    if isinstance(value, kind):
        return value
    raw = text(value)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, kind):
        raise BadRow([Problem(field, "invalid_json", f"'{raw[:80]}' is not valid here; write JSON such as {example}.",
                              raw[:200])])
    return parsed


def check_timezone(raw):
    """normalize_timezone without listing the tz database again for every row (~6 ms each time)."""
    value = text(raw)
    if value in timezone_names():
        return value
    return normalize_timezone(value)  # raises, with the API's message


def _collect(problems, field, raw, func):
    """Run one cell check, turning its ValidationError / BadRow into problems."""
    try:
        return func()
    except BadRow as bad:
        problems.extend(bad.problems)
    except ValidationError as error:
        for problem in problems_from_validation_error(error, field):
            problem.value = problem.value or text(raw)
            problems.append(problem)
    return None


def is_blank_row(row):
    return all(text(v) == "" for v in row.values())


# --- Resources ------------------------------------------------------------------

class JSONTextWidget(widgets.Widget):
    """JSON in one cell (items, custom attributes) on export."""

    def render(self, value, obj=None, **kwargs):
        if value in (None, "", [], {}):
            return ""
        return json.dumps(value, ensure_ascii=False, default=str)


class TagsWidget(widgets.Widget):
    def render(self, value, obj=None, **kwargs):
        return ", ".join(value or [])


class ServiceResource(resources.ModelResource):
    """A django-import-export resource whose rows go through the services.

    Subclasses say which columns they read (`required_columns`,
    `optional_columns`) and implement `prefetch` (batch lookups for a chunk of
    rows), `clean_row` (raise BadRow with every problem of the row),
    `classify` (new / update / unchanged) and `apply_row` (call the services).
    """

    key = ""  # subscribers | consents | orders
    required_columns = ()
    optional_columns = ()
    export_only_columns = ()

    class Meta:
        skip_diff = True
        use_transactions = True
        store_instance = True

    def __init__(self, *, job=None, **kwargs):
        super().__init__(**kwargs)
        self.job = job

    # Columns

    @classmethod
    def import_columns(cls):
        return list(cls.required_columns) + list(cls.optional_columns)

    @classmethod
    def check_headers(cls, headers):
        """Raise ImportFileError for missing required columns; return the ignored ones."""
        normalized = [normalize_header(h) for h in headers if text(h)]
        duplicates = sorted({h for h in normalized if normalized.count(h) > 1})
        if duplicates:
            raise ImportFileError(f"The column(s) {', '.join(duplicates)} appear more than once in the header row.")
        missing = [c for c in cls.required_columns if c not in normalized]
        if missing:
            raise ImportFileError(
                f"The file has no {', '.join(repr(c) for c in missing)} column. A {cls.key} file needs the "
                f"columns {', '.join(cls.required_columns)}"
                + (f" and may have {', '.join(cls.optional_columns)}." if cls.optional_columns else ".")
                + f" The header row has: {', '.join(normalized) or '(nothing)'}."
            )
        known = set(cls.import_columns()) | set(cls.export_only_columns)
        return [h for h in normalized if h not in known and not cls.accepts_column(h)]

    @classmethod
    def accepts_column(cls, column):
        return False

    # The row protocol (shared by the admin buttons and the import job)

    def prefetch(self, rows):
        return {}

    def clean_row(self, row, context):
        raise NotImplementedError

    def classify(self, cleaned, context):
        raise NotImplementedError

    def apply_row(self, cleaned, context, *, row_number=None):
        raise NotImplementedError

    def export_field(self, field, instance, **kwargs):
        return escape_formula(super().export_field(field, instance, **kwargs))

    def evidence(self, row_number, file_name=""):
        evidence = {"import_row": row_number}
        if self.job is not None:
            evidence["import_job"] = self.job.pk
            file_name = file_name or self.job.file.name
        if file_name:
            evidence["file"] = str(file_name).rsplit("/", 1)[-1]
        return evidence

    def process_row(self, row, context, *, row_number):
        """Check a row and apply it in its own savepoint.

        Returns (kind, instance); raises BadRow. Service-level refusals
        (ValidationError) become BadRow too, so they are reported like any
        other bad cell.
        """
        cleaned = self.clean_row(row, context)
        kind = self.classify(cleaned, context)
        instance = cleaned.get("_instance")
        if kind == UNCHANGED:
            return kind, instance
        try:
            with transaction.atomic():
                instance = self.apply_row(cleaned, context, row_number=row_number)
        except ValidationError as error:
            raise BadRow(problems_from_validation_error(error))
        return kind, instance

    # django-import-export integration

    def get_diff_headers(self):
        return self.import_columns()

    def before_import(self, dataset, **kwargs):
        self.check_headers(dataset.headers or [])
        dataset.headers = [normalize_header(h) for h in dataset.headers]
        self._file_name = kwargs.get("file_name") or ""

    def import_row(self, row, instance_loader, **kwargs):
        row_result = self.get_row_result_class()()
        number = kwargs.get("row_number")
        row = {normalize_header(k): v for k, v in row.items()}
        try:
            if is_blank_row(row):
                row_result.import_type = RowResult.IMPORT_TYPE_SKIP
                return row_result
            context = self.prefetch([row])
            # Inside import_data's transaction: a dry run applies the row and is
            # rolled back with everything else, so its preview is exact.
            kind, instance = self.process_row(row, context, row_number=number)
            row_result.import_type = {NEW: RowResult.IMPORT_TYPE_NEW, UPDATE: RowResult.IMPORT_TYPE_UPDATE,
                                      UNCHANGED: RowResult.IMPORT_TYPE_SKIP}[kind]
            row_result.diff = [text(row.get(column)) for column in self.import_columns()]
            row_result.add_instance_info(instance)
            row_result.instance = instance
        except BadRow as bad:
            row_result.import_type = RowResult.IMPORT_TYPE_INVALID
            row_result.validation_error = bad.as_validation_error()
        except Exception as error:  # reported on the import page, as django-import-export does
            log.debug("import row %s failed", number, exc_info=True)
            row_result.import_type = RowResult.IMPORT_TYPE_ERROR
            row_result.errors.append(self.get_error_result_class()(error, row=row, number=number))
        return row_result


class SubscriberResource(ServiceResource):
    key = "subscribers"
    required_columns = ("external_id",)
    optional_columns = (
        "email", "phone", "country", "first_name", "last_name", "locale", "timezone", "city", "birthday",
        "gender", "tags", "attributes", "subscribed_page_url", "subscribed_category",
    )
    export_only_columns = ("lifecycle_stage", "orders_count", "total_spent", "last_order_at", "created_at",
                           "last_seen_at")
    TEXT_FIELDS = ("first_name", "last_name", "city", "gender", "subscribed_category")

    external_id = fields.Field(attribute="external_id", column_name="external_id")
    email = fields.Field(attribute="email", column_name="email")
    phone = fields.Field(attribute="phone", column_name="phone")
    country = fields.Field(attribute="country", column_name="country")
    first_name = fields.Field(attribute="first_name", column_name="first_name")
    last_name = fields.Field(attribute="last_name", column_name="last_name")
    locale = fields.Field(attribute="locale", column_name="locale")
    timezone = fields.Field(attribute="timezone", column_name="timezone")
    city = fields.Field(attribute="city", column_name="city")
    birthday = fields.Field(attribute="birthday", column_name="birthday", widget=widgets.DateWidget("%Y-%m-%d"))
    gender = fields.Field(attribute="gender", column_name="gender")
    tags = fields.Field(attribute="tags", column_name="tags", widget=TagsWidget())
    attributes = fields.Field(attribute="attributes", column_name="attributes", widget=JSONTextWidget())
    subscribed_page_url = fields.Field(attribute="subscribed_page_url", column_name="subscribed_page_url")
    subscribed_category = fields.Field(attribute="subscribed_category", column_name="subscribed_category")
    lifecycle_stage = fields.Field(attribute="lifecycle_stage", column_name="lifecycle_stage", readonly=True)
    orders_count = fields.Field(attribute="orders_count", column_name="orders_count", readonly=True)
    total_spent = fields.Field(attribute="total_spent", column_name="total_spent", readonly=True,
                               widget=widgets.DecimalWidget())
    last_order_at = fields.Field(attribute="last_order_at", column_name="last_order_at", readonly=True,
                                 widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))
    created_at = fields.Field(attribute="created_at", column_name="created_at", readonly=True,
                              widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))
    last_seen_at = fields.Field(attribute="last_seen_at", column_name="last_seen_at", readonly=True,
                                widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))

    class Meta(ServiceResource.Meta):
        model = Subscriber
        name = "Subscribers"
        fields = (
            "external_id", "email", "phone", "country", "first_name", "last_name", "locale", "timezone", "city",
            "birthday", "gender", "tags", "attributes", "subscribed_page_url", "subscribed_category",
            "lifecycle_stage", "orders_count", "total_spent", "last_order_at", "created_at", "last_seen_at",
        )
        export_order = fields

    @classmethod
    def accepts_column(cls, column):
        return column.startswith("attributes.") and len(column) > len("attributes.")

    def prefetch(self, rows):
        ids = {text(row.get("external_id")) for row in rows} - {""}
        return {"existing": {s.external_id: s for s in Subscriber.objects.filter(external_id__in=ids)}}

    def clean_row(self, row, context):
        problems = []
        data = {}
        external_id = text(row.get("external_id"))
        if not external_id:
            problems.append(Problem("external_id", "required",
                                    "The store customer id is missing; every row needs one."))
        elif len(external_id) > 128:
            problems.append(Problem("external_id", "too_long", "The store customer id is longer than 128 characters.",
                                    external_id[:80]))

        country = text(row.get("country")).upper()
        if country:
            if country in phonenumbers.SUPPORTED_REGIONS:
                data["country"] = country
            else:
                problems.append(Problem("country", "invalid_country", (
                    f"'{country}' is not a country code; use ISO 3166-1 alpha-2 such as SA, AE, EG, GB or US."),
                    country))
                country = ""
        if text(row.get("phone")):
            raw = row.get("phone")
            phone = _collect(problems, "phone", raw, lambda: normalize_phone(text(raw), default_region=country or None))
            if phone:
                data["phone"] = phone
        if text(row.get("email")):
            email = text(row.get("email"))

            def check_email():
                validate_email(email)
                return email
            if _collect(problems, "email", email, check_email):
                data["email"] = email
        if text(row.get("locale")):
            raw = row.get("locale")
            locale = _collect(problems, "locale", raw, lambda: normalize_locale(text(raw)))
            if locale:
                data["locale"] = locale
        if text(row.get("timezone")):
            raw = row.get("timezone")
            tz = _collect(problems, "timezone", raw, lambda: check_timezone(raw))
            if tz:
                data["timezone"] = tz
        if text(row.get("birthday")):
            birthday = _collect(problems, "birthday", row.get("birthday"),
                                lambda: parse_date(row.get("birthday"), "birthday"))
            if birthday and birthday > timezone.now().date():
                problems.append(Problem("birthday", "future_date", f"The birthday {birthday} is in the future.",
                                        str(birthday)))
            elif birthday:
                data["birthday"] = birthday
        for name in self.TEXT_FIELDS:
            if text(row.get(name)):
                data[name] = text(row.get(name))
        if text(row.get("subscribed_page_url")):
            url = text(row.get("subscribed_page_url"))

            def check_url():
                URLValidator(schemes=["http", "https"])(url)
                return url
            if _collect(problems, "subscribed_page_url", url, check_url):
                data["subscribed_page_url"] = url
        if text(row.get("tags")):
            tags = [t.strip() for t in text(row.get("tags")).split(",") if t.strip()]
            long_tags = [t for t in tags if len(t) > 64]
            if long_tags or len(tags) > 100:
                problems.append(Problem("tags", "invalid_tags", (
                    "Tags are a comma-separated list of at most 100 tags of up to 64 characters each."),
                    text(row.get("tags"))[:80]))
            else:
                data["tags"] = tags
        attributes = {}
        if text(row.get("attributes")):
            parsed = _collect(problems, "attributes", row.get("attributes"), lambda: parse_json(
                row.get("attributes"), "attributes", dict, '{"loyalty_tier": "gold"}'))
            attributes.update(parsed or {})
        for column, value in row.items():
            if self.accepts_column(column) and text(value):
                attributes[column.split(".", 1)[1]] = value if isinstance(value, int | float) else text(value)
        if attributes:
            data["attributes"] = attributes

        # The model's own rules (lengths, email, timezone) as upsert_subscriber applies them.
        probe = Subscriber(**{k: v for k, v in data.items() if k not in ("attributes", "tags")})
        try:
            probe.full_clean(exclude=["external_id", "timezone"], validate_unique=False, validate_constraints=False)
        except ValidationError as error:
            reported = {p.field for p in problems}
            for problem in problems_from_validation_error(error):
                if problem.field not in reported:
                    problem.value = text(data.get(problem.field))[:80]
                    problems.append(problem)
        if problems:
            raise BadRow(problems)
        existing = context.get("existing", {}).get(external_id)
        return {"external_id": external_id, "fields": data, "_instance": existing}

    def classify(self, cleaned, context):
        existing = context.get("existing", {}).get(cleaned["external_id"])
        if existing is None:
            return NEW
        for name, value in cleaned["fields"].items():
            if name == "attributes":
                if {**existing.attributes, **value} != existing.attributes:
                    return UPDATE
            elif name == "tags":
                if sorted(set(value)) != existing.tags:
                    return UPDATE
            elif getattr(existing, name) != value:
                return UPDATE
        return UNCHANGED

    def apply_row(self, cleaned, context, *, row_number=None):
        subscriber, _ = services.upsert_subscriber(
            external_id=cleaned["external_id"], source=Source.IMPORT, **cleaned["fields"])
        context.setdefault("existing", {})[subscriber.external_id] = subscriber
        return subscriber


CONSENT_STATUS_WORDS = {
    "granted": ConsentStatus.GRANTED, "grant": ConsentStatus.GRANTED, "yes": ConsentStatus.GRANTED,
    "true": ConsentStatus.GRANTED, "1": ConsentStatus.GRANTED, "opt-in": ConsentStatus.GRANTED,
    "opted_in": ConsentStatus.GRANTED, "subscribed": ConsentStatus.GRANTED,
    "revoked": ConsentStatus.REVOKED, "revoke": ConsentStatus.REVOKED, "no": ConsentStatus.REVOKED,
    "false": ConsentStatus.REVOKED, "0": ConsentStatus.REVOKED, "opt-out": ConsentStatus.REVOKED,
    "opted_out": ConsentStatus.REVOKED, "unsubscribed": ConsentStatus.REVOKED,
}


class ConsentResource(ServiceResource):
    key = "consents"
    required_columns = ("external_id", "channel", "status")
    optional_columns = ("occurred_at", "evidence")
    export_only_columns = ("source", "granted_at", "revoked_at")

    external_id = fields.Field(attribute="subscriber__external_id", column_name="external_id", readonly=True)
    channel = fields.Field(attribute="channel", column_name="channel")
    status = fields.Field(attribute="status", column_name="status")
    occurred_at = fields.Field(attribute="updated_at", column_name="occurred_at",
                               widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))
    evidence = fields.Field(attribute="evidence", column_name="evidence", widget=JSONTextWidget())
    source = fields.Field(attribute="source", column_name="source", readonly=True)
    granted_at = fields.Field(attribute="granted_at", column_name="granted_at", readonly=True,
                              widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))
    revoked_at = fields.Field(attribute="revoked_at", column_name="revoked_at", readonly=True,
                              widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))

    class Meta(ServiceResource.Meta):
        model = Consent
        name = "Consents"
        fields = ("external_id", "channel", "status", "occurred_at", "evidence", "source", "granted_at", "revoked_at")
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("subscriber")

    def prefetch(self, rows):
        ids = {text(row.get("external_id")) for row in rows} - {""}
        subscribers = {s.external_id: s for s in Subscriber.objects.filter(external_id__in=ids)}
        consents = {(c.subscriber_id, c.channel): c
                    for c in Consent.objects.filter(subscriber__in=list(subscribers.values()))}
        return {"subscribers": subscribers, "consents": consents}

    def clean_row(self, row, context):
        problems = []
        external_id = text(row.get("external_id"))
        subscriber = None
        if not external_id:
            problems.append(Problem("external_id", "required", "The store customer id is missing; every row needs one."))
        else:
            subscriber = context["subscribers"].get(external_id)
            if subscriber is None:
                problems.append(Problem("external_id", "unknown_subscriber", (
                    f"No subscriber has the store customer id '{external_id}'; import the subscribers first."),
                    external_id))
        channel = text(row.get("channel")).lower()
        if channel not in Channel.values:
            problems.append(Problem("channel", "invalid_channel", (
                f"'{channel}' is not a channel; use one of {', '.join(Channel.values)}."), channel))
            channel = ""
        raw_status = text(row.get("status"))
        status = CONSENT_STATUS_WORDS.get(raw_status.lower())
        if status is None:
            problems.append(Problem("status", "invalid_status",
                                    f"'{raw_status}' is not a consent status; use granted or revoked.", raw_status))
        at = None
        if text(row.get("occurred_at")):
            at = _collect(problems, "occurred_at", row.get("occurred_at"),
                          lambda: parse_datetime(row.get("occurred_at"), "occurred_at"))
            if at and at > timezone.now() + timedelta(minutes=5):
                problems.append(Problem("occurred_at", "future_date", f"{at:%Y-%m-%d %H:%M} UTC is in the future.",
                                        text(row.get("occurred_at"))))
        evidence_note = text(row.get("evidence"))
        if subscriber and channel and status == ConsentStatus.GRANTED:
            if channel == Channel.PUSH:
                problems.append(Problem("channel", "push_needs_browser", (
                    "Push consent comes with a browser's push subscription and can't be granted by a file; "
                    "it can only be revoked."), channel))
            elif channel in (Channel.SMS, Channel.WHATSAPP) and not subscriber.phone:
                problems.append(Problem("channel", "phone_required", (
                    f"{external_id} has no phone number; import it with the subscribers before granting {channel}."),
                    channel))
            elif channel == Channel.EMAIL and not subscriber.email:
                problems.append(Problem("channel", "email_required", (
                    f"{external_id} has no email address; import it with the subscribers before granting email."),
                    channel))
        if subscriber and channel and status:
            problem = self._newer_decision(context["consents"].get((subscriber.pk, channel)), status, at)
            if problem:
                problems.append(problem)
        if problems:
            raise BadRow(problems)
        return {"subscriber": subscriber, "channel": channel, "status": status, "at": at, "note": evidence_note,
                "_instance": context["consents"].get((subscriber.pk, channel))}

    @staticmethod
    def _newer_decision(current, status, at):
        # A file must not undo a decision the shopper made after the file's date
        # (a STOP received yesterday beats a CRM export from last year).
        if current is None or current.status == status or at is None or current.updated_at <= at:
            return None
        return Problem("occurred_at", "older_than_current", (
            f"This row ({status} on {at:%Y-%m-%d %H:%M} UTC) is older than the consent on file "
            f"({current.status} on {current.updated_at:%Y-%m-%d %H:%M} UTC, source {current.source}); "
            "a file can't override a newer decision."), f"{at:%Y-%m-%d %H:%M}")

    def classify(self, cleaned, context):
        current = context["consents"].get((cleaned["subscriber"].pk, cleaned["channel"]))
        if current is None:
            return NEW
        return UNCHANGED if current.status == cleaned["status"] else UPDATE

    def apply_row(self, cleaned, context, *, row_number=None):
        subscriber, channel = cleaned["subscriber"], cleaned["channel"]
        current = Consent.objects.filter(subscriber=subscriber, channel=channel).first()
        problem = self._newer_decision(current, cleaned["status"], cleaned["at"])
        if problem:
            raise BadRow([problem])
        evidence = self.evidence(row_number, getattr(self, "_file_name", ""))
        if cleaned["note"]:
            evidence["note"] = cleaned["note"]
        write = services.grant_consent if cleaned["status"] == ConsentStatus.GRANTED else services.revoke_consent
        consent, _ = write(subscriber=subscriber, channel=channel, source=Source.IMPORT, evidence=evidence,
                           at=cleaned["at"])
        context["consents"][(subscriber.pk, channel)] = consent
        return consent


ITEMS_EXAMPLE = '[{"product_id": "p1", "title": "Shoes", "price": "120.00", "quantity": 1}]'


class OrderResource(ServiceResource):
    key = "orders"
    required_columns = ("order_id", "external_id", "value", "placed_at")
    optional_columns = ("currency", "status", "items", "shipped_at", "delivered_at")

    order_id = fields.Field(attribute="external_id", column_name="order_id")
    external_id = fields.Field(attribute="subscriber__external_id", column_name="external_id", readonly=True)
    value = fields.Field(attribute="value", column_name="value", widget=widgets.DecimalWidget())
    placed_at = fields.Field(attribute="placed_at", column_name="placed_at",
                             widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))
    currency = fields.Field(attribute="currency", column_name="currency")
    status = fields.Field(attribute="status", column_name="status")
    items = fields.Field(attribute="items", column_name="items", widget=JSONTextWidget())
    shipped_at = fields.Field(attribute="shipped_at", column_name="shipped_at",
                              widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))
    delivered_at = fields.Field(attribute="delivered_at", column_name="delivered_at",
                                widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"))

    class Meta(ServiceResource.Meta):
        model = Order
        name = "Orders"
        fields = ("order_id", "external_id", "value", "placed_at", "currency", "status", "items", "shipped_at",
                  "delivered_at")
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("subscriber")

    def prefetch(self, rows):
        ids = {text(row.get("order_id")) for row in rows} - {""}
        return {"orders": {o.external_id: o for o in Order.objects.filter(external_id__in=ids)
                           .select_related("subscriber")}}

    def clean_row(self, row, context):
        problems = []
        order_id = text(row.get("order_id"))
        if not order_id:
            problems.append(Problem("order_id", "required", "The order id is missing; every row needs one."))
        elif len(order_id) > 128:
            problems.append(Problem("order_id", "too_long", "The order id is longer than 128 characters.",
                                    order_id[:80]))
        external_id = text(row.get("external_id"))
        if not external_id:
            problems.append(Problem("external_id", "required",
                                    "The customer's store id is missing; every order needs one."))
        elif len(external_id) > 128:
            problems.append(Problem("external_id", "too_long", "The store customer id is longer than 128 characters.",
                                    external_id[:80]))
        value = None
        if text(row.get("value")) == "":
            problems.append(Problem("value", "required", "The order value is missing."))
        else:
            value = _collect(problems, "value", row.get("value"), lambda: parse_amount(row.get("value"), "value"))
        currency = text(row.get("currency")).upper() or settings.DEFAULT_CURRENCY
        if not re.fullmatch(r"[A-Z]{3}", currency):
            problems.append(Problem("currency", "invalid_currency",
                                    f"'{currency}' is not a currency; use a 3-letter ISO 4217 code such as SAR.",
                                    currency))
        placed_at = None
        if text(row.get("placed_at")) == "":
            problems.append(Problem("placed_at", "required", "The order date (placed_at) is missing."))
        else:
            placed_at = _collect(problems, "placed_at", row.get("placed_at"),
                                 lambda: parse_datetime(row.get("placed_at"), "placed_at"))
            if placed_at and placed_at > timezone.now() + timedelta(days=1):
                problems.append(Problem("placed_at", "future_date",
                                        f"{placed_at:%Y-%m-%d %H:%M} UTC is in the future.", text(row.get("placed_at"))))
        raw_status = text(row.get("status")).lower()
        status = raw_status or OrderStatus.PLACED
        if status not in OrderStatus.values:
            problems.append(Problem("status", "invalid_status", (
                f"'{raw_status}' is not an order status; use one of {', '.join(OrderStatus.values)}."), raw_status))
        items = []
        if text(row.get("items")):
            items = _collect(problems, "items", row.get("items"),
                             lambda: self._clean_items(row.get("items"))) or []
        times = {}
        for name in ("shipped_at", "delivered_at"):
            if text(row.get(name)):
                times[name] = _collect(problems, name, row.get(name), lambda n=name: parse_datetime(row.get(n), n))
        existing = context.get("orders", {}).get(order_id)
        if existing is not None and existing.subscriber.external_id != external_id:
            problems.append(Problem("external_id", "order_of_another_customer", (
                f"Order {order_id} is already on file for customer '{existing.subscriber.external_id}', "
                f"not '{external_id}'."), external_id))
        if problems:
            raise BadRow(problems)
        return {"order_id": order_id, "external_id": external_id, "value": value, "currency": currency,
                "placed_at": placed_at, "status": status, "items": items, "times": times, "_instance": existing}

    @staticmethod
    def _clean_items(raw):
        items = parse_json(raw, "items", list, ITEMS_EXAMPLE)
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise BadRow([Problem("items", "invalid_items",
                                      f"Item {n} is not an object; write items as {ITEMS_EXAMPLE}.", text(raw)[:200])])
            if "price" in item:
                try:
                    price = Decimal(str(item["price"]))
                    if not price.is_finite() or price < 0:
                        raise InvalidOperation
                except (InvalidOperation, ValueError):
                    raise BadRow([Problem("items", "invalid_items",
                                          f"Item {n} has the price '{item['price']}'; use a number such as 120.00.",
                                          text(raw)[:200])])
            if "quantity" in item:
                quantity = item["quantity"]
                if isinstance(quantity, bool) or not isinstance(quantity, int | str) or not str(quantity).isdigit() \
                        or int(quantity) < 1:
                    raise BadRow([Problem("items", "invalid_items",
                                          f"Item {n} has the quantity '{quantity}'; use a whole number from 1.",
                                          text(raw)[:200])])
        return items

    # An import never moves an order back (a file exported last month must not
    # turn today's delivered order into a placed one).
    STATUS_RANK = {OrderStatus.PLACED: 0, OrderStatus.PAID: 1, OrderStatus.SHIPPED: 2, OrderStatus.DELIVERED: 3,
                   OrderStatus.CANCELLED: 4, OrderStatus.REFUNDED: 5}

    def _moves_forward(self, current, status):
        return self.STATUS_RANK[status] > self.STATUS_RANK[current]

    def classify(self, cleaned, context):
        existing = context.get("orders", {}).get(cleaned["order_id"])
        if existing is None:
            return NEW
        return UPDATE if self._moves_forward(existing.status, cleaned["status"]) else UNCHANGED

    def apply_row(self, cleaned, context, *, row_number=None):
        order_id = cleaned["order_id"]
        existing = Order.objects.filter(external_id=order_id).first()
        if existing is None:
            subscriber, _ = services.resolve_subscriber(external_id=cleaned["external_id"])
            order = services.place_order(
                subscriber_id=subscriber.pk, order_id=order_id, items=cleaned["items"], value=cleaned["value"],
                currency=cleaned["currency"], at=cleaned["placed_at"],
            )
            current = OrderStatus.PLACED
        else:
            order, current = existing, existing.status
        status = cleaned["status"]
        if self._moves_forward(current, status):
            if status == OrderStatus.DELIVERED and order.shipped_at is None and "shipped_at" in cleaned["times"]:
                services.update_order_status(order_id=order_id, status=OrderStatus.SHIPPED,
                                             at=cleaned["times"]["shipped_at"])
            at = {OrderStatus.SHIPPED: cleaned["times"].get("shipped_at"),
                  OrderStatus.DELIVERED: cleaned["times"].get("delivered_at")}.get(status)
            order = services.update_order_status(order_id=order_id, status=status, at=at or cleaned["placed_at"])
        context.setdefault("orders", {})[order_id] = Order.objects.select_related("subscriber").get(pk=order.pk)
        return order


RESOURCES = {cls.key: cls for cls in (SubscriberResource, ConsentResource, OrderResource)}


def get_resource_class(key):
    try:
        return RESOURCES[key]
    except KeyError:
        raise ImportFileError(f"'{key}' is not something that can be imported; use one of {', '.join(RESOURCES)}.")


# --- Reading files --------------------------------------------------------------

def guess_format(file_name):
    name = (file_name or "").lower()
    if name.endswith(".xlsx"):
        return "xlsx"
    if name.endswith((".csv", ".txt")):
        return "csv"
    return ""


class ImportFile:
    """Rows of a CSV or XLSX file, read as a stream (never the whole file in memory).

    `rows()` yields (row_number, {normalized header: value}); row 1 is the
    first row under the header; blank rows are skipped but keep their number.
    """

    def __init__(self, file, file_format):
        if file_format not in FILE_FORMATS:
            raise ImportFileError(f"'{file_format}' is not a supported format; use CSV or XLSX.")
        self.file = file
        self.file_format = file_format

    def _raw_rows(self):
        # Django's File wrappers (FieldFile, UploadedFile) hide the real stream
        # that csv / openpyxl want.
        raw = self.file
        while isinstance(raw, DjangoFile):
            raw = raw.file
        self.raw = raw
        raw.seek(0)
        if self.file_format == "csv":
            yield from self._csv_rows()
        else:
            yield from self._xlsx_rows()

    def _csv_rows(self):
        stream = io.TextIOWrapper(self.raw, encoding="utf-8-sig", newline="")
        try:
            # Excel in many locales saves "CSV" with semicolons: the header row tells.
            header = stream.readline()
            stream.seek(0)
            delimiter = max((",", ";", "\t"), key=header.count)
            yield from csv.reader(stream, delimiter=delimiter if header.count(delimiter) else ",")
        except UnicodeDecodeError:
            raise ImportFileError(
                "The file is not UTF-8 text. In Excel choose 'Save as… CSV UTF-8 (comma delimited)', "
                "or upload the .xlsx workbook itself.")
        except csv.Error as error:
            raise ImportFileError(f"The CSV file can't be read: {error}.")
        finally:
            stream.detach()

    def _xlsx_rows(self):
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(self.raw, read_only=True, data_only=True)
        except Exception:
            raise ImportFileError("The file is not an XLSX workbook (Excel 2007 or later). Check the format chosen.")
        try:
            sheet = workbook.worksheets[0]
            sheet.reset_dimensions()  # some writers store wrong dimensions; read every row
            for values in sheet.iter_rows(values_only=True):
                yield list(values)
        finally:
            workbook.close()

    def headers(self):
        for values in self._raw_rows():
            return [normalize_header(v) for v in values]
        raise ImportFileError("The file is empty; the first row must name the columns.")

    def rows(self):
        headers = None
        number = 0
        for values in self._raw_rows():
            if headers is None:
                headers = [normalize_header(v) for v in values]
                continue
            number += 1
            row = {h: values[i] if i < len(values) else None for i, h in enumerate(headers) if h}
            if not is_blank_row(row):
                yield number, row

    def count(self):
        return sum(1 for _ in self.rows())


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- The import job -------------------------------------------------------------

class _StopImport(Exception):
    def __init__(self, row, problems):
        super().__init__(row)
        self.row = row
        self.problems = problems


def run_import_job(*, job_id, skip_bad_rows=None, chunk_size=None):
    """Check, then (unless it is a dry run) import the file of an ImportJob.

    Pass 1 checks every row and records each problem with its row number. A dry
    run stops there. Otherwise, if any row is bad and `skip_bad_rows` is off,
    nothing is imported and the job fails with the list; with `skip_bad_rows`
    (the job's own choice unless given here) pass 2 imports the valid rows and the bad ones stay listed in the job.
    Rows are written in chunks of `chunk_size`, one transaction each, and
    `processed_rows` follows along for the progress page. Returns the status.
    """
    chunk_size = chunk_size or CHUNK_SIZE
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJobStatus.PENDING).update(
        status=ImportJobStatus.VALIDATING, started_at=timezone.now(), processed_rows=0)
    if not claimed:  # already run, or run by another worker (a redelivered task)
        return ImportJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
    job = ImportJob.objects.get(pk=job_id)
    if skip_bad_rows is None:
        skip_bad_rows = job.skip_bad_rows
    try:
        with job.file.open("rb") as handle:
            return _run(job, handle, skip_bad_rows=skip_bad_rows, chunk_size=chunk_size)
    except ImportFileError as error:
        _finish(job, ImportJobStatus.FAILED, f"Nothing was imported: {error}")
    except Exception as error:
        log.exception("import job %s failed", job_id)
        job.refresh_from_db(fields=["created_rows", "updated_rows", "processed_rows", "dry_run"])
        done = "" if job.dry_run else (
            f" {job.created_rows} rows were created and {job.updated_rows} updated before it stopped; "
            "importing the same file again is safe (rows are matched by their ids).")
        _finish(job, ImportJobStatus.FAILED, f"The import stopped on an unexpected error ({error!r}).{done}")
    return ImportJobStatus.FAILED


def _finish(job, status, message, **counts):
    ImportJob.objects.filter(pk=job.pk).update(status=status, message=message, finished_at=timezone.now(), **counts)


def _run(job, handle, *, skip_bad_rows, chunk_size):
    resource = get_resource_class(job.resource)(job=job)
    source = ImportFile(handle, job.file_format)
    ignored = resource.check_headers(source.headers())
    total = source.count()
    ImportJob.objects.filter(pk=job.pk).update(total_rows=total)
    ignored_note = f" Ignored columns: {', '.join(ignored)}." if ignored else ""

    # Pass 1: check every row.
    problems, bad_rows, would = [], set(), {NEW: 0, UPDATE: 0, UNCHANGED: 0}
    processed = 0
    for chunk in _chunks(source.rows(), chunk_size):
        context = resource.prefetch([row for _, row in chunk])
        for number, row in chunk:
            try:
                would[resource.classify(resource.clean_row(row, context), context)] += 1
            except BadRow as bad:
                bad_rows.add(number)
                problems.extend(p.as_dict(number) for p in bad.problems)
        processed += len(chunk)
        ImportJob.objects.filter(pk=job.pk).update(
            processed_rows=processed, error_rows=len(bad_rows), errors=problems[:MAX_STORED_PROBLEMS])
    valid = processed - len(bad_rows)
    more = (f" Only the first {MAX_STORED_PROBLEMS} problems are listed."
            if len(problems) > MAX_STORED_PROBLEMS else "")

    if job.dry_run:
        summary = (f"Checked {processed} rows: {len(bad_rows)} bad, {valid} valid "
                   f"({would[NEW]} would be created, {would[UPDATE]} updated, {would[UNCHANGED]} unchanged). "
                   "Nothing was written.")
        _finish(job, ImportJobStatus.VALIDATED, summary + more + ignored_note,
                created_rows=would[NEW], updated_rows=would[UPDATE])
        return ImportJobStatus.VALIDATED
    if bad_rows and not skip_bad_rows:
        _finish(job, ImportJobStatus.FAILED, (
            f"Nothing was imported: {len(bad_rows)} of {processed} rows are bad (listed below). Fix them and upload "
            "the file again, or import the valid rows and skip the bad ones.") + more + ignored_note)
        return ImportJobStatus.FAILED

    # Pass 2: import the valid rows, a chunk per transaction.
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJobStatus.RUNNING, processed_rows=0)
    done = {NEW: 0, UPDATE: 0, UNCHANGED: 0}
    processed = 0
    try:
        for chunk in _chunks(source.rows(), chunk_size):
            counts = dict(done)
            with transaction.atomic():
                context = resource.prefetch([row for number, row in chunk if number not in bad_rows])
                for number, row in chunk:
                    if number in bad_rows:
                        continue
                    try:
                        kind, _ = resource.process_row(row, context, row_number=number)
                    except BadRow as bad:
                        # The database changed since pass 1 (or rows of this file depend on each other).
                        if not skip_bad_rows:
                            raise _StopImport(number, bad.problems)
                        bad_rows.add(number)
                        problems.extend(p.as_dict(number) for p in bad.problems)
                        continue
                    counts[kind] += 1
            done = counts
            processed += len(chunk)
            ImportJob.objects.filter(pk=job.pk).update(
                processed_rows=processed, created_rows=done[NEW], updated_rows=done[UPDATE],
                error_rows=len(bad_rows), errors=sorted(problems, key=lambda p: p["row"])[:MAX_STORED_PROBLEMS])
    except _StopImport as stop:
        problems.extend(p.as_dict(stop.row) for p in stop.problems)
        reasons = "; ".join(p.message for p in stop.problems)
        _finish(job, ImportJobStatus.FAILED, (
            f"The import stopped at row {stop.row}: {reasons} The rows before row {chunk[0][0]} were imported "
            f"({done[NEW]} created, {done[UPDATE]} updated); nothing from row {chunk[0][0]} on. Importing the same "
            "file again is safe: rows are matched by their ids."),
            processed_rows=processed, created_rows=done[NEW], updated_rows=done[UPDATE], error_rows=len(bad_rows) + 1,
            errors=sorted(problems, key=lambda p: p["row"])[:MAX_STORED_PROBLEMS])
        return ImportJobStatus.FAILED
    skipped = f" {len(bad_rows)} bad rows were skipped (listed below)." if bad_rows else ""
    _finish(job, ImportJobStatus.DONE, (
        f"Imported {processed - len(bad_rows)} rows: {done[NEW]} created, {done[UPDATE]} updated, "
        f"{done[UNCHANGED]} unchanged.") + skipped + more + ignored_note,
        processed_rows=processed, created_rows=done[NEW], updated_rows=done[UPDATE], error_rows=len(bad_rows))
    return ImportJobStatus.DONE


def problems_as_csv(job):
    """The bad rows of a job as a CSV the operator can open next to the file."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "column", "value", "problem", "code"])
    for problem in job.errors:
        writer.writerow([problem.get("row"), problem.get("field"), escape_formula(problem.get("value")),
                         escape_formula(problem.get("message")), problem.get("code")])
    return out.getvalue()
