from django.urls import path

from . import subscriber_views as views

app_name = "shoppers"

urlpatterns = [
    path("", views.subscriber_list, name="list"),
    path("<int:pk>/", views.subscriber_detail, name="detail"),
    path("<int:pk>/timeline/", views.subscriber_timeline, name="timeline"),
]
