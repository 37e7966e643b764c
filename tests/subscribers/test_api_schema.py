"""The OpenAPI 3 schema documents the storefront API and builds without warnings."""
import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "/api/v1/subscribers": {"post"},
    "/api/v1/subscribers/{external_id}": {"get", "delete"},
    "/api/v1/subscribers/{external_id}/export": {"get"},
    "/api/v1/subscribers/{external_id}/consents": {"get", "post"},
    "/api/v1/identify": {"post"},
    "/api/v1/events": {"post"},
    "/api/v1/events/batch": {"post"},
    "/api/v1/push-subscriptions": {"post"},
    "/api/v1/push-subscriptions/unsubscribe": {"post"},
}


def test_the_schema_builds_valid_and_without_warnings(tmp_path):
    GENERATOR_STATS.reset()  # count only this generation's warnings
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    for path, methods in ENDPOINTS.items():
        assert methods <= set(schema["paths"][path]), path
    schemes = schema["components"]["securitySchemes"]
    assert schemes["secretKey"]["scheme"] == "bearer"
    assert schemes["publishableKey"] == {**schemes["publishableKey"], "in": "header", "name": "X-Tanbih-Key"}


def test_the_schema_says_which_key_each_endpoint_takes_and_how_it_fails():
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    paths = schema["paths"]

    assert paths["/api/v1/events/batch"]["post"]["security"] == [{"secretKey": []}]
    assert {"publishableKey": []} in paths["/api/v1/events"]["post"]["security"]
    assert {"publishableKey": []} in paths["/api/v1/identify"]["post"]["security"]
    batch = paths["/api/v1/events/batch"]["post"]["responses"]
    assert {"200", "400", "401", "403", "413", "429"} <= set(batch)
    assert paths["/api/v1/subscribers"]["post"]["responses"]["409"]


def test_the_docs_page_is_served():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
