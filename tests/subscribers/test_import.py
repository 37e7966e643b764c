"""Imports of subscribers, consents and orders: every row checked like the API, nothing half-done."""
import csv
import io
import json
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from openpyxl import Workbook, load_workbook

from subscribers import imports, services
from subscribers.models import (
    Channel,
    Consent,
    ConsentChange,
    ConsentStatus,
    ImportJob,
    ImportJobStatus,
    Order,
    OrderStatus,
    Source,
    Subscriber,
)
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db


def csv_bytes(rows):
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")


def xlsx_bytes(rows):
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def make_job(resource, content, *, file_format="csv", dry_run=False, name=None):
    name = name or f"{resource}.{file_format}"
    return ImportJob.objects.create(resource=resource, file=ContentFile(content, name=name),
                                    file_format=file_format, dry_run=dry_run)


def run(job, **kwargs):
    imports.run_import_job(job_id=job.pk, **kwargs)
    job.refresh_from_db()
    return job


def problems_by_row(job):
    found = {}
    for problem in job.errors:
        found.setdefault(problem["row"], []).append((problem["field"], problem["code"]))
    return found


SUBSCRIBERS_WITH_BAD_ROWS = [
    ["external_id", "email", "phone", "country", "first_name", "locale", "timezone"],
    ["c-1", "layla@example.com", "0501234567", "SA", "ليلى", "ar-SA", "Asia/Riyadh"],       # 1: good
    ["c-2", "omar@example.com", "12345", "SA", "Omar", "ar", "Asia/Riyadh"],                # 2: bad phone
    ["c-3", "sara@example.com", "+971501234567", "", "Sara", "en", "Mars/Olympus_Mons"],    # 3: bad timezone
    ["c-4", "noor@example.com", "", "", "Noor", "zz", "Africa/Cairo"],                      # 4: unknown locale
    ["c-5", "not-an-email", "", "", "Adam", "en", "Europe/London"],                         # 5: bad email
    ["", "nameless@example.com", "", "", "Nameless", "en", "UTC"],                          # 6: no external id
    ["c-7", "john@example.com", "+1 212 555 0123", "", "John", "en-US", "America/New_York"],  # 7: good
]


def test_a_dry_run_lists_every_bad_row_with_its_reason_and_writes_nothing():
    job = run(make_job("subscribers", csv_bytes(SUBSCRIBERS_WITH_BAD_ROWS), dry_run=True))

    assert job.status == ImportJobStatus.VALIDATED
    assert problems_by_row(job) == {
        2: [("phone", "invalid_phone")],
        3: [("timezone", "invalid_timezone")],
        4: [("locale", "unknown_locale")],
        5: [("email", "invalid")],
        6: [("external_id", "required")],
    }
    messages = {p["row"]: p["message"] for p in job.errors}
    assert "E.164" in messages[2] and "12345" in messages[2]
    assert "IANA" in messages[3]
    assert "language" in messages[4]
    assert job.total_rows == 7 and job.processed_rows == 7 and job.error_rows == 5
    assert job.created_rows == 2  # would be created
    assert "Nothing was written" in job.message
    assert not Subscriber.objects.exists()


def test_an_import_with_bad_rows_is_refused_as_a_whole_by_default():
    job = run(make_job("subscribers", csv_bytes(SUBSCRIBERS_WITH_BAD_ROWS)))

    assert job.status == ImportJobStatus.FAILED
    assert "Nothing was imported" in job.message and "5 of 7 rows are bad" in job.message
    assert sorted(problems_by_row(job)) == [2, 3, 4, 5, 6]
    assert not Subscriber.objects.exists()


