"""Bulk JSONL import: every format, the all-or-nothing rule, and the HH round trip."""

import gzip
import hashlib
import json
import sys
import threading
from pathlib import Path

import pytest
from django.utils import timezone

from feedback import services
from feedback.errors import ServiceError
from feedback.hash_filter import HashFilter
from feedback.models import (
    AnnotationTask,
    Completion,
    ImportBatch,
    Judgment,
    ModelVersion,
    PreferencePair,
    Prompt,
)
from feedback.services import imports
from feedback.services.exports import ExportFilters, ExportRequest, start_export
from feedback.services.imports import IMPORT_POLICY, import_jsonl
from feedback.services.projects import IMPORT_USERNAME

pytestmark = pytest.mark.django_db
HH_FILE = Path("/work/shared/data/hh_rlhf_harmless_base_test.jsonl.gz")
if not HH_FILE.exists():  # CI lays shared/ beside the clone
    HH_FILE = (
        Path(__file__).resolve().parents[3] / "shared/data/hh_rlhf_harmless_base_test.jsonl.gz"
    )


def jsonl(*records) -> list[str]:
    return [json.dumps(record) for record in records]


def refusal(project, lines: list, format: str) -> ServiceError:
    """The error an import of `lines` is refused with."""
    with pytest.raises(ServiceError) as refused:
        import_jsonl(project_id=project.pk, user_id=None, lines=lines, format=format)
    return refused.value


def export(project, **request) -> list[dict]:
    stream = start_export(ExportRequest(project_id=project.pk, **request), user_id=None)
    return [json.loads(line) for line in b"".join(stream.chunks()).decode().splitlines()]


