"""Judge a project's open tasks as a simulated annotator who prefers responses with a given word."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from feedback.errors import ServiceError
from feedback.models import Project
from feedback.simulation import prefers_word, simulate_annotator


class Command(BaseCommand):
    help = "Work through a project's queue as USERNAME, preferring responses that contain WORD."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project name")
        parser.add_argument("--username", default="annotator")
        parser.add_argument("--word", required=True)
        parser.add_argument("--max-tasks", type=int, default=None)

    def handle(self, *args, project: str, username: str, word: str, max_tasks, **options):
        target = Project.objects.filter(name=project).first()
        user = get_user_model().objects.filter(username=username).first()
        if target is None or user is None:
            raise CommandError("Unknown project or user.")
        try:
            result = simulate_annotator(
                annotator_id=user.pk,
                project_id=target.pk,
                prefers=prefers_word(word),
                max_tasks=max_tasks,
            )
        except ServiceError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{username} judged {result.judged} tasks in {target.name!r}.")
