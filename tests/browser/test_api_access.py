"""A user makes an API token in the browser, copies it, uses it, and revokes it."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from tests.browser.conftest import sign_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_token_is_made_copied_used_and_revoked(page, transactional_db, django_user_model):
    django_user_model.objects.create_user("dana", password="pw")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "dana")
    page.get_by_role("link", name="API", exact=True).click()
    expect(page.get_by_role("heading", name="API access")).to_be_visible()

    # The name field has the focus: type a name, press Enter, and the key is selected to copy.
    page.keyboard.type("nightly export")
    page.keyboard.press("Enter")
    key_field = page.get_by_label("Key of the new token")
    expect(key_field).to_be_focused()
    key = key_field.input_value()
    assert key.startswith("arb_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    snap(page, "api-access-new-token", tablet=True)
    assert Client().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200

    # Dismissing the confirmation keeps the token; accepting it revokes the token.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Active")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("“nightly export” is revoked")
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    assert key not in page.content()
    assert Client().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401
