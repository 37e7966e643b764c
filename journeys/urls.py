from django.urls import path

from . import views

app_name = "journeys"

urlpatterns = [
    path("", views.journey_list, name="list"),
    path("new/", views.journey_create, name="create"),
    path("<int:pk>/", views.journey_detail, name="detail"),
    path("<int:pk>/figures/", views.journey_figures, name="figures"),
    path("<int:pk>/settings/", views.journey_settings, name="settings"),
    path("<int:pk>/steps/", views.steps_json, name="steps-json"),
    path("<int:pk>/steps/add/", views.step_add, name="step-add"),
    path("<int:pk>/steps/<path:key>/remove/", views.step_remove, name="step-remove"),
    path("<int:pk>/steps/<path:key>/", views.step_edit, name="step"),
    path("<int:pk>/test/", views.test_start, name="test-start"),
    path("<int:pk>/test/<int:enrolment_pk>/", views.test_run, name="test"),
    path("<int:pk>/test/<int:enrolment_pk>/<str:action>/", views.test_action, name="test-action"),
    path("<int:pk>/<str:action>/", views.journey_action, name="action"),
]
