from django.apps import AppConfig
from django.urls import register_converter


class FeedbackConfig(AppConfig):
    name = "feedback"
    verbose_name = "Feedback"

    def ready(self) -> None:
        from feedback.ids import IdConverter

        # Before any URLconf is read: the URL modules name `<id:...>`.
        register_converter(IdConverter, "id")
        # Connects the receiver that frees a deleted account's leases.
        import feedback.user_deletion  # noqa: F401