def test_skipping_bad_rows_imports_the_good_ones_and_records_the_skipped_ones():
    job = run(make_job("subscribers", csv_bytes(SUBSCRIBERS_WITH_BAD_ROWS)), skip_bad_rows=True)

    assert job.status == ImportJobStatus.DONE
    assert (job.created_rows, job.updated_rows, job.error_rows) == (2, 0, 5)
    assert sorted(problems_by_row(job)) == [2, 3, 4, 5, 6]
    assert "5 bad rows were skipped" in job.message
    layla = Subscriber.objects.get(external_id="c-1")
    # National number + country column -> E.164, locale normalised, as the API does.
    assert (layla.phone, layla.locale, layla.timezone, layla.first_name) == (
        "+966501234567", "ar-SA", "Asia/Riyadh", "ليلى")
    assert Subscriber.objects.get(external_id="c-7").phone == "+12125550123"
    assert set(Subscriber.objects.values_list("external_id", flat=True)) == {"c-1", "c-7"}


def test_reimporting_subscribers_updates_only_what_changed_and_leaves_empty_cells_alone():
    make_subscriber("c-1", first_name="Layla", email="old@example.com", city="Jeddah")
    rows = [["external_id", "email", "city", "tags", "attributes.tier"],
            ["c-1", "layla@example.com", "", "vip, newsletter", "gold"],
            ["c-2", "", "", "", ""]]
    job = run(make_job("subscribers", csv_bytes(rows)))

    assert (job.status, job.created_rows, job.updated_rows) == (ImportJobStatus.DONE, 1, 1)
    layla = Subscriber.objects.get(external_id="c-1")
    assert (layla.email, layla.city, layla.first_name) == ("layla@example.com", "Jeddah", "Layla")
    assert layla.tags == ["newsletter", "vip"] and layla.attributes == {"tier": "gold"}

    again = run(make_job("subscribers", csv_bytes(rows)))
    assert (again.created_rows, again.updated_rows) == (0, 0)
    assert "2 unchanged" in again.message


def test_an_imported_profile_is_not_marked_as_seen():
    run(make_job("subscribers", csv_bytes([["external_id", "first_name"], ["c-1", "Layla"]])))
    assert Subscriber.objects.get(external_id="c-1").last_seen_at is None


ORDERS = [
    ["order_id", "external_id", "value", "currency", "placed_at", "status", "items"],
    ["o-1", "c-1", "120.00", "SAR", "2026-01-05 10:00", "delivered",
     json.dumps([{"product_id": "p1", "title": "حذاء", "price": "60.00", "quantity": 2}], ensure_ascii=False)],
    ["o-2", "c-1", "80.5", "sar", "2026-02-01T09:30:00+03:00", "", ""],
    ["o-3", "c-2", "45", "", "2026-02-10", "placed", ""],
]


def test_orders_go_through_place_order_and_keep_the_commerce_stats():
    make_subscriber("c-1")
    job = run(make_job("orders", csv_bytes(ORDERS)))

    assert (job.status, job.created_rows, job.error_rows) == (ImportJobStatus.DONE, 3, 0)
    first = Order.objects.get(external_id="o-1")
    assert (first.value, first.status, first.items[0]["quantity"]) == (Decimal("120.00"), OrderStatus.DELIVERED, 2)
    assert first.placed_at.isoformat() == "2026-01-05T10:00:00+00:00"
    assert Order.objects.get(external_id="o-2").placed_at.isoformat() == "2026-02-01T06:30:00+00:00"
    assert Order.objects.get(external_id="o-2").currency == "SAR"
    layla = Subscriber.objects.get(external_id="c-1")
    assert (layla.orders_count, layla.total_spent) == (2, Decimal("200.50"))
    # An order of a customer not known yet creates their (bare) profile, as the API does.
    assert Subscriber.objects.get(external_id="c-2").orders_count == 1


def test_reimporting_the_same_orders_file_creates_no_duplicates():
    content = csv_bytes(ORDERS)
    run(make_job("orders", content))
    again = run(make_job("orders", content))

    assert (again.status, again.created_rows, again.updated_rows) == (ImportJobStatus.DONE, 0, 0)
    assert Order.objects.count() == 3
    assert Subscriber.objects.get(external_id="c-1").orders_count == 2


