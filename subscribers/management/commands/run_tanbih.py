"""Run Tanbih in one command: the web server, two Celery workers and celery-beat.

The three run as child processes, each in its own process group, with their
output prefixed by their name. Ctrl-C or SIGTERM stops all of them; when any of
them dies the others are stopped too and the command exits, so a supervisor
(systemd, a container runtime, CI) sees the failure instead of a half-running
product.
"""
import ctypes
import os
import signal
import socket
import sys
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

QUEUES = ("default", "ingest", "send", "bulk", "schedule")
# The reactions to a shopper's event (CELERY_TASK_ROUTES) get a worker process of their own: the main worker's
# processes can spend minutes on a backlog of journey ticks or sends, and an event must not queue behind them.
EVENT_QUEUES = ("events",)
EVENT_CONCURRENCY = 1
STOP_GRACE_SECONDS = 20
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child before exec: its own process group, and SIGTERM if the supervisor dies.

    Without the death signal a supervisor killed with SIGKILL would leave a web
    server and a worker running that nobody stops.
    """
    os.setpgid(0, 0)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def prepare_data_folders():
    """The SQLite file, the file cache and the embedded broker live under DATA_DIR."""
    folders = [settings.DATA_DIR]
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            if options.get(key):
                folders.append(options[key])
    for folder in folders:
        os.makedirs(folder, exist_ok=True)


def web_command(host, port, workers):
    manage = [sys.executable, os.path.join(settings.BASE_DIR, "manage.py")]
    if settings.DEBUG:
        return manage + ["runserver", f"{host}:{port}"]
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [
        sys.executable, "-m", "gunicorn", "config.wsgi:application",
        "--bind", bind, "--workers", str(workers), "--timeout", "60",
        "--access-logfile", "-", "--error-logfile", "-", "--log-level", "info",
        "--forwarded-allow-ips", "127.0.0.1,::1",
        # One control socket per user by default: two instances would fight over it.
        "--no-control-socket",
    ]


def worker_command(concurrency, queues=QUEUES, name="tanbih"):
    return [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--queues", ",".join(queues), "--concurrency", str(concurrency),
        "--hostname", f"{name}@%h", "--loglevel", "INFO",
        # One worker on one machine: nothing to synchronise with at start.
        "--without-mingle", "--without-gossip",
    ]


def beat_command():
    return [
        sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
        "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
        # The schedule lives in the database; a pidfile in the working
        # directory would only be left behind by a crash and block the next start.
        "--pidfile=",
    ]


def shown_base_url(host, port):
    shown_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    return f"http://{shown_host}:{port}"


def allow_demo_storefront(base_url):
    """The demo storefront's key must work from wherever this run serves it.

    Returns True when a demo store is loaded.
    """
    from django.db import DatabaseError

    from subscribers.demo_keys import demo_publishable_key, ensure_demo_publishable_key

    try:
        if demo_publishable_key() is None:
            return False
        ensure_demo_publishable_key(settings.SITE_URL, base_url)
    except DatabaseError:
        return False  # not migrated yet: the web server will say so
    return True


def port_answers(host, port):
    try:
        with socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Child:
    def __init__(self, name, argv, stdout):
        import subprocess

        self.name = name
        self.argv = argv
        self.process = subprocess.Popen(
            argv, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._stdout = stdout
        self._thread = None

    def start_relay(self, lock):
        def relay():
            prefix = f"[{self.name}] ".encode()
            for line in iter(self.process.stdout.readline, b""):
                with lock:
                    self._stdout.buffer.write(prefix + line)
                    self._stdout.buffer.flush()

        self._thread = threading.Thread(target=relay, name=f"relay-{self.name}", daemon=True)
        self._thread.start()

    @property
    def pid(self):
        return self.process.pid

    def poll(self):
        return self.process.poll()

    def terminate(self):
        if self.process.poll() is not None:
            return
        try:
            if self.name == "web" and settings.DEBUG:
                # runserver's autoreloader runs the server in a grandchild.
                os.killpg(self.pid, signal.SIGTERM)
            else:
                # gunicorn and celery stop their own workers gracefully.
                os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def join_relay(self, timeout=2):
        if self._thread:
            self._thread.join(timeout)


class Command(BaseCommand):
    help = "Start the web server, a Celery worker (all queues but events), one for events and celery-beat together."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")

    def handle(self, *args, host, port, web_workers, concurrency, **options):
        prepare_data_folders()
        if port_answers(host, port):
            raise CommandError(f"Something already listens on {host}:{port}; choose another --port.")
        self.demo_store = allow_demo_storefront(shown_base_url(host, port))

        stop_requested = {"signal": None}

        def request_stop(signum, frame):
            stop_requested["signal"] = signum

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        children = [
            Child("web", web_command(host, port, web_workers), sys.stdout),
            Child("worker", worker_command(concurrency), sys.stdout),
            Child("events", worker_command(EVENT_CONCURRENCY, EVENT_QUEUES, "events"), sys.stdout),
            Child("beat", beat_command(), sys.stdout),
        ]
        lock = threading.Lock()
        # Relay threads start only after every fork: forking beside running
        # threads is unsafe.
        for child in children:
            child.start_relay(lock)

        exit_code = 0
        announced = False
        started = time.monotonic()
        try:
            while stop_requested["signal"] is None:
                dead = [child for child in children if child.poll() is not None]
                if dead:
                    child = dead[0]
                    code = child.poll()
                    with lock:
                        self.stderr.write(f"The {child.name} process exited with code {code}; stopping the others.")
                    exit_code = code or 1
                    break
                if not announced and port_answers(host, port):
                    announced = True
                    with lock:
                        self._announce(host, port, time.monotonic() - started)
                time.sleep(0.2)
        finally:
            self._stop(children, lock)
        if stop_requested["signal"] is not None:
            with lock:
                self.stdout.write("Stopped.")
        if exit_code:
            sys.exit(exit_code)

    def _stop(self, children, lock):
        for child in children:
            child.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(child.poll() is None for child in children):
            time.sleep(0.2)
        for child in children:
            if child.poll() is None:
                with lock:
                    self.stderr.write(f"The {child.name} process did not stop in {STOP_GRACE_SECONDS}s; killing it.")
            # Also reaps whatever the child left in its group (pool processes).
            child.kill()
            child.process.wait()
            child.join_relay()

    def _announce(self, host, port, took):
        from .ensure_admin import USERNAME, saved_password

        base = shown_base_url(host, port)
        password = saved_password()
        login = (f"user {USERNAME}, password {password}" if password
                 else "the admin user's password (ADMIN_PASSWORD, or `manage.py changepassword admin`)")
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        broker = "embedded (filesystem)" if settings.CELERY_BROKER_URL.startswith("filesystem://") else "Redis"
        self.stdout.write(self.style.SUCCESS(f"\nTanbih is running at {base}/  (up in {took:.1f}s)"))
        self.stdout.write(f"  Admin:    {base}/admin/  ({login})")
        self.stdout.write(f"  API docs: {base}/api/docs/")
        self.stdout.write(f"  Dashboard (the marketer's pages): {base}/app/")
        self.stdout.write(f"  Sandbox inbox (what would have been sent): {base}/sandbox/inbox/")
        if self.demo_store:
            self.stdout.write(f"  Demo storefront (the JS SDK at work): {base}/demo/store/  ·  {base}/demo/store/ar/")
        self.stdout.write(f"  Database: {database}; broker: {broker}; worker queues: {', '.join(QUEUES)}; "
                          f"events worker: {', '.join(EVENT_QUEUES)}")
        self.stdout.write("  Press Ctrl-C to stop the web server, the workers and beat.\n")
