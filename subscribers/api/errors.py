"""Every API error is JSON: {"errors": [{"field", "code", "message"}]}."""
from rest_framework.views import exception_handler


def _flatten(detail, field=None):
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else None
            out.extend(_flatten(value, f"{field}.{name}" if field and name else (name or field)))
        return out
    if isinstance(detail, list):
        out = []
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)) and field is not None and isinstance(value, dict):
                out.extend(_flatten(value, f"{field}[{index}]"))
            else:
                out.extend(_flatten(value, field))
        return out
    return [{"field": field, "code": getattr(detail, "code", "invalid"), "message": str(detail)}]


def handle_exception(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None
    response.data = {"errors": _flatten(response.data)}
    return response
