"""The ops admin in Arabic (right-to-left) and English, and the translation catalogs behind it."""
import ast
import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.urls import reverse

from subscribers import services
from subscribers.models import Channel, Consent, ConsentStatus, ImportJob, Source
from tests.factories import make_subscriber

CATALOGS = sorted(Path(settings.BASE_DIR, "locale").glob("**/LC_MESSAGES/django.po"))


def html_tag(response):
    return re.search(r"<html[^>]*>", response.content.decode()).group(0)


def switcher_buttons(response):
    form = re.search(r'<form class="language-switcher".*?</form>', response.content.decode(), re.S)
    assert form, "no language switcher on the page"
    return re.findall(r'<button type="submit" name="language" value="(\w+)"[^>]*?( aria-current="true")?>([^<]+)</button>',
                      form.group(0))


@pytest.fixture
def shoppers():
    known = make_subscriber("c-ar-1", first_name="ليلى", phone="+966501234567")
    services.grant_consent(subscriber=known, channel=Channel.SMS, source=Source.API)
    anonymous, _created = services.resolve_subscriber(anonymous_id="browser-1")
    return known, anonymous


# --- Which language, and which direction ----------------------------------------------

@pytest.mark.django_db
def test_the_admin_index_is_arabic_and_right_to_left_when_the_browser_asks_for_arabic(admin_client):
    page = admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="ar-SA,ar;q=0.9,en;q=0.5")

    assert html_tag(page) == '<html lang="ar" dir="rtl">'
    assert "admin/css/rtl.css" in page.content.decode()
    for label in ("لوحة تشغيل تنبيه",  # site header
                  "المشتركون",  # our app and its subscribers list
                  "تقارير الإشعارات",  # delivery's notification reports
                  "المهام الدورية",  # django-celery-beat, from locale/third_party
                  "تسجيل الخروج"):  # Django's own catalog
        assert label in page.content.decode(), label
    assert "Tanbih operations" not in page.content.decode()


@pytest.mark.django_db
def test_the_admin_index_is_english_and_left_to_right_otherwise(admin_client):
    for accept in (None, "en-GB,en;q=0.8", "fr-FR,fr;q=0.9"):
        headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}
        page = admin_client.get(reverse("admin:index"), **headers)

        assert html_tag(page) == '<html lang="en" dir="ltr">', accept
        assert "admin/css/rtl.css" not in page.content.decode()
        assert "Tanbih operations" in page.content.decode()
        assert "Periodic Tasks" in page.content.decode()
        assert "المشتركون" not in page.content.decode()


@pytest.mark.django_db
def test_the_language_cookie_wins_over_the_browser_language(admin_client):
    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ar"
    assert html_tag(admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en")) == '<html lang="ar" dir="rtl">'

    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert html_tag(admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="ar")) == '<html lang="en" dir="ltr">'


# --- The subscriber list -----------------------------------------------------------------

@pytest.mark.django_db
def test_the_subscriber_list_shows_arabic_columns_filters_actions_and_values(admin_client, shoppers):
    _known, anonymous = shoppers
    page = admin_client.get(reverse("admin:subscribers_subscriber_changelist"), HTTP_ACCEPT_LANGUAGE="ar")
    text = page.content.decode()

    assert html_tag(page) == '<html lang="ar" dir="rtl">'
    for label in ("معرّف العميل في المتجر",  # column: store customer id
                  "مرحلة دورة الحياة",  # column and filter: lifecycle stage
                  "إجمالي الإنفاق",  # column: total spent
                  "مجهول (متصفح فقط)",  # filter choice
                  "سحب موافقة الرسائل النصية (SMS)",  # action built per channel
                  "محو المشتركين المحددين وكل بياناتهم (GDPR)",  # action
                  f"مجهول رقم {anonymous.pk}",  # an anonymous shopper's name
                  "جديد",  # lifecycle value
                  "استيراد كبير (في الخلفية مع متابعة التقدّم)"):  # our import button
        assert label in text, label
    for english in ("Store customer id", "Revoke SMS consent", f"anonymous #{anonymous.pk}", "Large import"):
        assert english not in text, english


