"""Who may call what: roles are per project (Membership.role); staff count as admins everywhere.

Project-scoped endpoints take `project_id` from the URL. A non-member gets 404, so the API does not
reveal which projects exist; a member whose role is too low gets 403.
"""

from django.http import Http404
from rest_framework.permissions import SAFE_METHODS, BasePermission

from feedback import selectors
from feedback.api.authentication import ApiTokenAuthentication
from feedback.models import Role

ANY_MEMBER = (Role.ANNOTATOR, Role.REVIEWER, Role.ADMIN)
REVIEWERS = (Role.REVIEWER, Role.ADMIN)
ADMINS = (Role.ADMIN,)


def project_role(user, project_id) -> str | None:
    if not user or not user.is_authenticated:
        return None
    return selectors.role_in(user, int(project_id))


class ProjectRolePermission(BasePermission):
    """Allow members of the URL's project whose role is in `roles`."""

    roles: tuple[str, ...] = ANY_MEMBER
    message = "Your role in this project does not allow this."

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        project_id = view.kwargs["project_id"]
        role = project_role(request.user, project_id)
        if role is None:
            raise Http404("No such project.")
        return role in self.roles


class IsProjectMember(ProjectRolePermission):
    roles = ANY_MEMBER


class IsProjectReviewer(ProjectRolePermission):
    roles = REVIEWERS


class IsProjectAdmin(ProjectRolePermission):
    roles = ADMINS


class NotWithAToken(BasePermission):
    """Reads with a token; writes signed in (session) only: a token cannot make another, so
    revoking a leaked one ends its access."""

    message = (
        "A token cannot make another (revoking a leaked one must end its access); sign in and "
        "make tokens on the API page."
    )

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or not isinstance(
            request.successful_authenticator, ApiTokenAuthentication
        )
