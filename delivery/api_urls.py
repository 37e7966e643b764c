from django.urls import path

from . import api, send_api

urlpatterns = [
    path("messages", send_api.SendMessageView.as_view(), name="messages-send"),
    path("messages/<str:code>", send_api.MessageDetailView.as_view(), name="messages-detail"),
    path("notification-reports", api.NotificationReportView.as_view(), name="notification-reports"),
    path("inapp", api.InAppMessagesView.as_view(), name="inapp-messages"),
    path("inapp/<str:code>/seen", api.InAppSeenView.as_view(), name="inapp-seen"),
]