def test_an_order_import_never_moves_an_order_back():
    run(make_job("orders", csv_bytes(ORDERS)))
    services.update_order_status(order_id="o-3", status=OrderStatus.SHIPPED)
    rows = [ORDERS[0], ORDERS[3], ["o-2", "c-1", "80.5", "SAR", "2026-02-01 06:30", "delivered", ""]]
    job = run(make_job("orders", csv_bytes(rows)))

    assert (job.created_rows, job.updated_rows) == (0, 1)
    assert Order.objects.get(external_id="o-3").status == OrderStatus.SHIPPED
    assert Order.objects.get(external_id="o-2").status == OrderStatus.DELIVERED


def test_bad_order_rows_are_listed_with_their_reasons():
    make_subscriber("c-1")
    rows = [
        ORDERS[0],
        ["o-1", "c-1", "abc", "SAR", "2026-01-05", "placed", ""],
        ["o-2", "c-1", "-5", "SAR", "2026-01-05", "placed", ""],
        ["o-3", "", "10", "SAR", "2026-01-05", "placed", ""],
        ["o-4", "c-1", "10", "RIYAL", "05/01/2026", "lost", "not json"],
        ["", "c-1", "10", "SAR", "2026-01-05", "", ""],
    ]
    job = run(make_job("orders", csv_bytes(rows)))

    assert job.status == ImportJobStatus.FAILED
    assert problems_by_row(job) == {
        1: [("value", "invalid_amount")],
        2: [("value", "negative_amount")],
        3: [("external_id", "required")],
        4: [("currency", "invalid_currency"), ("placed_at", "invalid_datetime"), ("status", "invalid_status"),
            ("items", "invalid_json")],
        5: [("order_id", "required")],
    }
    assert not Order.objects.exists()


def test_an_xlsx_file_imports_like_a_csv():
    rows = [["external_id", "phone", "country", "birthday", "timezone"],
            [1001, 501234567, "SA", "1990-04-23", "Asia/Riyadh"],
            [None, None, None, None, None],
            ["c-2", "+201001234567", "EG", None, "Africa/Cairo"]]
    job = run(make_job("subscribers", xlsx_bytes(rows), file_format="xlsx"))

    assert (job.status, job.created_rows, job.total_rows) == (ImportJobStatus.DONE, 2, 2)
    first = Subscriber.objects.get(external_id="1001")  # a number cell keeps no ".0"
    assert (first.phone, str(first.birthday)) == ("+966501234567", "1990-04-23")
    assert Subscriber.objects.get(external_id="c-2").timezone == "Africa/Cairo"


def test_a_semicolon_csv_from_a_european_excel_is_read():
    content = "external_id;first_name;city\nc-1;Layla;Riyadh\n".encode()
    job = run(make_job("subscribers", content))
    assert job.status == ImportJobStatus.DONE
    assert Subscriber.objects.get(external_id="c-1").city == "Riyadh"


def test_a_file_that_is_not_utf8_fails_with_a_way_out():
    job = run(make_job("subscribers", "external_id,first_name\nc-1,Layla\nc-2,\xe9mile\n".encode("cp1252")))
    assert job.status == ImportJobStatus.FAILED
    assert "UTF-8" in job.message and not Subscriber.objects.exists()


