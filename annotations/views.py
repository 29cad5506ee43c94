"""Annotator pages."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from feedback import selectors


@login_required
def home(request):
    return render(
        request, "annotations/home.html", {"summaries": selectors.queue_summaries_for(request.user)}
    )
