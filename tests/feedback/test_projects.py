"""Changing a project after it is made: settings, and who works on it."""

import pytest

from feedback import services
from feedback.errors import ServiceError
from feedback.models import Membership, Project, Role
from feedback.services.projects import change_member_role, remove_member, update_project

pytestmark = pytest.mark.django_db


def test_settings_change_and_modes_in_use_stay_on(project, make_task):
    update_project(
        project_id=project.pk, guidelines="# Be kind", modes=("pairwise", "rating"), overlap=3
    )
    project.refresh_from_db()
    assert (project.guidelines, project.enabled_modes, project.overlap) == (
        "# Be kind",
        ["pairwise", "rating"],
        3,
    )
    make_task(n=3, mode="rating")
    cases = [
        (dict(modes=("pairwise",), overlap=1), "1 open rating tasks remain"),
        (dict(modes=(), overlap=1), "at least one"),
        (dict(modes=("pairwise", "vibes"), overlap=1), "at least one"),
        (dict(modes=("pairwise", "rating"), overlap=0), "1 to 100"),
    ]
    for arguments, message in cases:
        with pytest.raises(ServiceError, match=message):
            update_project(project_id=project.pk, guidelines="changed", **arguments)
    project.refresh_from_db()
    assert (project.guidelines, project.overlap) == ("# Be kind", 3)
    with pytest.raises(ServiceError, match="No project"):
        update_project(project_id=10_000, guidelines="", modes=("pairwise",), overlap=1)


def test_the_last_admin_cannot_be_demoted_or_removed(project, make_member, make_user):
    first = make_member(role=Role.ADMIN)
    annotator = make_member(role=Role.ANNOTATOR)
    for attempt in (
        lambda: change_member_role(project_id=project.pk, user_id=first.pk, role=Role.REVIEWER),
        lambda: remove_member(project_id=project.pk, user_id=first.pk),
    ):
        with pytest.raises(ServiceError, match="last admin"):
            attempt()
    assert Membership.objects.get(user=first).role == Role.ADMIN

    change_member_role(project_id=project.pk, user_id=annotator.pk, role=Role.ADMIN)
    change_member_role(project_id=project.pk, user_id=first.pk, role=Role.REVIEWER)
    remove_member(project_id=project.pk, user_id=first.pk)
    assert dict(project.memberships.values_list("user_id", "role")) == {annotator.pk: Role.ADMIN}

    stranger = make_user()
    with pytest.raises(ServiceError, match="not a member"):
        remove_member(project_id=project.pk, user_id=stranger.pk)
    with pytest.raises(ServiceError, match="Role must be one of"):
        change_member_role(project_id=project.pk, user_id=annotator.pk, role="owner")
    # Adding an existing member again changes their role, under the same rule.
    with pytest.raises(ServiceError, match="last admin"):
        services.add_member(project_id=project.pk, user_id=annotator.pk, role=Role.REVIEWER)
    services.add_member(project_id=project.pk, user_id=stranger.pk, role=Role.ADMIN)
    services.add_member(project_id=project.pk, user_id=annotator.pk, role=Role.REVIEWER)
    assert dict(Project.objects.get(pk=project.pk).memberships.values_list("user_id", "role")) == {
        annotator.pk: Role.REVIEWER,
        stranger.pk: Role.ADMIN,
    }
