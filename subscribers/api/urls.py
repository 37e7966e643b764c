from django.urls import path

from . import carts, sdk, views

urlpatterns = [
    path("subscribers", views.SubscriberUpsertView.as_view(), name="api-subscribers"),
    path("subscribers/<str:external_id>", views.SubscriberDetailView.as_view(), name="api-subscriber"),
    path("subscribers/<str:external_id>/export", views.SubscriberExportView.as_view(), name="api-subscriber-export"),
    path("subscribers/<str:external_id>/consents", views.SubscriberConsentsView.as_view(),
         name="api-subscriber-consents"),
    path("identify", views.IdentifyView.as_view(), name="api-identify"),
    path("events", views.EventView.as_view(), name="api-events"),
    path("events/batch", views.EventBatchView.as_view(), name="api-events-batch"),
    path("push-subscriptions", views.PushSubscriptionView.as_view(), name="api-push-subscriptions"),
    path("push-subscriptions/unsubscribe", views.PushUnsubscribeView.as_view(), name="api-push-unsubscribe"),
    path("carts/<str:token>", carts.CartRestoreView.as_view(), name="api-cart-restore"),
    path("sdk/config", sdk.SdkConfigView.as_view(), name="sdk-config"),
]
