"""Load the demo projects and logins (safe to run again)."""

from django.core.management.base import BaseCommand

from feedback.demo import load_arena_demo, load_demo
from training.demo import load_alignment_demo


class Command(BaseCommand):
    help = "Create the demo projects (annotation, arena, alignment loop) and the demo logins."

    def handle(self, *args, **options):
        project, logins = load_demo()
        self.stdout.write(f"Demo project ready: {project.name} ({project.tasks.count()} tasks)")
        arena = load_arena_demo()
        self.stdout.write(
            f"Demo project ready: {arena.name} ({arena.tasks.count()} imported battles)"
        )
        loop = load_alignment_demo()
        self.stdout.write(f"Demo project ready: {loop.name} (tiny policy built locally)")
        for login in logins:
            self.stdout.write(
                f"  login {login.username!r} password {login.password!r} ({login.role})"
            )
