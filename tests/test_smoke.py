"""The commands behind `make run`: the admin user, and web + workers + beat under one supervisor."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def ensure_admin():
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return tmp_path


@pytest.mark.django_db
def test_ensure_admin_creates_the_admin_once_prints_its_password_and_shows_it_again(data_dir, monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)

    first = ensure_admin()
    password = (data_dir / "admin-password.txt").read_text().strip()
    again = ensure_admin()

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(password)
    assert password in first and password in again
    assert get_user_model().objects.count() == 1
    assert (data_dir / "admin-password.txt").stat().st_mode & 0o077 == 0


@pytest.mark.django_db
def test_ensure_admin_takes_the_password_from_the_environment_and_keeps_it_out_of_files(data_dir, monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-chosen-password")

    out = ensure_admin()

    assert get_user_model().objects.get(username="admin").check_password("a-long-chosen-password")
    assert "a-long-chosen-password" not in out
    assert not (data_dir / "admin-password.txt").exists()


@pytest.mark.django_db
def test_ensure_admin_does_not_show_a_saved_password_that_no_longer_works(data_dir, monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    ensure_admin()
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("changed-by-the-operator")
    admin.save()

    out = ensure_admin()

    assert (data_dir / "admin-password.txt").read_text().strip() not in out
    assert "changepassword" in out


# --- run_tanbih, as a real process tree on the default (SQLite, embedded broker) path ---

def _default_env(data_dir):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    env["TANBIH_DATA_DIR"] = str(data_dir)
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _answers(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def migrated_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tanbih-data")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                   env=_default_env(data_dir), check=True, timeout=300)
    return data_dir


@pytest.fixture
def running(migrated_dir):
    port = _free_port()
    log = open(migrated_dir / f"run-{port}.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_tanbih", "--port", str(port), "--web-workers", "1",
         "--concurrency", "1"],
        cwd=ROOT, env=_default_env(migrated_dir), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        came_up = _wait(lambda: process.poll() is None and len(_children(process.pid)) == 4
                        and _answers(port, "/admin/login/"), 90)
        assert came_up, (migrated_dir / f"run-{port}.log").read_text()[-3000:]
        yield process, port, _children(process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_run_tanbih_serves_http_and_stops_web_worker_and_beat_on_sigterm(running):
    process, port, children = running
    assert _answers(port, "/api/schema/")

    process.send_signal(signal.SIGTERM)

    assert process.wait(60) == 0
    assert _wait(lambda: not any(_alive(pid) for pid in children), 30)


def test_run_tanbih_runs_a_worker_of_its_own_on_the_events_queue(running):
    _process, _port, children = running
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
    queues = [command[command.index(b"--queues") + 1].decode().split(",")
              for command in commands if b"--queues" in command]

    assert sorted(map(tuple, queues)) == [("default", "ingest", "send", "bulk", "schedule"), ("events",)]


def test_run_tanbih_stops_everything_and_fails_when_one_of_its_processes_dies(running):
    process, port, children = running
    beat = next(pid for pid in children if b"beat" in Path(f"/proc/{pid}/cmdline").read_bytes())

    os.kill(beat, signal.SIGKILL)

    assert process.wait(60) != 0
    assert _wait(lambda: not any(_alive(pid) for pid in children), 30)
    assert not _answers(port, "/admin/login/")
