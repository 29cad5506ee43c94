"""What the annotator and reviewer pages show: a task's prompt and outputs, rendered, in the order
a lease shows them, each output knowing its canonical letter (task position 0 is "A")."""

import string
from collections import Counter
from dataclasses import dataclass

from django.utils.safestring import SafeString

from annotations import rendering
from feedback.models import AnnotationTask, Assignment, Completion, Judgment, Prompt
from feedback.models.judgments import LIKERT_MAX, LIKERT_MIN
from feedback.models.projects import JudgmentMode
from feedback.models.prompts import is_cut_off
from feedback.selectors import PromptDetail, TaskShown, judgment_answer

LIKERT_SCALE = list(range(LIKERT_MIN, LIKERT_MAX + 1))
SIDES = ("left", "right")
PAIRWISE_LABELS = {"a": "A better", "b": "B better", "tie": "Tie", "both_bad": "Both bad"}


@dataclass(frozen=True)
class OutputView:
    completion_id: int
    number: int  # 1-based place on screen: the key that picks it
    letter: str  # canonical name: "a" is task position 0
    html: SafeString
    diff_html: SafeString | None
    snippet: str  # plain-text opening, to recognise the output on a ranking chip
    cut_off: bool = False  # generation stopped at the token limit

    @property
    def number_label(self) -> str:
        return str(self.number)

    @property
    def letter_upper(self) -> str:
        return self.letter.upper()

    @property
    def side(self) -> str:
        """ "left"/"right" in a pairwise task (meaningless beyond two outputs)."""
        return SIDES[self.number - 1] if self.number <= 2 else ""


@dataclass(frozen=True)
class PromptView:
    chat: list[rendering.ChatTurn] | None
    html: SafeString | None


@dataclass(frozen=True)
class TaskView:
    task_id: int
    mode: str
    prompt: PromptView
    outputs: list[OutputView]
    has_differences: bool
    asks_ratings: bool


SNIPPET_CHARS = 60


def snippet_of(text: str) -> str:
    """The first words of an output on one line, markdown punctuation dropped."""
    flat = " ".join(text.replace("`", "").replace("*", "").replace("#", "").split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1].rstrip() + "…"


def letter_of(position: int) -> str:
    return string.ascii_lowercase[position]


def prompt_view(shown: TaskShown) -> PromptView:
    return rendered_prompt(shown.prompt_text, shown.prompt_messages)


def rendered_prompt(text: str, messages: list[dict[str, str]] | None) -> PromptView:
    if messages is not None:
        return PromptView(chat=rendering.render_chat(messages), html=None)
    return PromptView(chat=None, html=rendering.render_markdown(text))


@dataclass(frozen=True)
class BrowsedOutput:
    """One output on the prompt browser's page, under the name of the model that wrote it."""

    completion: Completion
    label: str  # its model version's name, or "Output #<id>" for an output of no known model
    html: SafeString
    cut_off: bool


@dataclass(frozen=True)
class BrowsedTask:
    task: AnnotationTask
    shows: str  # the labels of its outputs, in task order
    verdicts: str  # its judgments' answers in those labels, e.g. "gpt-4 better ×2 · Tie"


def browsed_prompt(
    detail: PromptDetail,
) -> tuple[PromptView, list[BrowsedOutput], list[BrowsedTask]]:
    """The prompt browser's page of one prompt: the prompt, its outputs and the tasks over them."""
    outputs = [
        BrowsedOutput(
            completion=completion,
            label=completion.model_version.name
            if completion.model_version
            else f"Output #{completion.pk}",
            html=rendering.render_markdown(completion.text),
            cut_off=is_cut_off(completion.generation_settings.get("finish_reason")),
        )
        for completion in detail.completions
    ]
    labels = {output.completion.pk: output.label for output in outputs}
    tasks = []
    for task in detail.tasks:
        shown = [item.completion_id for item in task.items.all()]
        named = [labels.get(cid, "?") for cid in shown]
        # Two samples of one model version share its name: their ids tell them apart.
        names = {
            cid: name if named.count(name) == 1 else f"{name} #{cid}"
            for cid, name in zip(shown, named, strict=True)
        }
        answers = Counter(describe_answer(j, names) for j in task.judgments.all())
        verdicts = " · ".join(
            answer if count == 1 else f"{answer} ×{count}"
            for answer, count in answers.most_common()
        )
        tasks.append(BrowsedTask(task, " · ".join(named), verdicts))
    return rendered_prompt(detail.prompt.text, detail.prompt.messages), outputs, tasks


def task_view(
    task_id: int, shown: TaskShown, *, rating_enabled: bool, shown_order: list[int] | None = None
) -> TaskView:
    """The task's outputs in `shown_order` (completion ids), canonical order when None.
    `shown` is what the lease carries (or selectors.task_shown); `rating_enabled` is the
    project's (a ranking then asks for ratings too)."""
    outputs_by_id = shown.outputs
    order = shown_order or sorted(outputs_by_id, key=lambda cid: outputs_by_id[cid].position)
    texts = [outputs_by_id[cid].text for cid in order]
    diffs = rendering.differences(texts)
    outputs = [
        OutputView(
            completion_id=cid,
            number=index + 1,
            letter=letter_of(outputs_by_id[cid].position),
            html=rendering.render_markdown(text),
            diff_html=diffs[index] if diffs else None,
            snippet=snippet_of(text),
            cut_off=outputs_by_id[cid].cut_off,
        )
        for index, (cid, text) in enumerate(zip(order, texts, strict=True))
    ]
    asks_ratings = shown.mode == JudgmentMode.RATING or (
        shown.mode == JudgmentMode.RANKING and rating_enabled
    )
    return TaskView(
        task_id=task_id,
        mode=shown.mode,
        prompt=prompt_view(shown),
        outputs=outputs,
        has_differences=diffs is not None,
        asks_ratings=asks_ratings,
    )