def test_trl_standard_lines_become_pairs_without_tasks_or_judgments(project):
    result = import_jsonl(
        project_id=project.pk,
        user_id=None,
        lines=jsonl(
            {"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 2.5},
            {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
        ),
        format="trl",
    )
    assert result.created == {"prompts": 2, "completions": 4, "pairs": 2}
    pair = PreferencePair.objects.get(prompt__text="2+2?")
    assert (pair.chosen.text, pair.rejected.text, pair.margin, pair.policy) == (
        "4",
        "5",
        2.5,
        IMPORT_POLICY,
    )
    # The pair is the file's statement; provenance is its policy and its completions' batch.
    assert pair.chosen.import_batch == pair.rejected.import_batch == result.batch
    assert not pair.judgments.exists()
    assert not AnnotationTask.objects.exists() and not Judgment.objects.exists()
    assert ImportBatch.objects.get().line_count == 2
    assert export(project, margin=True) == [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 2.5},
        {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon", "margin": 0.0},
    ]


def test_trl_conversational_explicit_and_implicit_prompts_round_trip(project):
    user = {"role": "user", "content": "Hi"}
    explicit = {
        "prompt": [{"role": "system", "content": "Be brief."}, user],
        "chosen": [{"role": "assistant", "content": "Hello."}],
        "rejected": [{"role": "assistant", "content": "Greetings, human."}],
    }
    implicit = {
        "chosen": [user, {"role": "assistant", "content": "Hey"}],
        "rejected": [user, {"role": "assistant", "content": "Go away"}],
    }
    import_jsonl(
        project_id=project.pk, user_id=None, lines=jsonl(explicit, implicit), format="auto"
    )
    out = export(project, style="conversational")
    assert out[0] == explicit
    assert out[1] == {
        "prompt": [user],
        "chosen": [{"role": "assistant", "content": "Hey"}],
        "rejected": [{"role": "assistant", "content": "Go away"}],
    }


def test_trl_reads_a_string_prompt_beside_conversations_as_trl_does(project):
    # UltraFeedback binarized: a string prompt, and whole conversations that hold it again.
    user = {"role": "user", "content": "What color is the sky?"}
    ultrafeedback = {
        "prompt": "What color is the sky?",
        "prompt_id": "abc",
        "chosen": [user, {"role": "assistant", "content": "Blue."}],
        "rejected": [user, {"role": "assistant", "content": "Green."}],
        "score_chosen": 8.0,
        "score_rejected": 2.0,
    }
    # A string prompt and answers of one assistant message each: a text prompt.
    mixed = {
        "prompt": "Name a fruit.",
        "chosen": [{"role": "assistant", "content": "Apple."}],
        "rejected": [{"role": "assistant", "content": "Rock."}],
    }
    import_jsonl(project_id=project.pk, user_id=None, lines=jsonl(ultrafeedback, mixed))
    assert export(project, style="conversational")[0] == {
        "prompt": [user],
        "chosen": [{"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "assistant", "content": "Green."}],
    }
    assert export(project)[1] == {
        "prompt": "Name a fruit.",
        "chosen": "Apple.",
        "rejected": "Rock.",
    }

    parted = {**ultrafeedback, "rejected": [{"role": "user", "content": "Other?"}, user]}
    with pytest.raises(ServiceError) as refused:
        import_jsonl(project_id=project.pk, user_id=None, lines=jsonl(parted), format="trl")
    assert refused.value.details == [
        "line 1: 'chosen' and 'rejected' must share every message but the last."
    ]


def test_arena_battles_keep_models_and_verdicts_ties_make_no_pair(project):
    lines = jsonl(
        {
            "model_a": "alpha",
            "model_b": "beta",
            "winner": "model_b",
            "conversation_a": [
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A-alpha"},
            ],
            "conversation_b": [
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A-beta"},
            ],
        },
        {
            "model_a": "beta",
            "model_b": "gamma",
            "winner": "tie (bothbad)",
            "prompt": "Q2",
            "response_a": "x",
            "response_b": "y",
        },
        {
            "model_a": "alpha",
            "model_b": "gamma",
            "winner": "tie",
            "prompt": "Q3",
            "response_a": "x",
            "response_b": "y",
        },
    )
    result = import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="arena")
    assert result.created["model_versions"] == 3 and result.created["pairs"] == 1
    assert sorted(Judgment.objects.values_list("choice", flat=True)) == ["b", "both_bad", "tie"]
    pair = PreferencePair.objects.get()
    assert pair.judgments.get().annotator.username == IMPORT_USERNAME
    assert AnnotationTask.objects.filter(status="complete", judgment_count=1).count() == 3
    assert (pair.chosen.text, pair.chosen.model_version.name) == ("A-beta", "beta")
    assert (pair.rejected.text, pair.rejected.model_version.name) == ("A-alpha", "alpha")
    # A chat prompt in TRL's standard (string) style reads as an HH transcript.
    assert export(project, filters=ExportFilters(include_ties=True)) == [
        {
            "prompt": "\n\nHuman: Q1\n\nAssistant:",
            "chosen": " A-beta",
            "rejected": " A-alpha",
            "is_tie": False,
        }
    ]


def test_battles_are_not_given_to_a_person_who_took_the_import_accounts_name(project, make_user):
    make_user(username=IMPORT_USERNAME)  # before the name was reserved
    battle = {"model_a": "x", "model_b": "y", "winner": "model_a", "prompt": "Q"}
    battle.update(response_a="A", response_b="B")
    with pytest.raises(ServiceError, match="belongs to a person"):
        import_jsonl(project_id=project.pk, user_id=None, lines=jsonl(battle), format="arena")
    assert not Judgment.objects.exists()


def test_multi_turn_battles_keep_each_models_side_from_where_they_part(project):
    def message(role, content):
        return {"role": role, "content": content}

    def battle(conversation_a, conversation_b):
        return {
            "model_a": "alpha",
            "model_b": "beta",
            "winner": "model_a",
            "conversation_a": conversation_a,
            "conversation_b": conversation_b,
        }

    u1, u2 = message("user", "Hi"), message("user", "And then?")
    same = message("assistant", "Hello.")
    lines = jsonl(
        # Part at the first answer: the rest of each conversation is its model's output.
        battle(
            [u1, message("assistant", "Hey."), u2, message("assistant", "Then lunch.")],
            [u1, message("assistant", "Yo."), u2, message("assistant", "Nothing.")],
        ),
        # The same first answer: the prompt runs up to where they part.
        battle(
            [u1, same, u2, message("assistant", "A")], [u1, same, u2, message("assistant", "B")]
        ),
    )
    import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="arena")
    first, second = PreferencePair.objects.order_by("pk")
    assert first.prompt.messages == [u1]
    assert first.chosen.text == "Hey.\n\nUser: And then?\n\nAssistant: Then lunch."
    assert first.rejected.text == "Yo.\n\nUser: And then?\n\nAssistant: Nothing."
    assert second.prompt.messages == [u1, same, u2]
    assert (second.chosen.text, second.rejected.text) == ("A", "B")

    unrelated = battle([u1, message("assistant", "x")], [u2, message("assistant", "y")])
    assert refusal(project, jsonl(unrelated), "arena").details == [
        "line 1: 'conversation_a' and 'conversation_b' must start with the same prompt, then an "
        "answer each."
    ]


def test_kaggle_arena_battles_with_winner_flags_and_encoded_turns(project):
    # lmsys-arena-human-preference-55k's shape: turns JSON-encoded in strings, null for no answer.
    def battle(prompt, response_a, response_b, flags, **extra):
        a, b, tie = flags
        return {
            "id": 30192,
            "model_a": "gpt-4-1106-preview",
            "model_b": "gpt-4-0613",
            "prompt": json.dumps(prompt),
            "response_a": json.dumps(response_a),
            "response_b": json.dumps(response_b),
            "winner_model_a": a,
            "winner_model_b": b,
            "winner_tie": tie,
            **extra,
        }

    lines = jsonl(
        battle(["Is it right?"], ["Yes."], ["No."], (1, 0, 0)),
        battle(["Hi", "And then?"], ["Hey.", "Lunch."], ["Yo.", None], (0, 1, 0)),
        battle(["Q3"], ["x"], ["y"], (0, 0, 1)),
    )
    import_jsonl(project_id=project.pk, user_id=None, lines=lines)  # the format told by its keys
    assert sorted(Judgment.objects.values_list("choice", flat=True)) == ["a", "b", "tie"]
    first, second = PreferencePair.objects.order_by("pk")
    assert (first.prompt.text, first.chosen.text, first.rejected.text) == (
        "Is it right?",
        "Yes.",
        "No.",
    )
    assert first.chosen.model_version.name == "gpt-4-1106-preview"
    assert second.prompt.messages == [{"role": "user", "content": "Hi"}]
    assert second.chosen.text == "Yo.\n\nUser: And then?\n\nAssistant: "
    assert second.rejected.text == "Hey.\n\nUser: And then?\n\nAssistant: Lunch."
    # The scraped answers hold lone surrogates (half an emoji), which no text can: U+FFFD.
    cut = battle(["Q4"], ["cut \ud83d off"], ["fine"], (1, 0, 0))
    import_jsonl(project_id=project.pk, user_id=None, lines=jsonl(cut))
    assert PreferencePair.objects.order_by("pk").last().chosen.text == "cut \ufffd off"

    assert refusal(
        project,
        jsonl(
            battle(["Q"], ["x"], ["y"], (1, 1, 0)),
            battle(["Q"], ["x"], ["y"], (True, False, False)),
            battle(["Q", "Q2"], ["x"], ["y"], (1, 0, 0)),
            {**battle(["Q"], ["x"], ["y"], (1, 0, 0)), "response_a": '["unclosed'},
            {**battle(["Q"], ["x"], ["y"], (1, 0, 0)), "response_b": "[1]"},
            {**battle(["Q"], ["x"], ["y"], (1, 0, 0)), "response_a": '["\\ud83d", '},
        ),
        "arena",
    ).details == [
        "line 1: one of 'winner_model_a', 'winner_model_b' and 'winner_tie' must be 1 and the "
        "others 0; got 1, 1, 0.",
        "line 2: one of 'winner_model_a', 'winner_model_b' and 'winner_tie' must be 1 and the "
        "others 0; got True, False, False.",
        "line 3: 'prompt', 'response_a' and 'response_b' must hold as many turns each; got 2, 1 "
        "and 1.",
        "line 4: 'response_a' must be a JSON-encoded list of turns: unexpected end of data: "
        "line 1 column 11 (char 10).",
        "line 5: 'response_b' must be a list of turns (strings).",
        "line 6: 'response_a' must be a JSON-encoded list of turns: Expecting value: line 1 "
        "column 12 (char 11).",
    ]


def test_prompts_completions_and_model_versions(project):
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="model_versions",
        lines=jsonl({"name": "base-7b", "method": "base", "base_model": "org/base-7b"}),
    )
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="prompts",
        lines=jsonl({"prompt": "Tell a joke", "metadata": {"topic": "fun"}, "split": "held_out"}),
    )
    result = import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="completions",
        lines=jsonl(
            {
                "prompt": "Tell a joke",
                "completion": "Knock knock",
                "model": "base-7b",
                "token_count": 2,
            },
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "completion": "Hello",
                "model": "new-model",
            },
        ),
    )
    assert result.created == {"prompts": 1, "model_versions": 1, "completions": 2}
    joke = Prompt.objects.get(text="Tell a joke")
    assert joke.split == "held_out" and joke.metadata == {"topic": "fun"}
    completion = Completion.objects.get(text="Knock knock")
    assert completion.prompt == joke and completion.model_version.base_model == "org/base-7b"
    assert ModelVersion.objects.get(name="new-model").method == "imported"


