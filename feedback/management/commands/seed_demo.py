"""Load the demo project and logins (safe to run again)."""

from django.core.management.base import BaseCommand

from feedback.demo import load_demo


class Command(BaseCommand):
    help = "Create the demo project, its tasks, and the admin/annotator/reviewer logins."

    def handle(self, *args, **options):
        project, logins = load_demo()
        self.stdout.write(f"Demo project ready: {project.name} ({project.tasks.count()} tasks)")
        for login in logins:
            self.stdout.write(f"  login {login.username!r} password {login.password!r} ({login.role})")
