from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("subscribers.api.urls")),
    path("api/v1/", include("delivery.api_urls")),
    path("api/v1/", include("campaigns.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # The marketer's home: the root and the admin's "View site" link lead to the dashboard.
    path("", RedirectView.as_view(pattern_name="analytics:dashboard"), name="home"),
    path("app/", include("analytics.urls")),
    path("app/campaigns/", include("campaigns.urls")),
    path("app/journeys/", include("journeys.urls")),
    path("app/predictions/", include("analytics.prediction_urls")),
    path("app/segments/", include("subscribers.segment_urls")),
    path("app/subscribers/", include("analytics.subscriber_urls")),
    path("app/templates/", include("delivery.template_urls")),
    path("", include("delivery.urls")),
    path("", include("subscribers.urls")),
    path("", include("delivery.webhook_urls")),
]

admin.site.site_url = "/app/"

# Unknown /api/ paths answer JSON like every other API error.
handler404 = "subscribers.api.errors.page_not_found"
