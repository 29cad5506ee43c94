"""Small builders for annotator-UI tests: a project with realistic prompts and outputs."""

from feedback import services
from feedback.models import AnnotationTask, Project

CODE_ANSWER = (
    "Two common ways:\n\n```python\nitems = [1, 2, 3]\nitems.reverse()        # in place\n"
    "backwards = items[::-1]  # new list\n```\n\n`reverse()` changes the list itself; "
    "slicing returns a **copy**."
)
SHORT_ANSWER = "You can use `reverse`."
CHAT = [
    {"role": "system", "content": "You are a concise travel assistant."},
    {"role": "user", "content": "I have one day in Lisbon. What should I not miss?"},
]
LISBON_ANSWERS = [
    "With one day:\n\n- **Morning:** Belém — the tower and the monastery.\n"
    "- **Afternoon:** ride tram 28 up to the castle.\n- **Evening:** sunset at a miradouro.",
    "Lisbon is a city in Portugal.",
    "See the castle and eat seafood.",
]
GUIDELINES = (
    "## What makes an answer better\n\n1. **Correct** first.\n2. **Helpful**: answers the question.\n"
    "3. **Clear**: code in code blocks.\n\nPick *tie* when neither is better."
)


def make_project(
    name: str = "UI project", *, modes=("pairwise", "ranking"), overlap: int = 1
) -> Project:
    return services.create_project(name=name, guidelines=GUIDELINES, modes=modes, overlap=overlap)


def make_task(
    project: Project,
    outputs: list[str],
    *,
    text: str = "",
    messages: list[dict[str, str]] | None = None,
    mode: str = "pairwise",
    priority: int = 0,
    judgments_wanted: int | None = None,
) -> AnnotationTask:
    prompt = services.create_prompt(project_id=project.pk, text=text, messages=messages)
    completions = [services.create_completion(prompt_id=prompt.pk, text=out) for out in outputs]
    return services.create_task(
        prompt_id=prompt.pk,
        completion_ids=[c.pk for c in completions],
        mode=mode,
        priority=priority,
        judgments_wanted=judgments_wanted,
    )
