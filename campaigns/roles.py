"""The marketer UI's roles as Django groups, kept in step after every migrate.

- **Marketers** build and send: segments, templates and campaigns (add, change, view),
  and read shoppers and the outbox.
- **Viewers** read all of that and change nothing.
- **Admins** are superusers (`manage.py ensure_admin`, or the admin's Users page).

A person needs "staff status" to log in (the login page is the admin's) and one of
these groups; the admin then shows them only what their group may see.
"""
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

MARKETERS = "Marketers"
VIEWERS = "Viewers"

# (app label, model) -> the actions marketers get; viewers get "view" on all of them.
MARKETER_PERMISSIONS = {
    ("campaigns", "campaign"): ("add", "change", "view"),
    ("campaigns", "variant"): ("add", "change", "delete", "view"),
    ("campaigns", "campaignrun"): ("view",),
    ("campaigns", "holdoutmember"): ("view",),
    ("subscribers", "segment"): ("add", "change", "delete", "view"),
    ("subscribers", "segmentmembership"): ("add", "delete", "view"),
    ("subscribers", "subscriber"): ("view",),
    ("delivery", "messagetemplate"): ("add", "change", "view"),
    ("delivery", "templatecontent"): ("add", "change", "delete", "view"),
    ("delivery", "message"): ("view",),
    ("delivery", "suppression"): ("view",),
    ("journeys", "journey"): ("add", "change", "view"),
    ("journeys", "journeyversion"): ("add", "view"),
    ("journeys", "enrolment"): ("view",),
    ("journeys", "steprun"): ("view",),
    ("analytics", "predictionrun"): ("add", "view"),  # the predictions page; "add" = train now
}


def _permissions(wanted):
    query = Q(pk__in=[])
    for (app_label, model), actions in wanted.items():
        query |= Q(content_type__app_label=app_label, codename__in=[f"{action}_{model}" for action in actions])
    return Permission.objects.filter(query)


def ensure_roles(**_kwargs):
    """Create or update the two groups (idempotent; connected to post_migrate)."""
    marketers, _created = Group.objects.get_or_create(name=MARKETERS)
    marketers.permissions.set(_permissions(MARKETER_PERMISSIONS))
    viewers, _created = Group.objects.get_or_create(name=VIEWERS)
    viewers.permissions.set(_permissions({key: ("view",) for key in MARKETER_PERMISSIONS}))