@pytest.mark.django_db
def test_the_subscriber_list_stays_english_for_an_english_operator(admin_client, shoppers):
    _known, anonymous = shoppers
    text = admin_client.get(reverse("admin:subscribers_subscriber_changelist"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    for label in ("Store customer id", "Lifecycle stage", "Revoke SMS consent", "Revoke WhatsApp consent",
                  f"anonymous #{anonymous.pk}", "Large import (background, with progress)"):
        assert label in text, label
    assert "سحب موافقة" not in text


@pytest.mark.django_db
def test_an_admin_action_reports_back_in_arabic(admin_client, shoppers):
    known, _anonymous = shoppers
    page = admin_client.post(
        reverse("admin:subscribers_subscriber_changelist"),
        {"action": "revoke_sms_consent", "_selected_action": [known.pk]},
        HTTP_ACCEPT_LANGUAGE="ar", follow=True)

    assert "عدد موافقات الرسائل النصية (SMS) التي سُحبت: 1." in page.content.decode()
    assert Consent.objects.get(subscriber=known, channel=Channel.SMS).status == ConsentStatus.REVOKED


@pytest.mark.django_db
def test_a_subscriber_page_shows_arabic_sections(admin_client, shoppers):
    known, _anonymous = shoppers
    text = admin_client.get(reverse("admin:subscribers_subscriber_change", args=[known.pk]),
                            HTTP_ACCEPT_LANGUAGE="ar").content.decode()

    for label in ("الملف الشخصي", "بيانات الشراء (يحدّثها النظام)", "سجل الموافقات (أحدث 20)", "كل الأحداث",
                  "رقم الجوال (E.164)", "ممنوحة"):
        assert label in text, label


# --- Imports ------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_import_pages_speak_arabic(admin_client):
    upload = admin_client.get(reverse("admin:subscribers_importjob_upload"), HTTP_ACCEPT_LANGUAGE="ar")
    assert html_tag(upload) == '<html lang="ar" dir="rtl">'
    for label in ("استيراد ملف", "محتوى الملف", "فحص فقط (فحص تجريبي): عرض كل صف غير صالح دون حفظ أي شيء", "رفع وبدء"):
        assert label in upload.content.decode(), label

    job = ImportJob.objects.create(resource="subscribers", file=ContentFile(b"external_id\nc-1\n", name="a.csv"),
                                   file_format="csv", dry_run=True)
    progress = admin_client.get(reverse("admin:subscribers_importjob_progress", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="ar")
    for label in ("فحص تجريبي: لا يُحفظ شيء", "في الانتظار", "سيُنشأ", "صفوف غير صالحة"):
        assert label in progress.content.decode(), label

    # django-import-export's own page, translated by locale/third_party.
    small = admin_client.get(reverse("admin:subscribers_subscriber_import"), HTTP_ACCEPT_LANGUAGE="ar")
    assert "الملف المراد استيراده" in small.content.decode()
    assert "File to import" not in small.content.decode()


# --- The switcher ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_header_offers_english_and_arabic_marking_the_current_one(admin_client):
    english = switcher_buttons(admin_client.get(reverse("admin:index")))
    arabic = switcher_buttons(admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="ar"))

    assert english == [("en", ' aria-current="true"', "English"), ("ar", "", "العربيّة")]
    assert arabic == [("en", "", "English"), ("ar", ' aria-current="true"', "العربيّة")]


@pytest.mark.django_db
def test_the_login_page_offers_the_switcher_too(client):
    page = client.get(reverse("admin:login"), HTTP_ACCEPT_LANGUAGE="ar")

    assert html_tag(page) == '<html lang="ar" dir="rtl">'
    assert [code for code, _current, _name in switcher_buttons(page)] == ["en", "ar"]


@pytest.mark.django_db
def test_switching_language_keeps_the_operator_on_the_same_page_in_the_chosen_language(admin_client, shoppers):
    changelist = reverse("admin:subscribers_subscriber_changelist") + "?kind=anonymous"
    before = admin_client.get(changelist)
    action = re.search(r'<form class="language-switcher" action="([^"]+)"', before.content.decode()).group(1)
    next_url = re.search(r'<input type="hidden" name="next" value="([^"]+)"', before.content.decode()).group(1)
    assert action == reverse("set_language")

    switched = admin_client.post(action, {"language": "ar", "next": next_url.replace("&amp;", "&")})
    assert switched.status_code == 302
    assert switched["Location"] == changelist
    after = admin_client.get(switched["Location"])  # no Accept-Language: the cookie decides
    assert html_tag(after) == '<html lang="ar" dir="rtl">'
    assert "مجهول (متصفح فقط)" in after.content.decode()

    back = admin_client.post(action, {"language": "en", "next": changelist}, follow=True)
    assert html_tag(back) == '<html lang="en" dir="ltr">'
    assert "Anonymous (browser only)" in back.content.decode()


@pytest.mark.django_db
def test_switching_language_never_redirects_off_site(admin_client):
    switched = admin_client.post(reverse("set_language"), {"language": "ar", "next": "https://evil.example/admin/"})

    assert switched.status_code == 302
    assert not switched["Location"].startswith("https://evil.example")


# --- The catalogs --------------------------------------------------------------------------

def read_po(path):
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr (or msgstr[n]) and flags."""
    entries = []
    for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8").strip()):
        entry, key = {"flags": set(), "msgstr": {}}, None
        for line in block.splitlines():
            if line.startswith("#~"):
                entry["obsolete"] = True
            elif line.startswith("#,"):
                entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            elif match := re.match(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?) (".*")$', line):
                key = ("msgstr", int(match.group(2) or 0)) if match.group(1).startswith("msgstr") else match.group(1)
                value = ast.literal_eval(match.group(3))
                if isinstance(key, tuple):
                    entry["msgstr"][key[1]] = value
                else:
                    entry[key] = value
            elif line.startswith('"'):
                if isinstance(key, tuple):
                    entry["msgstr"][key[1]] += ast.literal_eval(line)
                else:
                    entry[key] += ast.literal_eval(line)
        entries.append(entry)
    return entries


def placeholders(text):
    return set(re.findall(r"%\(\w+\)[sdif]|%[sd]|\{[^{}]*\}", text))


def test_there_is_an_arabic_catalog_for_our_strings_and_one_for_third_party_screens():
    assert {path.relative_to(settings.BASE_DIR).as_posix() for path in CATALOGS} == {
        "locale/ar/LC_MESSAGES/django.po", "locale/third_party/ar/LC_MESSAGES/django.po"}


@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: p.relative_to(settings.BASE_DIR).as_posix())
def test_every_entry_is_translated_without_fuzzy_or_obsolete_entries_and_keeps_its_placeholders(po):
    entries = read_po(po)
    header = entries[0]
    assert header["msgid"] == "" and "fuzzy" not in header["flags"]
    assert "Language: ar\n" in header["msgstr"][0]
    assert "Plural-Forms: nplurals=6;" in header["msgstr"][0]

    for entry in entries[1:]:
        name = entry.get("msgid")
        assert not entry.get("obsolete"), f"obsolete entry left in {po}: {name!r}"
        assert "fuzzy" not in entry["flags"], name
        forms = entry["msgstr"]
        assert sorted(forms) == (list(range(6)) if "msgid_plural" in entry else [0]), name
        assert all(form.strip() for form in forms.values()), f"untranslated: {name!r}"
        checked = {"python-format", "python-brace-format"} & entry["flags"]
        if checked:
            wanted = placeholders(name) | placeholders(entry.get("msgid_plural", ""))
            for form in forms.values():
                # A form may drop the count where Arabic says it in words ("صف واحد"), never invent one.
                assert placeholders(form) <= wanted, f"{name!r} -> {form!r}"
            if "msgid_plural" not in entry:
                assert placeholders(forms[0]) == placeholders(name), f"{name!r} -> {forms[0]!r}"


@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: p.relative_to(settings.BASE_DIR).as_posix())
def test_the_committed_mo_is_compiled_from_the_po_as_it_is_now(po):
    """`make run` needs no gettext tools: the .mo is committed, and must say what the .po says."""
    expected = {}
    for entry in read_po(po)[1:]:
        key = entry["msgid"] if "msgctxt" not in entry else f"{entry['msgctxt']}\x04{entry['msgid']}"
        if "msgid_plural" in entry:
            expected.update({(key, n): form for n, form in entry["msgstr"].items()})
        else:
            expected[key] = entry["msgstr"][0]

    with open(po.with_suffix(".mo"), "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    catalog = {key: value for key, value in compiled._catalog.items() if key != ""}

    assert catalog == expected, "the .mo is out of date: run `manage.py compilemessages -l ar --ignore=.venv`"
    assert compiled.info()["language"] == "ar"
