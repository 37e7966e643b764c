from django.urls import include, path
from rest_framework.routers import SimpleRouter

from .baseline import BaselineEventViewSet

router = SimpleRouter(trailing_slash=False)
router.register("bench/baseline/events", BaselineEventViewSet, basename="baseline-event")

urlpatterns = [
    path("", include(router.urls)),
    path("", include("config.urls")),
]
