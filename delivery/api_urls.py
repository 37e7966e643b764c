from django.urls import path

from . import api

urlpatterns = [
    path("notification-reports", api.NotificationReportView.as_view(), name="notification-reports"),
]