def test_every_kind_of_value_is_stored_as_sent(project):
    """Rows go to PostgreSQL as binary COPY: text with characters that text COPY escapes, JSON
    with non-ASCII, whole-number margins into a float column, and the timestamps the database
    fills in itself."""
    before = timezone.now()
    text = 'Tab\there, newline\nthere, back\\slash, "quotes", émoji 🙂 and 中文'
    settings = {"temperature": 0.7, "stop": ["\n", "🙂"], "nested": {"ünïcode": [1, None, True]}}
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="prompts",
        lines=jsonl({"prompt": text, "metadata": {"source": "wiki ✓", "n": 3}}),
    )
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="completions",
        lines=jsonl(
            {"prompt": text, "completion": text, "generation_settings": settings, "token_count": 7}
        ),
    )
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="trl",
        lines=jsonl(
            {
                "prompt": [{"role": "user", "content": "Grüße 👋"}],
                "chosen": [{"role": "assistant", "content": "Hallo\tdu"}],
                "rejected": [{"role": "assistant", "content": "\\n is not a newline"}],
                "margin": 2,
            }
        ),
    )
    prompt = Prompt.objects.get(text=text)
    assert prompt.metadata == {"source": "wiki ✓", "n": 3}
    completion = Completion.objects.get(prompt=prompt)
    assert (completion.text, completion.generation_settings, completion.token_count) == (
        text,
        settings,
        7,
    )
    pair = PreferencePair.objects.select_related("prompt", "chosen", "rejected").get()
    assert pair.prompt.messages == [{"role": "user", "content": "Grüße 👋"}]
    assert (pair.chosen.text, pair.rejected.text) == ("Hallo\tdu", "\\n is not a newline")
    assert pair.margin == 2.0 and isinstance(pair.margin, float)
    assert pair.chosen.generation_settings == {}
    for row in (prompt, completion, pair, pair.chosen):
        assert before <= row.created_at <= timezone.now()


