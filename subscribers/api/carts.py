"""Cart restore for the store's backend: the token of a restore link -> the cart's items."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from ..models import Cart
from .errors import field_error
from .views import COMMON_ERRORS, StorefrontApiView, _error


class CartItemOutSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    title = serializers.CharField()
    url = serializers.CharField()
    image = serializers.CharField()
    price = serializers.CharField()
    quantity = serializers.IntegerField()


class RestoredCartOutSerializer(serializers.Serializer):
    cart_id = serializers.SerializerMethodField()
    external_id = serializers.CharField(source="subscriber.external_id", allow_null=True)
    status = serializers.CharField()
    items = CartItemOutSerializer(many=True)
    value = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    last_activity_at = serializers.DateTimeField()

    def get_cart_id(self, cart) -> str:
        return cart.external_id or str(cart.pk)


class CartRestoreView(StorefrontApiView):
    @extend_schema(
        operation_id="carts_restore",
        tags=["carts"],
        summary="Read the cart a restore link names",
        description="A message's cart restore link ends in a signed token. The store's restore page "
                    "(CART_RESTORE_URL/<token>) calls this with its secret key, refills the shopper's cart with "
                    "these items and sends them to checkout, without a login. Tokens expire "
                    "CART_RESTORE_MAX_AGE_DAYS after the cart's last activity.",
        responses={200: RestoredCartOutSerializer,
                   404: _error("The token is malformed, forged or expired."), **COMMON_ERRORS},
    )
    def get(self, request, token):
        try:
            cart = Cart.objects.select_related("subscriber").get(pk=Cart.from_restore_token(token).pk)
        except Cart.DoesNotExist:
            raise field_error(exceptions.NotFound, "token", "This cart link is invalid or has expired.", "not_found")
        return Response(RestoredCartOutSerializer(cart).data)
