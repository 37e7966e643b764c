"""Every API error is JSON: {"errors": [{"field", "code", "message"}]}.

`field` names the input that is wrong (dotted for nested input, `events[3].name`
inside a batch) or is null when the request as a whole is refused.
"""
import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the data."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "payload_too_large"


def field_error(exc_class, field, message, code=None):
    """An APIException of `exc_class` whose error names `field`."""
    detail = exceptions.ErrorDetail(message, code or exc_class.default_code)
    return exc_class({field: [detail]} if field else detail)


def _flatten(detail, field=None):
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if isinstance(key, int):
                key = f"[{key}]"  # DRF reports a list's items by index: segments[0], variants[1].template
            name = None if key in ("non_field_errors", "detail") else key
            if field and name:
                path = f"{field}{name}" if name.startswith("[") else f"{field}.{name}"
            else:
                path = name or field
            out.extend(_flatten(value, path))
        return out
    if isinstance(detail, list):
        out = []
        for index, value in enumerate(detail):
            if isinstance(value, dict) and field is not None:
                out.extend(_flatten(value, f"{field}[{index}]"))
            else:
                out.extend(_flatten(value, field))
        return out
    return [{"field": field, "code": getattr(detail, "code", None) or "invalid", "message": str(detail)}]


def flatten_errors(detail):
    """DRF error detail (dict/list/ErrorDetail) -> the list of {field, code, message}."""
    return _flatten(detail)


def handle_exception(exc, context):
    if isinstance(exc, DjangoValidationError):
        # A service refused the input (models' and services' own rules).
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, IntegrityError):
        # Two requests raced for the same unique row; the loser may retry.
        log.info("API conflict: %s", exc)
        exc = Conflict("Another request changed the same data at the same time; retry the request.")
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        exc = exceptions.UnsupportedMediaType(
            exc.detail.split('"')[1] if '"' in exc.detail else "",
            detail=f"{exc.detail} Send JSON with 'Content-Type: application/json'.")
    elif isinstance(exc, exceptions.ParseError):
        exc = exceptions.ParseError(f"{exc.detail} The body must be JSON.")
    response = exception_handler(exc, context)
    if response is None:
        log.exception("Unhandled API error", exc_info=exc)
        return Response(
            {"errors": [{"field": None, "code": "server_error",
                         "message": "Something went wrong on our side; the request can be retried."}]},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    response.data = {"errors": _flatten(response.data)}
    return response


def page_not_found(request, exception=None):
    """config.urls.handler404: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"errors": [{"field": None, "code": "not_found",
                                         "message": f"No API endpoint at {request.path}; see /api/docs/."}]},
                            status=404)
    return defaults.page_not_found(request, exception)
