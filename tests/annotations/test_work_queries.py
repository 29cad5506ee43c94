"""The annotator's page renders the task from what its lease selected: its prompt and outputs
cost no queries of their own."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def test_the_work_page_reads_the_task_from_the_lease(project, client, make_member, make_task):
    for _ in range(3):
        make_task(n=3, mode="ranking")
    client.force_login(make_member())
    url = f"/projects/{project.pk}/work/"
    client.get(url)  # the lease
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url)  # the same lease, shown again
    assert page.status_code == 200 and 'data-task-id="' in page.content.decode()
    tables = " ".join(q["sql"] for q in queries.captured_queries)
    assert "feedback_taskitem" in tables  # the lease statement selects the outputs ...
    reads = [q["sql"] for q in queries.captured_queries if "feedback_taskitem" in q["sql"]]
    assert len(reads) == 1, reads  # ... and nothing reads them again
    assert not [q for q in queries.captured_queries if 'FROM "feedback_completion"' in q["sql"]]
