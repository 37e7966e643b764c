from django.urls import path

from . import views

app_name = "subscribers"

urlpatterns = [
    path("r/cart/<str:token>", views.restore_cart, name="restore-cart"),
    path("tanbih-sw.js", views.service_worker, name="service-worker"),
    path("demo/store/", views.demo_store, name="demo-store"),
    path("demo/store/<str:lang>/", views.demo_store, name="demo-store-lang"),
    path("demo/store/<str:lang>/products/<slug:slug>/", views.demo_product, name="demo-product"),
]
