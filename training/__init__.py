"""Training glue: jobs, Celery tasks and alignment rounds. The ML itself lives in training/engine/."""
