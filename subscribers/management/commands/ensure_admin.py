"""Create the first admin user, once, and say how to log in.

The password comes from ADMIN_PASSWORD, or is generated, printed and kept in
DATA_DIR/admin-password.txt (readable by its owner only) so that `make run`
can show it again on the next start.
"""
import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

USERNAME = "admin"


def password_file():
    return settings.DATA_DIR / "admin-password.txt"


def saved_password():
    path = password_file()
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def save_password(password):
    path = password_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")


class Command(BaseCommand):
    help = "Create the admin superuser if there is none (password from ADMIN_PASSWORD or generated and printed)."

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            existing = User.objects.filter(is_superuser=True).order_by("pk").first()
            if existing is None:
                password = os.environ.get("ADMIN_PASSWORD") or ""
                generated = not password
                if generated:
                    password = secrets.token_urlsafe(12)
                User.objects.create_superuser(
                    username=USERNAME, email=os.environ.get("ADMIN_EMAIL", "admin@example.com"), password=password,
                )
        if existing is None:
            if generated:
                save_password(password)
                self.stdout.write(self.style.SUCCESS(
                    f"Created the admin user '{USERNAME}' with password: {password}\n"
                    f"(kept in {password_file()} so it can be shown again)"
                ))
            else:
                self.stdout.write(self.style.SUCCESS(
                    f"Created the admin user '{USERNAME}' with the password from ADMIN_PASSWORD."
                ))
            return

        password = saved_password()
        if existing.username == USERNAME and password and existing.check_password(password):
            self.stdout.write(f"Admin user '{USERNAME}', password: {password}")
        else:
            self.stdout.write(
                f"An admin user exists ('{existing.username}'); "
                f"change its password with: manage.py changepassword {existing.username}"
            )