def test_consents_go_through_the_service_and_keep_their_history():
    make_subscriber("c-1", phone="+966501234567", email="layla@example.com")
    make_subscriber("c-2")
    rows = [["external_id", "channel", "status", "occurred_at", "evidence"],
            ["c-1", "sms", "granted", "2026-01-01 08:00", "checkout checkbox"],
            ["c-1", "email", "yes", "", ""],
            ["c-2", "whatsapp", "granted", "", ""],
            ["c-9", "sms", "granted", "", ""],
            ["c-1", "fax", "maybe", "", ""],
            ["c-2", "push", "granted", "", ""]]
    job = run(make_job("consents", csv_bytes(rows)), skip_bad_rows=True)

    assert problems_by_row(job) == {
        3: [("channel", "phone_required")],
        4: [("external_id", "unknown_subscriber")],
        5: [("channel", "invalid_channel"), ("status", "invalid_status")],
        6: [("channel", "push_needs_browser")],
    }
    sms = ConsentChange.objects.get(subscriber__external_id="c-1", channel=Channel.SMS)
    assert (sms.status, sms.source) == (ConsentStatus.GRANTED, Source.IMPORT)
    assert sms.occurred_at.isoformat() == "2026-01-01T08:00:00+00:00"
    assert sms.evidence == {"import_row": 1, "import_job": job.pk, "file": job.file.name.rsplit("/", 1)[-1],
                            "note": "checkout checkbox"}
    assert Consent.objects.get(subscriber__external_id="c-1", channel=Channel.EMAIL).is_granted


def test_a_consent_file_cannot_undo_a_newer_stop():
    layla = make_subscriber("c-1", phone="+966501234567")
    services.revoke_consent(subscriber=layla, channel=Channel.SMS, source=Source.KEYWORD, evidence={"body": "STOP"})
    job = run(make_job("consents", csv_bytes([["external_id", "channel", "status", "occurred_at"],
                                              ["c-1", "sms", "granted", "2025-06-01 00:00"]])))

    assert problems_by_row(job) == {1: [("occurred_at", "older_than_current")]}
    assert "newer decision" in job.errors[0]["message"]
    assert not services.has_consent(layla, Channel.SMS)


def test_a_file_without_the_required_columns_fails_before_any_row():
    job = run(make_job("orders", csv_bytes([["order_id", "value"], ["o-1", "10"]])))
    assert job.status == ImportJobStatus.FAILED
    assert "'external_id', 'placed_at'" in job.message


def test_a_job_runs_once_even_if_its_task_is_delivered_twice():
    job = make_job("subscribers", csv_bytes([["external_id"], ["c-1"]]))
    run(job)
    assert imports.run_import_job(job_id=job.pk) == ImportJobStatus.DONE
    job.refresh_from_db()
    assert job.created_rows == 1


# --- Through the admin ----------------------------------------------------------


def upload(client, resource, content, name, **fields):
    data = {"resource": resource, "file": ContentFile(content, name=name), "on_bad_rows": "refuse", **fields}
    return client.post(reverse("admin:subscribers_importjob_upload"), data)


def test_the_upload_page_runs_the_task_with_progress(admin_client, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK_SIZE", 3)
    rows = [["external_id", "first_name"]] + [[f"c-{n}", f"Name {n}"] for n in range(1, 9)]
    progress_seen = []
    real_update = imports.ImportJob.objects.filter

    def spy(*args, **kwargs):
        queryset = real_update(*args, **kwargs)
        original = queryset.update

        def update(**values):
            if "processed_rows" in values:
                progress_seen.append(values["processed_rows"])
            return original(**values)
        queryset.update = update
        return queryset

    monkeypatch.setattr(imports.ImportJob.objects, "filter", spy)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, "subscribers", csv_bytes(rows), "people.csv", dry_run="")

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:subscribers_importjob_progress", args=[job.pk])
    # Checked in chunks of 3, then imported in chunks of 3.
    assert progress_seen == [0, 3, 6, 8, 0, 3, 6, 8, 8]
    assert (job.status, job.total_rows, job.processed_rows, job.created_rows) == (ImportJobStatus.DONE, 8, 8, 8)
    assert Subscriber.objects.count() == 8

    status = admin_client.get(reverse("admin:subscribers_importjob_status", args=[job.pk])).json()
    assert status["finished"] and status["percent"] == 100 and status["created_rows"] == 8
    page = admin_client.get(response["Location"])
    assert page.status_code == 200 and "Imported 8 rows" in page.content.decode()


