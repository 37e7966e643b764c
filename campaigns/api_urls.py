from django.urls import path

from . import api

urlpatterns = [
    path("campaigns", api.CampaignListView.as_view(), name="campaigns-api-list"),
    path("campaigns/<int:pk>", api.CampaignDetailView.as_view(), name="campaigns-api-detail"),
] + [
    path(f"campaigns/<int:pk>/{action}", api.action_view(action), name=f"campaigns-api-{action}")
    for action in api.ACTION_SUMMARIES
]
