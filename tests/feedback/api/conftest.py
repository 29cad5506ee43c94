"""API test helpers: clients authenticated by token, as API users are."""

import pytest
from rest_framework.test import APIClient

from feedback.services.tokens import issue_token


@pytest.fixture
def client_for():
    """An APIClient sending a fresh token of `user` (or anonymous for None)."""

    def build(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            key = issue_token(user_id=user.pk, name="tests").key
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return build