def test_a_dry_run_upload_shows_the_bad_rows_then_imports_the_valid_ones_on_request(
        admin_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, "subscribers", csv_bytes(SUBSCRIBERS_WITH_BAD_ROWS), "crm.csv", dry_run="on")
    checked = ImportJob.objects.get()
    page = admin_client.get(response["Location"]).content.decode()
    assert checked.status == ImportJobStatus.VALIDATED and not Subscriber.objects.exists()
    assert "5 bad rows" in page and "Mars/Olympus_Mons" in page and "not a known language" in page
    assert "Import the valid rows, skip the 5 bad rows" in page

    problems = admin_client.get(reverse("admin:subscribers_importjob_problems", args=[checked.pk]))
    assert list(csv.reader(io.StringIO(problems.content.decode())))[0] == ["row", "column", "value", "problem", "code"]

    with django_capture_on_commit_callbacks(execute=True):
        started = admin_client.post(reverse("admin:subscribers_importjob_start", args=[checked.pk]),
                                    {"on_bad_rows": "skip"})
    job = ImportJob.objects.exclude(pk=checked.pk).get()
    assert started["Location"] == reverse("admin:subscribers_importjob_progress", args=[job.pk])
    assert (job.dry_run, job.status, job.created_rows, job.error_rows) == (False, ImportJobStatus.DONE, 2, 5)
    assert Subscriber.objects.count() == 2


def test_the_upload_form_refuses_a_file_without_the_needed_columns(admin_client):
    response = upload(admin_client, "orders", csv_bytes([["id", "total"], ["1", "2"]]), "orders.csv")
    assert response.status_code == 200
    assert "The file has no &#x27;order_id&#x27;" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_the_import_button_refuses_a_small_file_with_bad_rows_and_lists_them(admin_client):
    response = admin_client.post(reverse("admin:subscribers_subscriber_import"), {
        "resource": "0", "format": "0",
        "import_file": ContentFile(csv_bytes(SUBSCRIBERS_WITH_BAD_ROWS), name="crm.csv")})
    page = response.content.decode()

    assert response.status_code == 200
    assert "Some rows failed to validate" in page
    assert "E.164" in page and "IANA" in page and "not a known language" in page
    assert "process_import" not in page  # no confirm button
    assert not Subscriber.objects.exists()


def test_the_import_button_imports_a_clean_file_after_its_preview(admin_client):
    content = csv_bytes([SUBSCRIBERS_WITH_BAD_ROWS[0], SUBSCRIBERS_WITH_BAD_ROWS[1], SUBSCRIBERS_WITH_BAD_ROWS[7]])
    preview = admin_client.post(reverse("admin:subscribers_subscriber_import"), {
        "resource": "0", "format": "0", "import_file": ContentFile(content, name="crm.csv")})
    assert not Subscriber.objects.exists()  # the preview was rolled back
    confirm = preview.context["confirm_form"]
    done = admin_client.post(reverse("admin:subscribers_subscriber_process_import"), {
        name: confirm.initial[name] for name in ("import_file_name", "original_file_name", "format", "resource")})

    assert done.status_code == 302
    assert Subscriber.objects.get(external_id="c-1").phone == "+966501234567"
    assert Subscriber.objects.count() == 2


def test_the_order_import_button_accepts_an_xlsx_file(admin_client):
    make_subscriber("c-1")
    preview = admin_client.post(reverse("admin:subscribers_order_import"), {
        "resource": "0", "format": "1", "import_file": ContentFile(xlsx_bytes(ORDERS), name="orders.xlsx")})
    assert "Some rows failed" not in preview.content.decode()
    confirm = preview.context["confirm_form"]
    admin_client.post(reverse("admin:subscribers_order_process_import"), {
        name: confirm.initial[name] for name in ("import_file_name", "original_file_name", "format", "resource")})
    assert set(Order.objects.values_list("external_id", flat=True)) == {"o-1", "o-2", "o-3"}