def idempotency_key(assignment: Assignment) -> str:
    """One key per lease: every retry of this lease's submission carries the same key."""
    return f"lease-{assignment.pk}-{int(assignment.leased_at.timestamp() * 1000)}"


@dataclass(frozen=True)
class JudgmentRow:
    judgment: Judgment
    summary: str  # the answer in words, with outputs named by canonical letter
    answer_group: int  # judgments with the same answer share a group number (0 = most common)
    is_majority: bool
    shown_letters: str  # the on-screen order this annotator saw, e.g. "B, A"
    ratings_summary: str  # Likert scores given alongside a ranking, if any

    @property
    def seconds(self) -> int:
        return round((self.judgment.time_spent_ms or 0) / 1000)


STRENGTH_WORDS = {"slight": "slightly ", "much": "much "}


def describe_answer(judgment: Judgment, names: dict[int, str]) -> str:
    """A judgment's answer with each output called by its name (`names`: completion id -> name,
    in task order), e.g. "A much better" or "B > A = C" in canonical letters."""
    if judgment.kind == JudgmentMode.PAIRWISE:
        if judgment.choice in ("a", "b"):
            winner = list(names.values())["ab".index(judgment.choice)]
            return f"{winner} {STRENGTH_WORDS.get(judgment.strength or '', '')}better"
        return PAIRWISE_LABELS.get(judgment.choice or "", judgment.choice or "")
    if judgment.kind == JudgmentMode.RANKING:
        return describe_ranking(judgment.ranking or [], names)
    return describe_ratings(judgment.ratings or {}, names)


def describe_ratings(ratings: dict[str, int], names: dict[int, str]) -> str:
    return ", ".join(
        f"{names.get(int(cid), '?')}: {score}"
        for cid, score in sorted(ratings.items(), key=lambda kv: names.get(int(kv[0]), "?"))
    )


def describe_ranking(ranking: list[list[int]], names: dict[int, str]) -> str:
    return " > ".join(" = ".join(sorted(names.get(cid, "?") for cid in group)) for group in ranking)


def letter_names(letters: dict[int, str]) -> dict[int, str]:
    """Outputs named by their canonical letters, in task order."""
    return {cid: letter.upper() for cid, letter in sorted(letters.items(), key=lambda kv: kv[1])}


def judgment_rows(judgments: list[Judgment], letters: dict[int, str]) -> list[JudgmentRow]:
    """Judgments with their answers described and grouped, so the page can colour agreement."""
    answers = [judgment_answer(j) for j in judgments]
    counts = Counter(answers)
    ranked = [answer for answer, _ in counts.most_common()]
    top = counts.most_common(1)[0][1] if counts else 0
    is_unique_top = sum(1 for c in counts.values() if c == top) == 1
    names = letter_names(letters)
    return [
        JudgmentRow(
            judgment=j,
            summary=describe_answer(j, names),
            answer_group=ranked.index(answer),
            is_majority=is_unique_top and counts[answer] == top and len(judgments) > 1,
            shown_letters=", ".join(letters.get(cid, "?").upper() for cid in j.shown_order),
            ratings_summary=(
                describe_ratings(j.ratings, names)
                if j.ratings and j.kind != JudgmentMode.RATING
                else ""
            ),
        )
        for j, answer in zip(judgments, answers, strict=True)
    ]


@dataclass(frozen=True)
class ReviewRow:
    task: AnnotationTask
    snippet: str
    disagree: bool
    flag_count: int
    adjudication: object | None


def prompt_snippet(prompt: Prompt) -> str:
    """The prompt on one line: its text, or a chat's last user message."""
    if prompt.is_chat:
        users = [m["content"] for m in prompt.messages if m["role"] == "user"]
        return snippet_of(users[-1] if users else prompt.messages[-1]["content"])
    return snippet_of(prompt.text)


def review_rows(tasks: list[AnnotationTask], counts: dict[int, tuple[int, int]]) -> list[ReviewRow]:
    """Rows of the review list: tasks from selectors.tasks_for_review, with their (distinct
    answers, flags) from selectors.review_counts."""
    rows = []
    for task in tasks:
        answers, flags = counts[task.pk]
        try:
            adjudication = task.adjudication
        except AnnotationTask.adjudication.RelatedObjectDoesNotExist:
            adjudication = None
        rows.append(
            ReviewRow(
                task=task,
                snippet=prompt_snippet(task.prompt),
                disagree=answers > 1,
                flag_count=flags,
                adjudication=adjudication,
            )
        )
    return rows


def describe_adjudication(adjudication, letters: dict[int, str]) -> str:
    """What a reviewer decided, in canonical letters."""
    if adjudication is None:
        return ""
    if adjudication.action == "accept":
        judgment = adjudication.accepted_judgment
        if judgment is None:
            return "Accepted a judgment that has since been deleted"
        answer = describe_answer(judgment, letter_names(letters))
        return f"Accepted {judgment.annotator.username}'s judgment: {answer}"
    if adjudication.choice:
        return f"Overridden: {PAIRWISE_LABELS[adjudication.choice]}"
    return f"Overridden: {describe_ranking(adjudication.ranking or [], letter_names(letters))}"
