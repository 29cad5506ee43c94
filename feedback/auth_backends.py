"""Django's ModelBackend, with the lookup it makes on every signed-in request written in SQL."""

from django.contrib.auth import backends, get_user_model


class ModelBackend(backends.ModelBackend):
    """Resolves the session's user with a raw query: the ORM compiling `User.objects.get(pk=...)`
    cost twice the CPU of running it, on each of the annotation queue's hundreds of requests a
    second (benchmarks/queue_throughput.py). Everything else is Django's."""

    def get_user(self, user_id):
        users = get_user_model()._default_manager
        table, pk = users.model._meta.db_table, users.model._meta.pk.column
        user = next(iter(users.raw(f'SELECT * FROM "{table}" WHERE "{pk}" = %s', [user_id])), None)
        return user if user is not None and self.user_can_authenticate(user) else None