def export(client, model, resource_class, file_format):
    fields = resource_class().get_export_order()
    data = {"resource": "0", "format": file_format,
            **{f"{resource_class.__name__.lower()}_{name}": "on" for name in fields}}
    return client.post(reverse(f"admin:subscribers_{model}_export"), data)


def test_exports_contain_what_was_imported(admin_client):
    run(make_job("subscribers", csv_bytes([
        ["external_id", "email", "phone", "country", "first_name", "locale", "timezone", "tags"],
        ["c-1", "layla@example.com", "0501234567", "SA", "ليلى", "ar-SA", "Asia/Riyadh", "vip"],
        ["c-2", "omar@example.com", "", "", "Omar", "en", "Europe/London", ""]])))
    run(make_job("consents", csv_bytes([["external_id", "channel", "status"], ["c-1", "sms", "granted"]])))
    run(make_job("orders", csv_bytes(ORDERS[:3])))

    people = list(csv.DictReader(io.StringIO(
        export(admin_client, "subscriber", imports.SubscriberResource, "0").content.decode("utf-8-sig"))))
    assert {(p["external_id"], p["phone"], p["first_name"], p["locale"], p["timezone"], p["tags"]) for p in people} == {
        ("c-1", "+966501234567", "ليلى", "ar-SA", "Asia/Riyadh", "vip"), ("c-2", "", "Omar", "en", "Europe/London", "")}
    assert {p["external_id"]: p["orders_count"] for p in people} == {"c-1": "2", "c-2": "0"}

    consents = list(csv.DictReader(io.StringIO(
        export(admin_client, "consent", imports.ConsentResource, "0").content.decode("utf-8-sig"))))
    assert [(c["external_id"], c["channel"], c["status"], c["source"]) for c in consents] == [
        ("c-1", "sms", "granted", "import")]

    book = load_workbook(io.BytesIO(export(admin_client, "order", imports.OrderResource, "1").content))
    rows = list(book.active.iter_rows(values_only=True))
    orders = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert set(orders) == {"o-1", "o-2"}
    assert orders["o-1"]["external_id"] == "c-1" and Decimal(str(orders["o-1"]["value"])) == Decimal("120")
    assert json.loads(orders["o-1"]["items"])[0]["title"] == "حذاء"


def test_an_exported_orders_file_imports_back_without_changes(admin_client):
    run(make_job("orders", csv_bytes(ORDERS)))
    exported = export(admin_client, "order", imports.OrderResource, "0").content
    again = run(make_job("orders", exported))
    assert (again.status, again.created_rows, again.updated_rows, again.error_rows) == (
        ImportJobStatus.DONE, 0, 0, 0)


def test_text_a_shopper_typed_is_not_exported_as_a_spreadsheet_formula(admin_client):
    make_subscriber("c-1", first_name='=HYPERLINK("https://evil.example","click")', phone="+966501234567")
    exported = export(admin_client, "subscriber", imports.SubscriberResource, "0").content
    row = next(csv.DictReader(io.StringIO(exported.decode("utf-8-sig"))))
    assert row["first_name"] == '\'=HYPERLINK("https://evil.example","click")'
    assert row["phone"] == "+966501234567"  # a number stays a number

    Subscriber.objects.all().delete()
    run(make_job("subscribers", exported))
    assert Subscriber.objects.get(external_id="c-1").first_name == '=HYPERLINK("https://evil.example","click")'


def test_the_import_button_names_a_missing_column_plainly(admin_client):
    response = admin_client.post(reverse("admin:subscribers_consent_import"), {
        "resource": "0", "format": "0",
        "import_file": ContentFile(csv_bytes([["customer", "channel"], ["c-1", "sms"]]), name="consents.csv")})
    page = response.content.decode()
    assert "The file has no &#x27;external_id&#x27;, &#x27;status&#x27; column" in page
    assert "Traceback" not in page