def test_a_file_with_bad_lines_is_refused_whole_naming_every_bad_line(project):
    lines = [
        json.dumps({"prompt": "ok", "chosen": "a", "rejected": "b"}),
        "{not json",
        json.dumps({"prompt": "p", "chosen": "a"}),
        json.dumps(["a list"]),
        "",
        json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "margin": -1}),
        json.dumps({"prompt": [{"role": "robot", "content": "x"}], "chosen": [], "rejected": []}),
        json.dumps({"prompt": "fine", "chosen": "a", "rejected": "b"}),
    ]
    error = refusal(project, lines, "trl")
    details = error.details
    assert [d.split(":")[0] for d in details] == ["line 2", "line 3", "line 4", "line 6", "line 7"]
    assert "not valid JSON" in details[0]
    assert "missing 'rejected'" in details[1]
    assert "expected a JSON object" in details[2]
    assert "margin" in details[3]
    assert "5 of 8 lines are invalid" in error.message
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists()
    assert not Judgment.objects.exists() and not AnnotationTask.objects.exists()


def test_completion_lines_name_what_is_wrong(project):
    lines = [
        json.dumps({"prompt": "p", "completion": "c", "token_count": 12}),
        json.dumps({"prompt": "p", "completion": "c", "token_count": 2**31}),
        json.dumps({"prompt": "p", "completion": "c", "token_count": -1}),
        json.dumps({"prompt": "p", "completion": "c", "model": " "}),
        json.dumps({"prompt": "p", "completion": "c", "generation_settings": [1]}),
        json.dumps({"prompt": "p"}),
    ]
    error = refusal(project, lines, "completions")
    details = error.details
    # Lines 2 and 3 share their reason: it is given once, for both.
    assert [d.split(":")[0] for d in details] == ["lines 2-3", "line 4", "line 5", "line 6"]
    assert "'token_count' must be a whole number from 0 to 2,147,483,647" in details[0]
    assert "'model'" in details[1] and "'generation_settings'" in details[2]
    assert "missing 'completion'" in details[3]
    assert "5 of 6 lines are invalid" in error.message
    assert not Completion.objects.exists() and not Prompt.objects.exists()


