"""A `Server-Timing` header on the annotation endpoints: the time spent inside the view, so the
browser's devtools and benchmarks/queue_throughput.py can tell server time from network time."""

import functools
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


def server_timed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def timed(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        started = time.perf_counter()
        response = view(request, *args, **kwargs)
        elapsed_ms = (time.perf_counter() - started) * 1000
        response["Server-Timing"] = f"view;dur={elapsed_ms:.2f}"
        return response

    return timed
