from django.urls import path

from . import api

urlpatterns = [
    path("notification-reports", api.NotificationReportView.as_view(), name="notification-reports"),
    path("inapp", api.InAppMessagesView.as_view(), name="inapp-messages"),
    path("inapp/<str:code>/seen", api.InAppSeenView.as_view(), name="inapp-seen"),
]