def test_bad_lines_are_named_once_per_reason(project, monkeypatch):
    """A file in the wrong format is refused with a message per reason, not one per line (a
    million of them held and sent back); past the limits the rest are counted."""
    good = json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"})
    lines = [json.dumps({"prompt": f"p{n}", "completion": "c"}) for n in range(5000)]
    lines[2500] = good
    lines[4000] = "{"
    error = refusal(project, lines, "trl")
    assert "4999 of 5000 lines are invalid" in error.message
    assert error.details[0] == "lines 1-2500, 2502-4000, 4002-5000: missing 'chosen', 'rejected'."
    assert error.details[1].startswith("line 4001: not valid JSON")
    monkeypatch.setattr(imports.BadLines, "MAX_REASONS", 1)
    monkeypatch.setattr(imports.BadLines, "MAX_RUNS", 2)
    error = refusal(project, lines, "trl")
    assert error.details == [
        "lines 1-2500, 2502-4000: missing 'chosen', 'rejected'.",
        "1000 more bad lines, not listed.",
    ]


def test_values_of_the_wrong_type_are_named_not_a_server_error(project):
    battle = {"model_a": "x", "model_b": "y", "prompt": "Q", "response_a": "A", "response_b": "B"}
    cases = [
        ("arena", {**battle, "winner": ["model_a"]}, "'winner' must be one of"),
        ("prompts", {"prompt": [{"role": ["user"], "content": "hi"}]}, "has role ['user']"),
        (
            "trl",
            {
                "prompt": [{"role": "user", "content": "Q"}],
                "chosen": [{"role": ["x"], "content": "A"}],
                "rejected": [{"role": "assistant", "content": "B"}],
            },
            "'chosen'",
        ),
    ]
    for format, record, message in cases:
        error = refusal(project, jsonl(record), format)
        assert message in error.details[0], (format, error.details)


def test_model_version_lines_name_what_is_wrong(project, settings):
    lines = [
        json.dumps({"name": "ok", "base_model": "org/base", "adapter_path": "/a"}),
        json.dumps({"name": "long base", "base_model": "b" * 501}),
        json.dumps({"name": "long path", "adapter_path": "p" * 1001}),
        json.dumps({"name": "bad method", "method": "rlhf"}),
        json.dumps({"name": ""}),
        json.dumps({"name": "theirs", "adapter_path": f"{settings.ARTIFACT_ROOT}/jobs/dpo-1/"}),
    ]
    error = refusal(project, lines, "model_versions")
    details = error.details
    assert [d.split(":")[0] for d in details] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert "'base_model' must be a string of at most 500 characters" in details[0]
    assert "'adapter_path' must be a string of at most 1000 characters" in details[1]
    assert "'method'" in details[2] and "'name'" in details[3]
    assert "inside Arbiter's artifact folder" in details[4]
    assert not ModelVersion.objects.exists()


def test_a_clash_found_while_writing_rolls_everything_back(project):
    import_jsonl(
        project_id=project.pk, user_id=None, format="model_versions", lines=jsonl({"name": "m1"})
    )
    with pytest.raises(ServiceError) as refused:
        import_jsonl(
            project_id=project.pk,
            user_id=None,
            format="model_versions",
            lines=jsonl({"name": "m2"}, {"name": "m1"}, {"name": "m2"}),
        )
    assert refused.value.code == "conflict"
    assert len(refused.value.details) == 2
    assert list(ModelVersion.objects.values_list("name", flat=True)) == ["m1"]
    assert ImportBatch.objects.count() == 1


def test_preference_data_needs_a_pairwise_project(make_user):
    ranking_only = services.create_project(name="Rankings", modes=("ranking",))
    with pytest.raises(ServiceError, match="pairwise"):
        import_jsonl(
            project_id=ranking_only.pk,
            user_id=None,
            format="trl",
            lines=jsonl({"prompt": "p", "chosen": "a", "rejected": "b"}),
        )


def test_nul_characters_are_refused_by_line(project):
    with pytest.raises(ServiceError) as refused:
        import_jsonl(
            project_id=project.pk,
            user_id=None,
            format="prompts",
            lines=jsonl({"prompt": "fine"}, {"prompt": "bad\u0000"}),
        )
    assert refused.value.details == [
        "line 2: contains a NUL character (\\u0000), which cannot be stored."
    ]


