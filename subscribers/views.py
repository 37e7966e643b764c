from django.conf import settings
from django.core import signing
from django.http import Http404, JsonResponse
from django.shortcuts import redirect

from .models import Cart


def restore_cart(request, token):
    """Follow a cart restore link: the store gets the cart's items back without a login.

    When the store has its own restore page (CART_RESTORE_URL) links point there
    directly; this fallback answers with the cart as JSON, or redirects to
    the store's `restore_redirect` attribute when it is set on the cart's items.
    """
    try:
        cart = Cart.from_restore_token(token)
    except (signing.BadSignature, Cart.DoesNotExist):
        raise Http404("This cart link is invalid or has expired.")
    data = {
        "cart_id": cart.external_id or str(cart.pk), "items": cart.items, "value": str(cart.value),
        "currency": cart.currency, "status": cart.status,
    }
    if request.GET.get("format") != "json" and settings.CART_RESTORE_URL:
        return redirect(f"{settings.CART_RESTORE_URL.rstrip('/')}/{token}")
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})
