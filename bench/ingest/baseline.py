"""The naive baseline: a plain DRF ModelViewSet, one Event.objects.create per event.

Same keys (secret key, Bearer) as the product so that the comparison is about
the write path: a ModelSerializer validates each event (its subscriber by
primary key, one query each) and `create` saves it on its own, in autocommit.
A list body is a batch: ListSerializer creates the events one by one.
"""
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from subscribers.api.auth import ApiKeyAuthentication, IsSecretKey
from subscribers.models import Event


class BaselineEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "subscriber", "event_id", "name", "properties", "occurred_at"]


class BaselineEventViewSet(mixins.CreateModelMixin, viewsets.GenericViewSet):
    queryset = Event.objects.all()
    serializer_class = BaselineEventSerializer
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsSecretKey]
    throttle_classes = []

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data, many=isinstance(request.data, list))
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response({"created": len(serializer.data) if isinstance(request.data, list) else 1},
                        status=status.HTTP_201_CREATED)
