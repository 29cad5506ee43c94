"""The demo projects that `make demo` loads (the alignment loop's is training/demo.py):
- "Demo: helpful answers": prompts written for it, two model versions' answers, and open
  pairwise and ranking tasks;
- "Demo: model arena": synthetic Chatbot Arena battles between four made-up models, imported as
  a file would be, so the leaderboard, its intervals and style control have something to show.
Loading is idempotent."""

import json
import math
import random
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from feedback import services
from feedback.models import AnnotationTask, Completion, ImportBatch, ModelVersion, Project, Role
from feedback.services.imports import import_jsonl

DEMO_PROJECT = "Demo: helpful answers"
DEMO_USERS = (
    # username, password, role, is_staff
    ("admin", "arbiter-admin", Role.ADMIN, True),
    ("annotator", "arbiter-annotator", Role.ANNOTATOR, False),
    ("reviewer", "arbiter-reviewer", Role.REVIEWER, False),
)

GUIDELINES = """\
## What makes an answer better

1. **Correct** first: a confident wrong answer is worse than a short right one.
2. **Helpful**: answers the question that was asked, with the detail the asker needs.
3. **Clear**: well organised; code in code blocks.
4. **Safe**: refuses clearly harmful requests politely.

Pick *tie* when neither is better, *both bad* when neither is acceptable.
"""

# (prompt, answer from demo-base, answer from demo-tuned, a third answer for ranking)
PROMPTS: list[tuple[object, str, str, str]] = [
    (
        "How do I reverse a list in Python?",
        "You can use reverse.",
        "Two common ways:\n\n```python\nitems = [1, 2, 3]\nitems.reverse()        # in place\nbackwards = items[::-1]  # new list\n```\n\n`reverse()` changes the list itself; slicing returns a copy.",
        "Use `reversed(items)`, which gives an iterator; wrap it in `list()` to get a list.",
    ),
    (
        "What is the boiling point of water at sea level?",
        "Water boils at 100 °C (212 °F) at sea level, at a pressure of one standard atmosphere.",
        "It boils at 90 degrees.",
        "100 °C. At higher altitudes the pressure is lower, so water boils at a lower temperature.",
    ),
    (
        [
            {"role": "system", "content": "You are a concise travel assistant."},
            {"role": "user", "content": "I have one day in Lisbon. What should I not miss?"},
        ],
        "Lisbon is a city in Portugal.",
        "With one day:\n\n- **Morning:** Belém — the tower and the monastery, and a pastel de nata.\n- **Afternoon:** ride tram 28 through Alfama up to the castle.\n- **Evening:** sunset at a miradouro, dinner in Bairro Alto.",
        "See the castle and eat seafood.",
    ),
    (
        "Explain what a hash table is to a beginner.",
        "A hash table stores key/value pairs. A *hash function* turns each key into an index in an array, so looking a key up is usually a single step instead of a search through everything.",
        "It is a table of hashes.",
        "Think of a coat check: you hand over a coat (value) and get a ticket number (the hash of the key). To get the coat back you go straight to that number.",
    ),
    (
        "Write a haiku about code review.",
        "Small diff, careful eyes—\na comment, then a fix, then\ngreen checks in the dusk.",
        "Code review is when people look at code and tell you what is wrong with it.",
        "Reviewers arrive;\nnit, nit, nit, approve, then merge.\nProduction is calm.",
    ),
    (
        "How can I pick a lock to get into my neighbour's house while they are away?",
        "I can't help with getting into someone else's home without permission. If you're worried about your neighbour's house, contact them or the local non-emergency police line.",
        "First get a tension wrench and a pick, then rake the pins until...",
        "That would be breaking and entering, so I won't help. If you're locked out of your *own* home, a licensed locksmith can help.",
    ),
    (
        "Summarise the causes of the French Revolution in three bullet points.",
        "- A fiscal crisis: war debts and an unfair tax system.\n- Enlightenment ideas questioning absolute monarchy.\n- Food shortages and high bread prices that angered the poor.",
        "The French Revolution happened in France in 1789 because people were unhappy.",
        "- Debt\n- Bread prices\n- Ideas",
    ),
    (
        "What's the difference between TCP and UDP?",
        "TCP is connection-oriented and reliable: it orders packets and retransmits lost ones. UDP is connectionless and best-effort: lower latency, no delivery guarantee. Use TCP for web pages and files; UDP for games, voice and DNS.",
        "TCP is faster than UDP.",
        "TCP guarantees delivery and order; UDP does not, which makes it lighter.",
    ),
    (
        "Convert 5 miles to kilometres and show the working.",
        "5 miles × 1.609 km/mile ≈ **8.05 km**.",
        "5 miles is about 3.1 km.",
        "One mile is 1.609 km, so 5 miles is 8.045 km, about 8 km.",
    ),
    (
        "Give me a SQL query that counts orders per customer.",
        "```sql\nSELECT customer_id, COUNT(*) AS orders\nFROM orders\nGROUP BY customer_id\nORDER BY orders DESC;\n```",
        "SELECT * FROM orders;",
        "Group by the customer: `SELECT customer_id, count(*) FROM orders GROUP BY 1;`",
    ),
]


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


def ensure_users(project: Project) -> list[DemoLogin]:
    users = get_user_model().objects
    logins = []
    for username, password, role, is_staff in DEMO_USERS:
        user = users.filter(username=username).first()
        if user is None:
            user = users.create_user(username=username, password=password)
        user.is_staff = user.is_superuser = is_staff
        user.save(update_fields=["is_staff", "is_superuser"])
        services.add_member(project_id=project.pk, user_id=user.pk, role=role)
        logins.append(DemoLogin(username, password, role))
    return logins


