import pytest
from django.core.exceptions import ValidationError

from subscribers.push_endpoints import validate_push_endpoint

REFUSED = [
    "https://127.0.0.1/push/1",
    "https://localhost/push/1",
    "https://10.0.0.5/push",
    "https://192.168.1.1/push",
    "https://172.16.0.1/push",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/push",
    "https://[fe80::1]/push",
    "https://[::ffff:127.0.0.1]/push",
    "https://8.8.8.8/push",
    "http://fcm.googleapis.com/fcm/send/abc",
    "https://evil.example.com/fcm/send/abc",
    "https://fcm.googleapis.com.evil.example/fcm/send/abc",
    "https://user:pw@fcm.googleapis.com/fcm/send/abc",
    "ftp://fcm.googleapis.com/x",
    "not a url",
]


@pytest.mark.parametrize("endpoint", REFUSED)
def test_it_refuses_endpoints_that_are_not_allow_listed_push_services(endpoint):
    with pytest.raises(ValidationError):
        validate_push_endpoint(endpoint)


@pytest.mark.parametrize("endpoint", [
    "https://fcm.googleapis.com/fcm/send/abc",
    "https://updates.push.services.mozilla.com/wpush/v2/abc",
    "https://web.push.apple.com/QGx",
    "https://wns2-par02p.notify.windows.com/w/?token=abc",
])
def test_it_accepts_the_big_push_services(endpoint):
    assert validate_push_endpoint(endpoint) == endpoint


def test_a_local_push_service_is_accepted_only_when_listed_exactly(settings):
    settings.PUSH_ALLOWED_ENDPOINTS = ["http://localhost:8090"]
    assert validate_push_endpoint("http://localhost:8090/notify/abc")
    with pytest.raises(ValidationError):
        validate_push_endpoint("http://localhost:8091/notify/abc")
    with pytest.raises(ValidationError):
        validate_push_endpoint("http://127.0.0.1:8090/notify/abc")
