from django.urls import path

from . import views

app_name = "subscribers"

urlpatterns = [
    path("r/cart/<str:token>", views.restore_cart, name="restore-cart"),
]
