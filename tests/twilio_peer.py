"""A local server that speaks Twilio's Messages API, for the real twilio client to talk to.

Twilio has no sandbox reachable from here. This server answers
`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` the way Twilio does:
HTTP Basic auth with the account SID and Auth Token, form-encoded fields in,
a Message resource (201) or Twilio's error document out. It keeps every form it
received, exactly as sent, and answers what a test scripts next: Twilio's
error answers (21610, 21211, 429 with Retry-After, 500) or a hang longer than
the client's timeout.

`twilio_signature` signs a webhook the way Twilio does, for status callbacks
and inbound messages.
"""
import base64
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "peer-auth-token-" + "f" * 16
SITE_URL = "https://tanbih.example"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

ERRORS = {
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21211: (400, "The 'To' number +1555 is not a valid phone number."),
    21614: (400, "'To' number is not a valid mobile number"),
    63016: (400, "Failed to send freeform message because you are outside the allowed window."),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
}


@dataclass
class ReceivedRequest:
    path: str
    form: dict  # field -> list of values, as received
    auth: tuple

    def field(self, name):
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class Answer:
    status: int = 201
    error_code: int = 0
    headers: dict = field(default_factory=dict)
    hang_seconds: float = 0.0


class TwilioPeer:
    def __init__(self):
        self.requests = []
        self._answers = []
        self._lock = threading.Lock()
        self._sids = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # --- scripting -------------------------------------------------------------------
    def reset(self):
        with self._lock:
            self.requests.clear()
            self._answers.clear()

    def fail_next(self, error_code, *, headers=None):
        """Answer the next create with Twilio's error document for `error_code`."""
        status, _text = ERRORS[error_code]
        with self._lock:
            self._answers.append(Answer(status=status, error_code=error_code, headers=headers or {}))

    def hang_next(self, seconds):
        """Read the next request, then answer only after `seconds` (longer than the client waits)."""
        with self._lock:
            self._answers.append(Answer(hang_seconds=seconds))

    @property
    def last(self):
        return self.requests[-1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # --- the server -------------------------------------------------------------------
    def _next_answer(self):
        with self._lock:
            return self._answers.pop(0) if self._answers else Answer()

    def _message_resource(self, form):
        one = {key: values[0] for key, values in form.items()}
        sid = "SM" + secrets.token_hex(16)
        return {
            "sid": sid, "account_sid": ACCOUNT_SID, "api_version": "2010-04-01",
            "to": one.get("To"), "from": one.get("From"),
            "messaging_service_sid": one.get("MessagingServiceSid"),
            "body": one.get("Body", ""), "status": "accepted" if "MessagingServiceSid" in one else "queued",
            "num_segments": "1", "num_media": "0", "direction": "outbound-api",
            "error_code": None, "error_message": None, "price": None, "price_unit": "USD",
            "date_created": "Mon, 23 Nov 2026 12:00:00 +0000", "date_sent": None, "date_updated": None,
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json", "subresource_uris": {},
        }

    def _handler(peer):  # noqa: N805 - the handler class closes over the peer
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send_json(self, status, document, headers=None):
                body = json.dumps(document).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout tests)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                form = parse_qs(raw, keep_blank_values=True)
                auth = self.headers.get("Authorization", "")
                user, _, password = (base64.b64decode(auth[6:]).decode().partition(":")
                                     if auth.startswith("Basic ") else ("", "", ""))
                peer.requests.append(ReceivedRequest(path=self.path, form=form, auth=(user, password)))
                if self.path != MESSAGES_PATH:
                    return self._send_json(404, {"code": 20404, "message": "The requested resource was not found",
                                                 "more_info": "https://www.twilio.com/docs/errors/20404",
                                                 "status": 404})
                if (user, password) != (ACCOUNT_SID, AUTH_TOKEN):
                    return self._send_json(401, {"code": 20003, "message": "Authenticate",
                                                 "more_info": "https://www.twilio.com/docs/errors/20003",
                                                 "status": 401})
                answer = peer._next_answer()
                if answer.hang_seconds:
                    time.sleep(answer.hang_seconds)
                if answer.error_code:
                    status, text = ERRORS[answer.error_code]
                    return self._send_json(status, {
                        "code": answer.error_code, "message": text, "status": status,
                        "more_info": f"https://www.twilio.com/docs/errors/{answer.error_code}",
                    }, answer.headers)
                return self._send_json(201, peer._message_resource(form))

        return Handler


def twilio_signature(url, params, token=AUTH_TOKEN):
    """X-Twilio-Signature as Twilio computes it for a POST of `params` to `url`."""
    return RequestValidator(token).compute_signature(url, params)


@pytest.fixture(scope="session")
def _twilio_server():
    peer = TwilioPeer()
    yield peer
    peer.close()


@pytest.fixture
def twilio_peer(_twilio_server, settings):
    """The local Twilio, with our settings pointed at it (account, token, API base URL, SITE_URL)."""
    from delivery.channels import reset_backends

    _twilio_server.reset()
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_API_BASE_URL = _twilio_server.base_url
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_WHATSAPP_FROM = "+14155238886"
    settings.SITE_URL = SITE_URL
    settings.DELIVERY_BACKENDS = {**settings.DELIVERY_BACKENDS,
                                  "sms": "delivery.channels.twilio_sms.TwilioSmsBackend",
                                  "whatsapp": "delivery.channels.twilio_whatsapp.TwilioWhatsAppBackend"}
    reset_backends()
    yield _twilio_server
    reset_backends()
