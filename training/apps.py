from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # Connects training's receiver for project deletion.
        import training.project_deletion  # noqa: F401
