from django.urls import path

from . import template_views as views

app_name = "templates"

urlpatterns = [
    path("", views.template_list, name="list"),
    path("new/", views.template_create, name="create"),
    path("<int:pk>/", views.template_edit, name="edit"),
    path("<int:pk>/duplicate/", views.template_duplicate, name="duplicate"),
    path("<int:pk>/preview/<str:channel>/<str:locale>/", views.template_preview, name="preview"),
]
