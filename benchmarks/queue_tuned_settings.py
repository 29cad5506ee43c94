"""Settings for measuring the queue with server-side parameter binding, which the default settings
lack: psycopg prepares the statements it sees repeatedly, so PostgreSQL stops re-planning the
queue's statements (it does not work behind a transaction-pooling PgBouncer).

    DJANGO_SETTINGS_MODULE=benchmarks.queue_tuned_settings \\
        tests/services.sh .venv/bin/python benchmarks/queue_throughput.py
"""

from config.settings import *  # noqa: F403

DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True  # noqa: F405
