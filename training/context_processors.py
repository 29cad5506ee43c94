"""What every full page's top bar needs from training."""

from functools import partial

from training.selectors import sees_training


def navigation(request) -> dict:
    # A callable, so the query runs only where a page draws the top bar (htmx partials do not).
    return {"sees_training": partial(sees_training, request.user)}
