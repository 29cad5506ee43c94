"""Per-user API tokens."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from feedback.api import serializers as s
from feedback.api.permissions import NotWithAToken
from feedback.api.views.common import NewestFirst, ServiceErrorMixin, schema_only
from feedback.models import ApiToken
from feedback.services.tokens import issue_token, revoke_token


class TokenList(ServiceErrorMixin, generics.ListCreateAPIView):
    """Your API tokens. POST creates one and returns its key once."""

    serializer_class = s.ApiTokenSerializer
    pagination_class = NewestFirst
    parser_classes = [JSONParser]
    permission_classes = [IsAuthenticated, NotWithAToken]

    def get_queryset(self):
        if schema_only(self):
            return ApiToken.objects.none()
        return self.request.user.api_tokens.all()

    @extend_schema(
        request=s.ApiTokenSerializer,
        responses={201: s.IssuedTokenSerializer, 403: s.ErrorSerializer},
        description="Signed in only (the API page, or a session): a token cannot make another, "
        "so revoking a leaked one ends its access.",
    )
    def post(self, request):
        data = s.ApiTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = issue_token(user_id=request.user.pk, name=data.validated_data["name"])
        body = {**s.ApiTokenSerializer(issued.token).data, "key": issued.key}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetail(ServiceErrorMixin, generics.RetrieveDestroyAPIView):
    """DELETE revokes the token (it stays listed, with revoked_at set)."""

    serializer_class = s.ApiTokenSerializer
    lookup_url_kwarg = "token_id"

    def get_queryset(self):
        if schema_only(self):
            return ApiToken.objects.none()
        return self.request.user.api_tokens.all()

    def destroy(self, request, token_id: int):
        revoke_token(user_id=request.user.pk, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
