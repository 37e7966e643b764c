"""Campaigns from the store's backend (secret key): create, send (schedule), read with progress, pause,
resume, cancel. The same write paths as the marketer's pages (campaigns.services)."""
from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from delivery.models import DeliveryChannel, MessageTemplate
from subscribers.api.errors import Conflict, field_error
from subscribers.api.serializers import BoundedJSONObjectField, ErrorSerializer
from subscribers.api.views import COMMON_ERRORS, E400, StorefrontApiView
from subscribers.models import Segment

from . import engine, services
from .models import Campaign, CampaignStatus, MissedLocalTime, ScheduleKind, Variant, WinnerMetric

E404 = OpenApiResponse(ErrorSerializer, description="No campaign with this id.")
E409 = OpenApiResponse(ErrorSerializer, description="The campaign is not in a state that allows this.")


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}],
                     "description": "A segment's id, or its exact name."})
class SegmentRefField(serializers.Field):
    """A segment by id (a number) or by its exact name (a string)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            raise serializers.ValidationError("Expected a segment id or name.", code="invalid")
        found = Segment.objects.filter(pk=data).first() if isinstance(data, int) else \
            Segment.objects.filter(name=data).first()
        if found is None:
            raise serializers.ValidationError(f"No segment {data!r}.", code="not_found")
        return found

    def to_representation(self, value):
        return {"id": value.pk, "name": str(value)}


class VariantInSerializer(serializers.Serializer):
    template = serializers.SlugField(help_text="A template's slug.")
    channel = serializers.ChoiceField(choices=DeliveryChannel.choices, required=False,
                                      help_text="Only this variant: test a channel.")
    data = BoundedJSONObjectField(required=False, default=dict, max_bytes=4096,
                                  help_text="Extra template variables, e.g. {\"discount_code\": \"FRIDAY20\"}.")

    def validate_template(self, value):
        template = MessageTemplate.objects.filter(slug=value).first()
        if template is None:
            raise serializers.ValidationError(f"No template has the slug '{value}'.", code="not_found")
        return template


class CampaignInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    segments = serializers.ListField(child=SegmentRefField(), min_length=1, max_length=20)
    exclude_segments = serializers.ListField(child=SegmentRefField(), required=False, default=list, max_length=20)
    channels = serializers.ListField(child=serializers.ChoiceField(choices=DeliveryChannel.choices), min_length=1,
                                     max_length=5, help_text="In priority order.")
    variants = VariantInSerializer(many=True, min_length=1, max_length=4)
    schedule = serializers.ChoiceField(choices=ScheduleKind.values, default=ScheduleKind.NOW)
    send_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    local_date = serializers.DateField(required=False, allow_null=True, default=None)
    local_time = serializers.TimeField(required=False, allow_null=True, default=None)
    missed_local_time = serializers.ChoiceField(choices=MissedLocalTime.values, default=MissedLocalTime.NEXT_DAY)
    recurrence = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    recurrence_timezone = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    throttle_per_minute = serializers.IntegerField(min_value=0, default=0)
    critical = serializers.BooleanField(default=False)
    holdout_percent = serializers.IntegerField(min_value=0, max_value=50, default=0)
    test_percent = serializers.IntegerField(min_value=1, max_value=100, default=100)
    winner_metric = serializers.ChoiceField(choices=WinnerMetric.values, default=WinnerMetric.CLICK_RATE)
    winner_wait_hours = serializers.IntegerField(min_value=1, max_value=168, default=4)
    conversion_event = serializers.CharField(max_length=100, default="order_placed")
    conversion_window_hours = serializers.IntegerField(min_value=1, max_value=720, default=24)
    send = serializers.BooleanField(default=False, help_text="Schedule it at once (else it stays a draft).")

    def validate_recurrence(self, value):
        if value:
            try:
                engine.parse_recurrence(value)
            except ValueError as error:
                raise serializers.ValidationError(str(error), code="invalid") from None
        return value


class SegmentOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class VariantOutSerializer(serializers.Serializer):
    label = serializers.CharField()
    template = serializers.CharField()
    channels = serializers.ListField(child=serializers.CharField())
    results = serializers.DictField(allow_null=True, help_text="sent, clicked, converted, click_rate, conversion_rate")


class ProgressOutSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Messages by status.")
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    percent = serializers.IntegerField()
    holdout = serializers.IntegerField()


class CampaignOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    schedule = serializers.CharField(source="schedule_kind")
    channels = serializers.ListField(child=serializers.CharField())
    segments = serializers.SerializerMethodField()
    exclude_segments = serializers.SerializerMethodField()
    variants = serializers.SerializerMethodField()
    winner = serializers.CharField(source="winner.label", allow_null=True, default=None)
    next_run_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    progress = serializers.SerializerMethodField()

    @extend_schema_field(SegmentOutSerializer(many=True))
    def get_segments(self, campaign):
        return [{"id": s.pk, "name": str(s)} for s in campaign.include_segments.all()]

    @extend_schema_field(SegmentOutSerializer(many=True))
    def get_exclude_segments(self, campaign):
        return [{"id": s.pk, "name": str(s)} for s in campaign.exclude_segments.all()]

    @extend_schema_field(VariantOutSerializer(many=True))
    def get_variants(self, campaign):
        results = engine.variant_results(campaign)
        return [{"label": v.label, "template": v.template.slug, "channels": v.effective_channels(),
                 "results": results.get(v.label)} for v in campaign.variants.select_related("template")]

    @extend_schema_field(ProgressOutSerializer)
    def get_progress(self, campaign):
        return engine.progress(campaign)


def _out(campaign, code=status.HTTP_200_OK):
    campaign = Campaign.objects.select_related("winner").get(pk=campaign.pk)
    return Response(CampaignOutSerializer(campaign).data, status=code)


def _problems(error):
    return ValidationError({name: [message] for name, message in error.problems})


def _campaign(pk):
    campaign = Campaign.objects.filter(pk=pk).first()
    if campaign is None:
        raise field_error(NotFound, "id", "No campaign with this id.", "not_found")
    return campaign


class CampaignListView(StorefrontApiView):
    @extend_schema(
        operation_id="campaigns_create", tags=["campaigns"], request=CampaignInSerializer,
        summary="Create a campaign (and send it with \"send\": true)",
        description=(
            "A draft to a list of segments, on channels in priority order, with one to four variants (A/B). "
            "With `send: true` it is checked and scheduled at once; a campaign that is not ready answers 400 "
            "with each problem on its field and stays a draft."),
        responses={201: CampaignOutSerializer, 400: E400, **COMMON_ERRORS},
        examples=[OpenApiExample("White Friday by push, else SMS", request_only=True, value={
            "name": "White Friday", "segments": ["Repeat customers"], "channels": ["push", "sms"],
            "variants": [{"template": "white-friday"}], "schedule": "local_time", "local_date": "2026-11-27",
            "local_time": "18:00", "send": True})],
    )
    def post(self, request):
        serializer = CampaignInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            campaign = Campaign.objects.create(
                name=data["name"], description=data["description"], channels=data["channels"],
                schedule_kind=data["schedule"], send_at=data["send_at"], local_date=data["local_date"],
                local_time=data["local_time"], missed_local_time=data["missed_local_time"],
                recurrence=data["recurrence"], recurrence_timezone=data["recurrence_timezone"],
                throttle_per_minute=data["throttle_per_minute"], is_critical=data["critical"],
                holdout_percent=data["holdout_percent"], test_percent=data["test_percent"],
                winner_metric=data["winner_metric"], winner_wait_hours=data["winner_wait_hours"],
                conversion_event=data["conversion_event"], conversion_window_hours=data["conversion_window_hours"])
            campaign.include_segments.set(data["segments"])
            campaign.exclude_segments.set(data["exclude_segments"])
            for label, variant in zip("ABCD", data["variants"]):
                Variant.objects.create(campaign=campaign, label=label, template=variant["template"],
                                       channels=[variant["channel"]] if variant.get("channel") else [],
                                       context=variant.get("data") or {})
            if data["send"]:
                try:
                    services.schedule_campaign(campaign, by="api")
                except engine.CampaignError as error:
                    transaction.set_rollback(True)
                    raise _problems(error) from None
        return _out(campaign, status.HTTP_201_CREATED)

    @extend_schema(operation_id="campaigns_list", tags=["campaigns"], summary="The latest campaigns",
                   responses={200: CampaignOutSerializer(many=True), **COMMON_ERRORS})
    def get(self, request):
        campaigns = Campaign.objects.select_related("winner").prefetch_related(
            "include_segments", "exclude_segments").order_by("-created_at", "-pk")[:100]
        return Response(CampaignOutSerializer(campaigns, many=True).data)


class CampaignDetailView(StorefrontApiView):
    @extend_schema(operation_id="campaigns_read", tags=["campaigns"],
                   summary="A campaign with its progress and A/B results",
                   responses={200: CampaignOutSerializer, 404: E404, **COMMON_ERRORS})
    def get(self, request, pk):
        return _out(_campaign(pk))


class CampaignActionView(StorefrontApiView):
    action = ""

    def act(self, request, pk):
        campaign = _campaign(pk)
        if self.action == "send":
            try:
                services.schedule_campaign(campaign, by="api")
            except engine.CampaignError as error:
                if any(name == "status" for name, _message in error.problems):
                    raise field_error(Conflict, "status", error.problems[0][1], "not_a_draft") from None
                raise _problems(error) from None
        elif self.action == "cancel":
            if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
                raise field_error(Conflict, "status", f"The campaign is already {campaign.status}.",
                                  "not_cancellable")
            services.cancel(campaign, by="api")
        else:
            done = getattr(services, self.action)(campaign, by="api")
            if not done:
                raise field_error(Conflict, "status", f"The campaign is {campaign.status}; it can't be "
                                                      f"{self.action}d.", f"not_{self.action}able")
        return _out(campaign)


ACTION_SUMMARIES = {
    "send": "Send (schedule) a draft campaign",
    "pause": "Pause a campaign: due messages are held until it is resumed",
    "resume": "Resume a paused campaign",
    "cancel": "Cancel a campaign: every message not yet sent is stopped at once",
}


def action_view(action):
    @extend_schema(operation_id=f"campaigns_{action}", summary=ACTION_SUMMARIES[action], tags=["campaigns"],
                   request=None,
                   responses={200: CampaignOutSerializer, 400: E400, 404: E404, 409: E409, **COMMON_ERRORS})
    def post(self, request, pk):
        return self.act(request, pk)

    return type(f"Campaign{action.title()}View", (CampaignActionView,), {"action": action, "post": post}).as_view()
