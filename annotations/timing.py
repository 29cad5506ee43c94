"""A `Server-Timing` header on the annotation endpoints: the time spent inside the view (`view`)
and the CPU time its thread used (`cpu`), so the browser's devtools and
benchmarks/queue_throughput.py can tell server time from network time and from waiting for a CPU."""

import functools
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


def server_timed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def timed(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        started, cpu_started = time.perf_counter(), time.thread_time()
        response = view(request, *args, **kwargs)
        elapsed_ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.thread_time() - cpu_started) * 1000
        response["Server-Timing"] = f"view;dur={elapsed_ms:.2f}, cpu;dur={cpu_ms:.2f}"
        return response

    return timed
