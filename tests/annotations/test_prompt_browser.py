"""The prompt browser: finding prompts, and one prompt's outputs and tasks on a page."""

import pytest
from django.test import Client

from feedback import selectors, services
from feedback.selectors import PROMPT_PAGE_SIZE, browse_prompts

pytestmark = pytest.mark.django_db


def test_prompts_are_found_by_words_split_and_the_model_that_answered(project):
    chat = services.create_prompt(
        project_id=project.pk,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Lisbon?"},
        ],
    )
    held_out = services.create_prompt(
        project_id=project.pk, text="Tell me about PORTO", split="held_out"
    )
    plain = services.create_prompt(project_id=project.pk, text="What is 2 + 2?")
    version = services.create_model_version(project_id=project.pk, name="tuned")
    services.create_completion(prompt_id=plain.pk, text="4", model_version_id=version.pk)
    services.create_completion(prompt_id=plain.pk, text="four")
    task = services.create_task(
        prompt_id=plain.pk,
        completion_ids=[c.pk for c in plain.completions.order_by("pk")],
        mode="pairwise",
    )
    other = services.create_project(name="Elsewhere")
    services.create_prompt(project_id=other.pk, text="Lisbon, porto and 2 + 2")

    def found(**search) -> list[int]:
        return [row.prompt.pk for row in browse_prompts(project.pk, **search).rows]

    assert found() == [plain.pk, held_out.pk, chat.pk]
    assert found(query="lisbon") == [chat.pk]  # inside a chat message
    assert found(query="porto") == [held_out.pk]
    assert found(split="held_out") == [held_out.pk]
    assert found(model_version_id=version.pk) == [plain.pk]
    assert found(has_tasks=True) == [plain.pk]
    assert found(has_tasks=False) == [held_out.pk, chat.pk]  # what nobody was asked to judge
    (row,) = browse_prompts(project.pk, query="2 + 2").rows
    assert (row.outputs, row.tasks, row.judgments) == (2, 1, 0)
    assert task.prompt_id == plain.pk


def test_pages_go_back_by_id_until_the_first_prompt(project):
    ids = [
        services.create_prompt(project_id=project.pk, text=f"q{n}").pk
        for n in range(PROMPT_PAGE_SIZE + 3)
    ]
    first = browse_prompts(project.pk)
    assert [row.prompt.pk for row in first.rows] == ids[::-1][:PROMPT_PAGE_SIZE]
    second = browse_prompts(project.pk, before=first.older_than)
    assert [row.prompt.pk for row in second.rows] == ids[:3][::-1]
    assert second.older_than is None


def test_a_prompts_page_shows_its_outputs_escaped_and_the_tasks_over_them(
    project, make_member, make_task
):
    task = make_task(n=3, mode="ranking")
    prompt = task.prompt
    version = services.create_model_version(project_id=project.pk, name="model-<b>x</b>")
    services.create_completion(
        prompt_id=prompt.pk,
        text="<script>alert(1)</script> **bold**",
        model_version_id=version.pk,
        generation_settings={"finish_reason": "length"},
    )
    client = Client()
    client.force_login(make_member(role="reviewer"))
    page = client.get(f"/projects/{project.pk}/prompts/{prompt.pk}/").content.decode()
    assert page.count('class="output"') == 4
    assert "<script>alert(1)" not in page and "<strong>bold</strong>" in page
    assert "model-&lt;b&gt;x&lt;/b&gt;" in page and "Cut off at the length limit" in page
    first = prompt.completions.order_by("pk").first()
    shows = " · ".join(f"Output #{c.pk}" for c in prompt.completions.order_by("pk")[:3])
    assert f"Output #{first.pk}" in page and shows in page
    assert f'href="/projects/{project.pk}/review/{task.pk}/"' in page
    review = client.get(f"/projects/{project.pk}/review/{task.pk}/").content.decode()
    assert f'href="/projects/{project.pk}/prompts/{prompt.pk}/"' in review

    listing = client.get(f"/projects/{project.pk}/prompts/?q=prompt").content.decode()
    assert f'href="/projects/{project.pk}/prompts/{prompt.pk}/"' in listing
    untasked = client.get(f"/projects/{project.pk}/prompts/?tasks=without").content.decode()
    assert f'href="/projects/{project.pk}/prompts/{prompt.pk}/"' not in untasked
    other = services.create_project(name="Not yours")
    foreign = services.create_prompt(project_id=other.pk, text="secret")
    assert client.get(f"/projects/{project.pk}/prompts/{foreign.pk}/").status_code == 404
    assert client.get(f"/projects/{project.pk}/prompts/?model_version=abc").status_code == 200

    annotator = Client()
    annotator.force_login(make_member(role="annotator"))
    assert annotator.get(f"/projects/{project.pk}/prompts/").status_code == 403
    assert annotator.get(f"/projects/{project.pk}/prompts/{prompt.pk}/").status_code == 403
    assert selectors.prompt_detail(other.pk, prompt.pk) is None


def test_a_prompts_page_says_what_each_task_was_judged_in_model_names(project, make_member):
    prompt = services.create_prompt(project_id=project.pk, text="Which is kinder?")
    outputs = [
        services.create_completion(
            prompt_id=prompt.pk,
            text=text,
            model_version_id=services.create_model_version(project_id=project.pk, name=name).pk,
        )
        for name, text in (("gentle", "Kind words."), ("blunt", "Hard words."))
    ]
    task = services.create_task(
        prompt_id=prompt.pk, completion_ids=[c.pk for c in outputs], judgments_wanted=3
    )
    for n, (choice, strength) in enumerate((("b", "much"), ("b", "much"), ("tie", None))):
        annotator = make_member()
        services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
        services.submit_judgment(
            annotator_id=annotator.pk,
            task_id=task.pk,
            data=services.JudgmentInput(
                kind="pairwise", choice=choice, strength=strength, idempotency_key=f"{n}"
            ),
        )
    first = task.items.get(position=1).completion.model_version.name  # "b" is position 1
    client = Client()
    client.force_login(make_member(role="reviewer"))
    page = client.get(f"/projects/{project.pk}/prompts/{prompt.pk}/").content.decode()
    assert f"{first} much better ×2 · Tie" in page
