"""The one tab bar of a project's pages for its reviewers and admins, so that the insights,
review and training pages are each a click from the others."""

from django import template
from django.urls import reverse

from feedback import selectors
from feedback.models import Role

register = template.Library()

# label, the URL its tab opens, and every page (view name) that lights the tab up
TABS = (
    ("Annotate", "annotations:work", ()),
    ("Review", "annotations:review_list", ("annotations:review_task",)),
    ("Prompts", "annotations:prompt_list", ("annotations:prompt_page",)),
    ("Leaderboard", "insights:leaderboard", ()),
    ("Agreement", "insights:agreement", ()),
    ("Imports", "insights:imports", ()),
    ("Preference data", "insights:data", ()),
    ("Rounds", "training:round_list", ("training:round_detail", "training:launch")),
    ("Models", "training:registry", ()),
    ("Side by side", "training:compare", ()),
)
ADMIN_TABS = (("Settings", "insights:settings", ()),)


@register.inclusion_tag("partials/_project_nav.html", takes_context=True)
def project_nav(context, project) -> dict:
    request = context["request"]
    tabs = TABS
    if selectors.role_in(request.user, project.pk) == Role.ADMIN:
        tabs += ADMIN_TABS
    here = request.resolver_match.view_name
    return {
        "project": project,
        "tabs": [
            (label, reverse(name, args=[project.pk]), here == name or here in also)
            for label, name, also in tabs
        ],
    }