def test_json_that_python_allows_but_json_does_not_is_refused_by_line(project):
    # NaN and a lone surrogate parse with json.loads, but neither is JSON nor storable.
    lines = [
        b'{"prompt": "fine"}',
        b'{"prompt": "x", "metadata": {"n": NaN}}',
        b'{"prompt": "\\ud800"}',
    ]
    details = refusal(project, lines, "prompts").details
    assert [d.split(":")[0] for d in details] == ["line 2", "line 3"]
    assert all("not valid JSON" in d for d in details)
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists()


def test_read_ahead_hands_over_items_and_errors_and_stops_with_its_consumer():
    def numbers(fail_at=None):
        n = 0
        while True:
            if n == fail_at:
                raise OSError("the upload broke off")
            yield n
            n += 1

    with imports.read_ahead(numbers()) as items:  # endless: leaving must stop the thread
        assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(OSError, match="broke off"), imports.read_ahead(numbers(3)) as items:
        assert list(items) == "never reached"
    assert not [t for t in threading.enumerate() if t.name == "import-read-ahead"]


def test_a_shortened_switch_interval_is_restored_when_its_last_holder_leaves():
    default = sys.getswitchinterval()
    quick = imports.SwitchInterval(default / 10)
    with quick.held():
        assert sys.getswitchinterval() == pytest.approx(default / 10)
        with quick.held():  # a second import alongside
            pass
        assert sys.getswitchinterval() == pytest.approx(default / 10)
    assert sys.getswitchinterval() == default


def test_a_byte_order_mark_before_the_first_line_is_ignored(project):
    bom = b"\xef\xbb\xbf"
    created = import_jsonl(
        project_id=project.pk, user_id=None, lines=[bom + b'{"prompt": "a"}', b'{"prompt": "b"}']
    ).created
    assert created == {"prompts": 2}
    assert sorted(project.prompts.values_list("text", flat=True)) == ["a", "b"]
    # Only there: elsewhere it is a stray character, and the line is refused.
    with pytest.raises(ServiceError) as refused:
        import_jsonl(project_id=project.pk, user_id=None, lines=[b'{"prompt": "c"}', bom + b"{}"])
    assert refused.value.details[0].startswith("line 2: not valid JSON")


def test_a_json_array_is_named_as_such(project):
    with pytest.raises(ServiceError) as refused:
        import_jsonl(project_id=project.pk, user_id=None, lines=[b'[{"prompt": "a"}]'])
    assert refused.value.details == [
        "line 1: expected a JSON object, got an array (JSONL has one object a line, not a list "
        "of them)."
    ]


def test_repeated_prompts_share_one_prompt_row(project):
    lines = jsonl(
        {"prompt": "same", "chosen": "a", "rejected": "b"},
        {"prompt": "same", "chosen": "c", "rejected": "d"},
    )
    import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="trl")
    import_jsonl(project_id=project.pk, user_id=None, lines=lines[:1], format="trl")
    assert Prompt.objects.count() == 1 and PreferencePair.objects.count() == 3


@pytest.mark.skipif(
    not HH_FILE.exists(), reason="needs shared/data/hh_rlhf_harmless_base_test.jsonl.gz"
)
def test_anthropic_hh_round_trips_exactly(project):
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(300)]
    import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="auto")
    originals = [json.loads(line) for line in lines]
    assert export(project, style="hh") == originals
    standard = export(project, style="standard")
    assert [row["prompt"] + row["chosen"] for row in standard] == [o["chosen"] for o in originals]
    assert [row["prompt"] + row["rejected"] for row in standard] == [
        o["rejected"] for o in originals
    ]
    conversational = export(project, style="conversational")
    first = conversational[0]
    assert first["prompt"][0] == {
        "role": "user",
        "content": "what are some pranks with a pen i can do?",
    }
    assert first["prompt"][-1]["role"] == "user"
    assert first["chosen"][0]["content"].startswith("No, sorry!")


@pytest.fixture
def small_chunks(monkeypatch):
    """Files stream through in chunks of lines; two-line chunks make every test file several."""
    monkeypatch.setattr(imports, "CHUNK_LINES", 2)
    monkeypatch.setattr(imports, "FIRST_CHUNK_LINES", 2)


