"""The leaderboard and agreement, as JSON."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback import insights, leaderboards
from feedback.api import serializers as s
from feedback.api.permissions import IsProjectReviewer
from feedback.api.views.common import ServiceErrorMixin


class Leaderboard(ServiceErrorMixin, APIView):
    """Model versions ranked by Bradley-Terry with bootstrap intervals, and online Elo."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "style_control",
                bool,
                description="Also rate each version with length and markdown held fixed.",
            )
        ],
        responses={200: s.LeaderboardSerializer},
    )
    def get(self, request, project_id: int):
        query = s.LeaderboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        board = leaderboards.leaderboard(
            project_id, style_control=query.validated_data["style_control"]
        )
        return Response(s.LeaderboardSerializer(board.as_json()).data)


class Agreement(ServiceErrorMixin, APIView):
    """Inter-annotator agreement and per-annotator quality figures."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(responses={200: s.AgreementSerializer})
    def get(self, request, project_id: int):
        report = insights.agreement_report(project_id)
        return Response(s.AgreementSerializer(report.as_json()).data)
