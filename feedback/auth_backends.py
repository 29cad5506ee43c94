"""Django's ModelBackend, with the lookup it makes on every signed-in request written in SQL."""

from django.contrib.auth import backends, get_user_model

from feedback.raw_rows import first_instance


class ModelBackend(backends.ModelBackend):
    """Resolves the session's user with a hand-written query: the ORM compiling
    `User.objects.get(pk=...)` cost twice the CPU of running it, on each of the annotation queue's
    hundreds of requests a second (benchmarks/queue_throughput.py). Everything else is Django's."""

    def get_user(self, user_id):
        model = get_user_model()
        table, pk = model._meta.db_table, model._meta.pk.column
        user = first_instance(model, f'SELECT * FROM "{table}" WHERE "{pk}" = %s', [user_id])
        return user if user is not None and self.user_can_authenticate(user) else None
