import time


def wait_until(check, what, timeout=15.0):
    """Poll `check` (a database query, usually) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


MARKETER = ("layla", "a-long-password-1")


def log_in_as_marketer(page, next_url, permissions=None):
    """Log in through the admin's login page, landing on `next_url`: as a superuser, or as a staff member with
    only `permissions` ((app label, codename) pairs) when given."""
    from django.contrib.auth.models import Permission, User

    username, password = MARKETER
    if permissions is None:
        User.objects.create_superuser(username, "layla@example.com", password)
    else:
        user = User.objects.create_user(username, "layla@example.com", password, is_staff=True)
        for app_label, codename in permissions:
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    page.goto(f"/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")
    return page
