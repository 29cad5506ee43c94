"""The Django admin's round defaults: checked like a launch, before they are saved."""

import pytest

from training.models import RoundDefaults

pytestmark = pytest.mark.django_db
ADD = "/admin/training/rounddefaults/add/"


def test_round_defaults_are_checked_before_they_are_saved(client, project, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    form = client.get(ADD).content.decode()
    assert "learning_rate" in form  # the engine's defaults, shown as what there is to override
    refused = client.post(ADD, {"project": project.pk, "hyperparameters": '{"dpo": {"warp": 1}}'})
    assert (
        refused.status_code == 200
        and "Unknown dpo hyperparameters: warp" in refused.content.decode()
    )
    assert not RoundDefaults.objects.exists()
    saved = client.post(ADD, {"project": project.pk, "hyperparameters": '{"dpo": {"beta": 0.2}}'})
    assert saved.status_code == 302
    assert RoundDefaults.objects.get(project=project).hyperparameters == {"dpo": {"beta": 0.2}}
