from django.urls import path

from . import prediction_views

app_name = "predictions"

urlpatterns = [
    path("", prediction_views.predictions_page, name="page"),
    path("train/", prediction_views.train_now, name="train"),
]
