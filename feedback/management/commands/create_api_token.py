"""Issue an API token for a user from the server's shell, for provisioning scripts and CI."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from feedback.errors import ServiceError
from feedback.services.tokens import issue_token


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME and print its key (only the key, on one line, so that "
        "KEY=$(python manage.py create_api_token alice) works). The key is not shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for.")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}.")
        try:
            issued = issue_token(user_id=user.pk, name=name)
        except ServiceError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(issued.key)
