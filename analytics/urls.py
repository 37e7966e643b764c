from django.urls import path

from . import views

app_name = "analytics"

# Mounted at /app/ ahead of the campaigns' and journeys' own URLs, whose `<pk>/<action>/` would take "report".
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("campaigns/<int:pk>/report/", views.campaign_report, name="campaign-report"),
    path("journeys/<int:pk>/report/", views.journey_report, name="journey-report"),
]
