from django.urls import path

from . import segment_views as views

app_name = "segments"

urlpatterns = [
    path("", views.segment_list, name="list"),
    path("new/", views.segment_new, name="new"),
    path("builder/tree/", views.builder_tree, name="tree"),
    path("builder/count/", views.builder_count, name="count"),
    path("<int:pk>/", views.segment_detail, name="detail"),
    path("<int:pk>/edit/", views.segment_edit, name="edit"),
    path("<int:pk>/duplicate/", views.segment_duplicate, name="duplicate"),
    path("<int:pk>/delete/", views.segment_delete, name="delete"),
]