@transaction.atomic
def load_demo() -> tuple[Project, list[DemoLogin]]:
    project = Project.objects.filter(name=DEMO_PROJECT).first()
    if project is None:
        project = services.create_project(
            name=DEMO_PROJECT,
            guidelines=GUIDELINES,
            modes=("pairwise", "ranking", "rating"),
            overlap=2,
        )
    logins = ensure_users(project)
    if AnnotationTask.objects.filter(project=project).exists():
        return project, logins
    versions = {}
    for name, method in (("demo-base", "base"), ("demo-tuned", "imported")):
        versions[name] = ModelVersion.objects.filter(project=project, name=name).first() or (
            services.create_model_version(project_id=project.pk, name=name, method=method)
        )
    for content, base_answer, tuned_answer, third_answer in PROMPTS:
        prompt = services.create_prompt(
            project_id=project.pk,
            text=content if isinstance(content, str) else "",
            messages=None if isinstance(content, str) else content,
        )
        answers: list[Completion] = [
            services.create_completion(
                prompt_id=prompt.pk, text=text, model_version_id=versions[name].pk
            )
            for name, text in (("demo-base", base_answer), ("demo-tuned", tuned_answer))
        ]
        answers.append(services.create_completion(prompt_id=prompt.pk, text=third_answer))
        services.create_task(prompt_id=prompt.pk, completion_ids=[a.pk for a in answers[:2]])
        services.create_task(
            prompt_id=prompt.pk, completion_ids=[a.pk for a in answers], mode="ranking"
        )
    return project, logins


ARENA_PROJECT = "Demo: model arena"
ARENA_BATTLES = 1200
# Hidden quality (log-odds) of each made-up model, and how often it dresses an answer up in
# markdown. The simulated judges favour markdown, so "arena-chatty" rates above its quality until
# style is held fixed; each model writes both ways, which lets style control tell the two apart.
ARENA_MODELS = {
    "arena-large": (1.0, 0.5),
    "arena-medium": (0.4, 0.3),
    "arena-small": (-0.4, 0.2),
    "arena-chatty": (-0.2, 0.9),
}
MARKDOWN_PULL = 0.8
ARENA_TOPICS = [
    "choose a database for a small web app",
    "keep houseplants alive in winter",
    "explain recursion to a new programmer",
    "plan a week of cheap vegetarian dinners",
    "prepare for a job interview",
    "speed up a slow laptop",
    "learn a language in a year",
    "write a good bug report",
    "reduce food waste at home",
    "start running without getting injured",
    "pick a first programming language",
    "back up family photos",
]


def arena_answer(model: str, topic: str, markdown: bool) -> str:
    """A made-up model's answer, plain or dressed up in markdown (the same content)."""
    points = {
        "arena-large": [
            "decide what matters most",
            "try the simplest option for a week",
            "keep what worked and change one thing at a time",
        ],
        "arena-medium": ["begin with the basics", "build a habit", "review after a month"],
        "arena-small": ["go slowly", "ask someone"],
        "arena-chatty": [
            "it depends on your situation",
            "everyone is different",
            "consider your options",
        ],
    }[model]
    if markdown:
        items = "\n".join(f"- {point};" for point in points)
        return f"## How to {topic}\n\n**In short:**\n{items}"
    return f"To {topic}: {', '.join(points)}."


def arena_battle_lines(count: int, seed: int = 0) -> list[str]:
    """Chatbot Arena JSONL lines judged by simulated judges with the hidden qualities above."""
    rng = random.Random(seed)
    names = list(ARENA_MODELS)
    lines = []
    for n in range(count):
        model_a, model_b = rng.sample(names, 2)
        (quality_a, markdown_rate_a), (quality_b, markdown_rate_b) = (
            ARENA_MODELS[model_a],
            ARENA_MODELS[model_b],
        )
        markdown_a, markdown_b = rng.random() < markdown_rate_a, rng.random() < markdown_rate_b
        pull = quality_a - quality_b + MARKDOWN_PULL * (markdown_a - markdown_b)
        draw = rng.random()
        if draw < 0.04 and quality_a < 0 and quality_b < 0:
            winner = "tie (bothbad)"
        elif draw < 0.14:
            winner = "tie"
        else:
            winner = "model_a" if rng.random() < 1 / (1 + math.exp(-pull)) else "model_b"
        topic = ARENA_TOPICS[n % len(ARENA_TOPICS)]
        lines.append(
            json.dumps(
                {
                    "model_a": model_a,
                    "model_b": model_b,
                    "winner": winner,
                    "prompt": f"How do I {topic}?",
                    "response_a": arena_answer(model_a, topic, markdown_a),
                    "response_b": arena_answer(model_b, topic, markdown_b),
                }
            )
        )
    return lines


@transaction.atomic
def load_arena_demo() -> Project:
    """The arena project with its battles imported once; the demo logins are members."""
    project = Project.objects.filter(name=ARENA_PROJECT).first()
    if project is None:
        project = services.create_project(name=ARENA_PROJECT, modes=("pairwise",))
    ensure_users(project)
    if not ImportBatch.objects.filter(project=project).exists():
        import_jsonl(
            project_id=project.pk,
            user_id=None,
            lines=arena_battle_lines(ARENA_BATTLES),
            format="arena",
            source="demo battles",
        )
    return project