def test_the_first_chunk_is_small_so_writing_starts_early(monkeypatch):
    monkeypatch.setattr(imports, "FIRST_CHUNK_LINES", 2)
    monkeypatch.setattr(imports, "CHUNK_LINES", 5)
    parser = imports.LineParser("prompts")
    lines = [json.dumps({"prompt": f"p{n}"}) for n in range(13)]
    chunks = list(parser.chunks(lines))
    assert [len(records) for records in chunks] == [2, 5, 5, 1]
    assert [r.text for records in chunks for r in records] == [f"p{n}" for n in range(13)]


def test_a_chunk_of_long_lines_stops_at_its_byte_budget(monkeypatch):
    """A gzipped file of long lines unpacks to gigabytes within a chunk's count of lines."""
    monkeypatch.setattr(imports, "CHUNK_BYTES", 100)
    parser = imports.LineParser("prompts")
    lines = [json.dumps({"prompt": f"p{n:020}"}) for n in range(7)]  # 35 bytes each
    chunks = list(parser.chunks(lines))
    assert [len(records) for records in chunks] == [3, 3, 1]
    assert [r.text for records in chunks for r in records] == [f"p{n:020}" for n in range(7)]


def test_a_bad_line_in_a_later_chunk_rolls_back_the_chunks_already_written(
    project, small_chunks, monkeypatch
):
    written = []
    write = imports.ImportWriter.write

    def counted_write(writer, records):
        write(writer, records)
        written.append(Prompt.objects.filter(project=project).count())

    monkeypatch.setattr(imports.ImportWriter, "write", counted_write)
    lines = [
        "{oops" if n == 8 else json.dumps({"prompt": "" if n == 6 else f"p{n}"}) for n in range(10)
    ]
    with pytest.raises(ServiceError) as refused:
        import_jsonl(project_id=project.pk, user_id=None, format="prompts", lines=lines)
    # The first chunk is in the table before the bad lines are read (the parse runs a chunk ahead).
    assert written[0] == 2
    assert [d.split(":")[0] for d in refused.value.details] == ["line 7", "line 9"]
    assert "2 of 10 lines are invalid" in refused.value.message
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists()


def test_chunks_share_prompts_number_battles_and_count_lines_across_the_file(project, small_chunks):
    battles = [
        {
            "model_a": "m1",
            "model_b": "m2",
            "prompt": f"q{n % 2}",
            "response_a": f"a{n}",
            "response_b": f"b{n}",
            "winner": "model_a",
        }
        for n in range(5)
    ]
    result = import_jsonl(
        project_id=project.pk, user_id=None, lines=jsonl(*battles), format="arena"
    )
    assert result.created == {
        "prompts": 2,
        "model_versions": 2,
        "completions": 10,
        "tasks": 5,
        "judgments": 5,
        "pairs": 5,
    }
    assert result.batch.line_count == 5 == result.lines
    keys = sorted(Judgment.objects.values_list("idempotency_key", flat=True))
    assert keys == [f"import-{result.batch.pk}-{n}" for n in range(1, 6)]
    assert [p["chosen"] for p in export(project)] == [f"a{n}" for n in range(5)]


def test_a_new_projects_import_asks_the_database_only_for_prompts_it_may_have_written(
    project, small_chunks, monkeypatch
):
    """Into a project without prompts, a chunk's prompts are looked up only where the import's
    filter says an earlier chunk may have written them; a false "maybe" is merely looked up."""
    asked = []
    lookup = imports.ImportWriter.known_prompt_ids

    def counted_lookup(writer, hashes, **kwargs):
        asked.append(len(hashes))
        return lookup(writer, hashes, **kwargs)

    monkeypatch.setattr(imports.ImportWriter, "known_prompt_ids", counted_lookup)
    lines = [json.dumps({"prompt": f"q{n}", "chosen": "y", "rejected": "n"}) for n in range(6)]
    lines += [json.dumps({"prompt": "q1", "chosen": "again", "rejected": "n"})]
    result = import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="trl")
    assert result.created == {"prompts": 6, "completions": 14, "pairs": 7}
    assert asked == [1]  # the last chunk's q1, which the first chunk wrote
    assert [p["prompt"] for p in export(project)] == [f"q{n}" for n in range(6)] + ["q1"]

    asked.clear()
    monkeypatch.setattr(HashFilter, "maybe_added", lambda self, digests: digests)
    other = services.create_project(name="every prompt maybe written")
    import_jsonl(project_id=other.pk, user_id=None, lines=lines, format="trl")
    assert asked == [2, 2, 2, 1]
    assert Prompt.objects.filter(project=other).count() == 6
    # A project with prompts looks every one up: the filter knows only this import's.
    asked.clear()
    import_jsonl(project_id=project.pk, user_id=None, lines=lines[:2], format="trl")
    assert asked == [2] and Prompt.objects.filter(project=project).count() == 6


