from django.urls import path

from . import views

app_name = "campaigns"

urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("new/", views.campaign_create, name="create"),
    path("test-device/", views.register_test_device, name="test-device"),
    path("<int:pk>/edit/", views.campaign_edit, name="edit"),
    path("<int:pk>/audience-count/", views.audience_count, name="audience-count"),
    path("<int:pk>/schedule/", views.campaign_schedule, name="schedule"),
    path("<int:pk>/test-send/", views.campaign_test_send, name="test-send"),
    path("<int:pk>/", views.campaign_detail, name="detail"),
    path("<int:pk>/progress/", views.campaign_progress, name="progress"),
    path("<int:pk>/<str:action>/", views.campaign_action, name="action"),
]
