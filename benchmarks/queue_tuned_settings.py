"""Settings for measuring the queue with three production tunings the default settings lack:
sessions read from a per-process cache instead of a query per request, no `SELECT 1` health
check before each request's first query, and server-side parameter binding (psycopg prepares
statements it sees repeatedly, so PostgreSQL stops re-planning the queue's statements).

    DJANGO_SETTINGS_MODULE=benchmarks.queue_tuned_settings \\
        tests/services.sh .venv/bin/python benchmarks/queue_throughput.py
"""

from config.settings import *  # noqa: F403

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # noqa: F405
DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True  # noqa: F405