def test_a_prompt_written_meanwhile_into_a_new_project_is_a_conflict(project, monkeypatch):
    """The filter knows only what the import wrote: a prompt someone else writes to the project
    once the import has begun (simulated inside the import's transaction, after its start)
    breaks the unique constraint, and nothing is kept."""
    start = imports.ImportWriter.start

    def start_then_someone_writes(*args, **kwargs):
        writer = start(*args, **kwargs)
        services.create_prompt(project_id=project.pk, text="q1")
        return writer

    monkeypatch.setattr(imports.ImportWriter, "start", staticmethod(start_then_someone_writes))
    lines = [json.dumps({"prompt": p, "chosen": "yes", "rejected": "no"}) for p in ("q0", "q1")]
    with pytest.raises(ServiceError) as refused:
        import_jsonl(project_id=project.pk, user_id=None, format="trl", lines=lines)
    assert refused.value.code == "conflict"
    assert "prompt_unique_per_project" in refused.value.message


def test_the_hash_filter_answers_maybe_for_every_added_digest_and_few_others():
    digests = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(20_000)]
    added, others = digests[:10_000], digests[10_000:]
    seen = HashFilter()
    assert seen.maybe_added(added) == [] and seen.maybe_added([]) == []
    seen.add(added)
    assert seen.maybe_added(added) == added
    assert len(seen.maybe_added(others)) < 10  # about 1e-5 of them at this fill


def test_model_versions_repeated_in_a_later_chunk_are_refused(project, small_chunks):
    with pytest.raises(ServiceError) as refused:
        import_jsonl(
            project_id=project.pk,
            user_id=None,
            format="model_versions",
            lines=jsonl({"name": "m1"}, {"name": "m2"}, {"name": "m3"}, {"name": "m1"}),
        )
    assert refused.value.details == ["model version 'm1' appears more than once in the file."]
    assert not ModelVersion.objects.exists()


def test_an_upload_that_breaks_off_leaves_nothing(project, small_chunks):
    def lines():
        yield json.dumps({"prompt": "a"})
        yield json.dumps({"prompt": "b"})
        yield json.dumps({"prompt": "c"})
        raise OSError("connection reset while uploading")

    with pytest.raises(OSError, match="connection reset"):
        import_jsonl(project_id=project.pk, user_id=None, format="prompts", lines=lines())
    assert not Prompt.objects.exists() and not ImportBatch.objects.exists()


def test_a_dry_run_checks_everything_and_keeps_nothing(project):
    lines = jsonl(
        {
            "model_a": "m1",
            "model_b": "m2",
            "winner": "model_a",
            "prompt": "Q",
            "response_a": "a",
            "response_b": "b",
        },
        {
            "model_a": "m1",
            "model_b": "m3",
            "winner": "tie",
            "prompt": "Q",
            "response_a": "a",
            "response_b": "c",
        },
    )
    result = import_jsonl(project_id=project.pk, user_id=None, lines=lines, dry_run=True)
    assert result.batch is None and result.lines == 2
    assert result.created == {
        "model_versions": 3,
        "prompts": 1,
        "completions": 4,
        "tasks": 2,
        "judgments": 2,
        "pairs": 1,
    }
    assert not (
        ImportBatch.objects.exists()
        or Prompt.objects.exists()
        or Completion.objects.exists()
        or project.model_versions.exists()
        or Judgment.objects.exists()
    )
    # The refusals are the import's, the database's clashes too.
    import_jsonl(
        project_id=project.pk, user_id=None, format="model_versions", lines=jsonl({"name": "v1"})
    )
    with pytest.raises(ServiceError, match="clash") as error:
        import_jsonl(
            project_id=project.pk,
            user_id=None,
            format="model_versions",
            lines=jsonl({"name": "v1"}),
            dry_run=True,
        )
    assert error.value.details == ["model version 'v1' exists already in this project."]
    # And the real import after it makes what the dry run said.
    assert import_jsonl(project_id=project.pk, user_id=None, lines=lines).created == result.created
