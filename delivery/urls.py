"""Shopper-facing tracking links and the staff-only sandbox inbox."""
from django.urls import path

from . import views

app_name = "delivery"

urlpatterns = [
    path("c/<str:code>/<int:index>.<str:signature>", views.click, name="click"),
    path("sandbox/inbox/", views.sandbox_inbox, name="sandbox-inbox"),
]
