"""The outbound half of the SSRF guard: what delivery will send pushes through."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from subscribers.push_endpoints import GuardedPushSession, PushEndpointRefused


class Recorder(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.server.hits.append(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/redirect"):
            self.send_response(307)
            self.send_header("Location", self.server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    servers = []

    def start(redirect_to=""):
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        httpd.hits, httpd.redirect_to = [], redirect_to
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return httpd

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def origin(httpd, host="127.0.0.1"):
    return f"http://{host}:{httpd.server_address[1]}"


def test_it_sends_to_an_explicitly_allowed_local_push_service(settings, server):
    push = server()
    settings.PUSH_ALLOWED_ENDPOINTS = [origin(push)]

    response = GuardedPushSession().post(f"{origin(push)}/notify/abc", data=b"x", timeout=5)

    assert response.status_code == 201
    assert push.hits == ["/notify/abc"]


def test_it_does_not_follow_a_redirect_to_another_address(settings, server):
    internal = server()
    push = server(redirect_to=f"{origin(internal)}/admin")
    settings.PUSH_ALLOWED_ENDPOINTS = [origin(push), origin(internal)]

    response = GuardedPushSession().post(f"{origin(push)}/redirect", data=b"x", timeout=5)

    assert response.status_code == 307
    assert internal.hits == []


def test_it_refuses_at_connect_time_a_push_host_that_resolves_to_loopback(settings, server):
    internal = server()
    # Allow-listing a name is not enough: where it resolves is checked on connect.
    settings.PUSH_ALLOWED_HOSTS = ["localhost"]
    settings.PUSH_ALLOWED_ENDPOINTS = []

    with pytest.raises(PushEndpointRefused):
        GuardedPushSession().post(f"{origin(internal, 'localhost')}/notify/abc", data=b"x", timeout=5)
    assert internal.hits == []


def test_an_ip_literal_in_a_private_range_is_refused_on_connect(settings):
    settings.PUSH_ALLOWED_ENDPOINTS = []
    for url in ("http://127.0.0.1:9/x", "http://[::1]:9/x", "http://169.254.169.254/latest"):
        with pytest.raises(PushEndpointRefused):
            GuardedPushSession().post(url, data=b"x", timeout=2)
