"""Exports: TRL styles, Parquet, filters, snapshots (hash of the bytes, pinning, materialising), and
exported pairs training TRL's DPOTrainer and RewardTrainer unchanged."""

import copy
import hashlib
import io
import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from django.contrib.auth import get_user_model

from feedback import services
from feedback.errors import ServiceError
from feedback.models import AnnotationTask, ExportSnapshot, Judgment, PreferencePair
from feedback.services.exports import (
    ExportFilters,
    ExportRequest,
    can_stream_rows,
    export_pairs_to_file,
    materialise_snapshot,
    start_export,
)
from feedback.services.imports import import_jsonl

pytestmark = pytest.mark.django_db


def run(project, **request) -> tuple[bytes, ExportSnapshot]:
    stream = start_export(ExportRequest(project_id=project.pk, **request), user_id=None)
    data = b"".join(stream.chunks())
    stream.snapshot.refresh_from_db()
    return data, stream.snapshot


def lines_of(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().split("\n") if line]


@pytest.fixture
def imported(project):
    rows = [
        {
            "prompt": f"Question {i}?",
            "chosen": f"good answer {i}",
            "rejected": f"bad answer {i}",
            "margin": i / 2,
        }
        for i in range(5)
    ]
    import_jsonl(
        project_id=project.pk, user_id=None, lines=[json.dumps(r) for r in rows], format="trl"
    )
    return rows


def test_snapshot_records_row_count_and_sha256_of_the_bytes(project, imported):
    data, snapshot = run(project, margin=True)
    assert lines_of(data) == imported
    assert snapshot.status == "complete" and snapshot.row_count == 5
    assert snapshot.content_hash == hashlib.sha256(data).hexdigest()
    assert snapshot.filters["up_to_id"] == PreferencePair.objects.order_by("-pk").first().pk
    again, second = run(project, margin=True)
    assert again == data and second.content_hash == snapshot.content_hash


def test_parquet_export_holds_the_same_rows_in_row_groups(project, imported, monkeypatch):
    monkeypatch.setattr("feedback.services.exports.ROW_GROUP_ROWS", 2)
    data, snapshot = run(project, format="parquet", margin=True)
    table = pq.read_table(io.BytesIO(data))
    assert table.to_pylist() == imported
    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == 3
    assert snapshot.row_count == 5 and snapshot.content_hash == hashlib.sha256(data).hexdigest()
    conversational, _ = run(project, format="parquet", style="conversational")
    first = pq.read_table(io.BytesIO(conversational)).to_pylist()[0]
    assert first["prompt"] == [{"role": "user", "content": "Question 0?"}]
    assert first["chosen"] == [{"role": "assistant", "content": "good answer 0"}]


def test_a_snapshot_ignores_pairs_added_later_and_materialises_exactly(
    project, imported, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path
    snapshot, path = export_pairs_to_file(project_id=project.pk, margin=True)
    assert path.parent == tmp_path / "exports" and path.read_bytes().count(b"\n") == 5
    assert hashlib.sha256(path.read_bytes()).hexdigest() == snapshot.content_hash
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="trl",
        lines=[json.dumps({"prompt": "late", "chosen": "x", "rejected": "y"})],
    )
    path.unlink()
    rebuilt = materialise_snapshot(snapshot.pk)
    assert hashlib.sha256(rebuilt.read_bytes()).hexdigest() == snapshot.content_hash
    PreferencePair.objects.filter(prompt__text="Question 0?").delete()
    rebuilt.unlink()
    with pytest.raises(ServiceError, match="changed"):
        materialise_snapshot(snapshot.pk)


def test_an_abandoned_stream_leaves_a_failed_snapshot(project, imported, monkeypatch):
    monkeypatch.setattr("feedback.services.exports.CHUNK_ROWS", 2)
    stream = start_export(ExportRequest(project_id=project.pk), user_id=None)
    chunks = stream.chunks()
    next(chunks)
    chunks.close()
    stream.snapshot.refresh_from_db()
    assert stream.snapshot.status == "failed" and stream.snapshot.content_hash == ""


def test_a_download_closed_before_its_first_byte_fails_its_snapshot(project, imported):
    """A client that hangs up after the headers (fsspec asking for a size does) leaves no
    snapshot running for ever: the web server closes the response, which closes the stream."""
    from django.core.signals import request_finished
    from django.db import close_old_connections
    from django.test import Client

    staff = Client()
    staff.force_login(get_user_model().objects.create_user("staff", is_staff=True))
    response = staff.get(f"/api/v1/projects/{project.pk}/exports/pairs/")
    snapshot = ExportSnapshot.objects.get(pk=response["X-Export-Snapshot"])
    assert snapshot.status == "running"
    # As the test client does around a request: closing must not close the test's connection.
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    snapshot.refresh_from_db()
    assert snapshot.status == "failed" and snapshot.completed_at is not None
    # One read to the end and then closed stays complete.
    whole = staff.get(f"/api/v1/projects/{project.pk}/exports/pairs/")
    assert b"".join(whole.streaming_content).count(b"\n") == len(imported)
    request_finished.disconnect(close_old_connections)
    try:
        whole.close()
    finally:
        request_finished.connect(close_old_connections)
    assert ExportSnapshot.objects.get(pk=whole["X-Export-Snapshot"]).status == "complete"


def test_snapshots_a_dead_process_left_running_are_failed_after_a_day(project, imported):
    from datetime import timedelta

    from django.utils import timezone

    from feedback.services.exports import fail_abandoned_exports
    from feedback.tasks import watch_exports

    old, recent = (
        start_export(ExportRequest(project_id=project.pk), user_id=None).snapshot for _ in range(2)
    )
    done = start_export(ExportRequest(project_id=project.pk), user_id=None)
    b"".join(done)
    now = timezone.now()
    ExportSnapshot.objects.filter(pk__in=[old.pk, done.snapshot.pk]).update(
        created_at=now - timedelta(hours=25)
    )
    assert fail_abandoned_exports(now) == 1
    statuses = dict(ExportSnapshot.objects.values_list("pk", "status"))
    assert statuses == {old.pk: "failed", recent.pk: "running", done.snapshot.pk: "complete"}
    assert watch_exports() == 0  # the periodic task runs the same sweep


def judged_project(project, make_member):
    """Two model versions, three tasks judged by two annotators (one agreeing, one split)."""
    left = services.create_model_version(project_id=project.pk, name="left")
    right = services.create_model_version(project_id=project.pk, name="right")
    ann1, ann2 = make_member(), make_member()
    for n, choices in enumerate([("a", "a"), ("a", "b"), ("b", "b")]):
        prompt = services.create_prompt(project_id=project.pk, text=f"prompt {n}")
        a = services.create_completion(
            prompt_id=prompt.pk, text=f"left {n}", model_version_id=left.pk
        )
        b = services.create_completion(
            prompt_id=prompt.pk, text=f"right {n}", model_version_id=right.pk
        )
        task = services.create_task(
            prompt_id=prompt.pk, completion_ids=[a.pk, b.pk], judgments_wanted=2
        )
        for annotator, choice in zip((ann1, ann2), choices, strict=True):
            services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
            judgment = services.submit_judgment(
                annotator_id=annotator.pk,
                task_id=task.pk,
                data=services.JudgmentInput(
                    kind="pairwise", choice=choice, idempotency_key=f"{n}-{annotator.pk}"
                ),
            )
            chosen, rejected = (a, b) if choice == "a" else (b, a)
            pair, _ = PreferencePair.objects.get_or_create(
                project=project, prompt=prompt, chosen=chosen, rejected=rejected, policy="test"
            )
            pair.judgments.add(judgment.pk)
    return left, right, ann1, ann2


def test_filters_narrow_pairs(project, make_member):
    left, right, ann1, ann2 = judged_project(project, make_member)
    assert PreferencePair.objects.count() == 4

    def prompts(**filters) -> list[tuple[str, str]]:
        data, _ = run(project, filters=ExportFilters(**filters))
        return [(row["prompt"], row["chosen"]) for row in lines_of(data)]

    assert len(prompts()) == 4
    # Agreement: the split task's two pairs each have half of its judgments behind them.
    assert prompts(min_agreement=1.0) == [("prompt 0", "left 0"), ("prompt 2", "right 2")]
    assert len(prompts(min_agreement=0.5)) == 4
    assert prompts(annotator_ids=(ann2.pk,)) == [
        ("prompt 0", "left 0"),
        ("prompt 1", "right 1"),
        ("prompt 2", "right 2"),
    ]
    assert prompts(policies=("other",)) == []
    other = services.create_model_version(project_id=project.pk, name="other")
    assert prompts(model_version_ids=(other.pk,)) == []
    assert len(prompts(model_version_ids=(left.pk,))) == 4


def test_derived_pairs_are_filtered_by_the_judgments_that_back_them(project, make_member):
    """A majority pair keeps its outvoted judgment as provenance, but neither the agreement
    threshold nor an annotator filter counts that dissent as backing the pair."""
    from feedback.pairs import PairPolicy
    from feedback.services.pairs import derive_pairs

    prompt = services.create_prompt(project_id=project.pk, text="Q?")
    one = services.create_completion(prompt_id=prompt.pk, text="one")
    two = services.create_completion(prompt_id=prompt.pk, text="two")
    task = services.create_task(
        prompt_id=prompt.pk, completion_ids=[one.pk, two.pk], judgments_wanted=3
    )
    annotators = [make_member() for _ in range(3)]
    for n, (annotator, choice) in enumerate(zip(annotators, "aab", strict=True)):
        services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
        services.submit_judgment(
            annotator_id=annotator.pk,
            task_id=task.pk,
            data=services.JudgmentInput(kind="pairwise", choice=choice, idempotency_key=f"k{n}"),
        )
    derive_pairs(project_id=project.pk, policy=PairPolicy(name="majority"))
    pair = PreferencePair.objects.get(policy="majority")
    assert (pair.chosen_id, pair.rejected_id) == (one.pk, two.pk)
    assert pair.judgments.count() == 3  # the dissent stays linked

    def chosen(**filters) -> list[str]:
        data, _ = run(project, filters=ExportFilters(policies=("majority",), **filters))
        return [row["chosen"] for row in lines_of(data)]

    assert chosen(min_agreement=0.6) == ["one"]  # two of the task's three judgments back it
    assert chosen(min_agreement=0.7) == []
    assert chosen(annotator_ids=(annotators[0].pk,)) == ["one"]
    assert chosen(annotator_ids=(annotators[2].pk,)) == []  # voted for "two"


def test_pairs_follow_the_reviewers_decisions(project, make_member):
    """A reviewer's override is the task's answer in the pairs derived from it, and an accepted
    judgment outweighs the others; agreement and annotator filters read the decided votes."""
    from feedback.pairs import PairPolicy
    from feedback.services.pairs import derive_pairs
    from feedback.services.reviews import adjudicate_task

    judged_project(project, make_member)  # three tasks: (a, a), (a, b), (b, b)
    reviewer = make_member(role="reviewer")
    tasks = list(AnnotationTask.objects.order_by("pk"))
    split = {j.choice: j for j in Judgment.objects.filter(task=tasks[1])}
    adjudicate_task(reviewer_id=reviewer.pk, task_id=tasks[0].pk, action="override", choice="b")
    adjudicate_task(
        reviewer_id=reviewer.pk, task_id=tasks[1].pk, action="accept", judgment_id=split["b"].pk
    )
    derive_pairs(project_id=project.pk, policy=PairPolicy(name="reviewed"))

    def chosen(**filters) -> list[tuple[str, str]]:
        data, _ = run(project, filters=ExportFilters(policies=("reviewed",), **filters))
        return [(row["prompt"], row["chosen"]) for row in lines_of(data)]

    decided = [("prompt 0", "right 0"), ("prompt 1", "right 1"), ("prompt 2", "right 2")]
    assert chosen() == decided
    # The split task's accepted judgment backs its pair; the other one of the two does not.
    assert chosen(min_agreement=1.0) == [decided[0], decided[2]]
    assert chosen(annotator_ids=(split["a"].annotator_id,)) == [decided[0], decided[2]]


def test_pairs_of_several_derived_policies_are_exported_by_name(project, make_member):
    """The same judgments under two policies make two sets of pairs: exported together, each
    pair would come out twice. Imported pairs are no derived policy."""
    from feedback.pairs import PairPolicy
    from feedback.services.pairs import derive_pairs

    judged_project(project, make_member)
    derive_pairs(project_id=project.pk, policy=PairPolicy(name="majority"))
    assert len(lines_of(run(project)[0])) == 4 + 2  # the hand-made "test" pairs, and these
    derive_pairs(project_id=project.pk, policy=PairPolicy(name="strict", ties="keep"))
    project.refresh_from_db()
    assert sorted(project.pair_policies) == ["majority", "strict"]
    assert project.pair_policies["strict"]["ties"] == "keep"
    from feedback.selectors import pair_policies

    changes = {row.policy: row.changes for row in pair_policies(project.pk)}
    assert changes == {"majority": (), "strict": ("ties: keep",), "test": ()}
    with pytest.raises(ServiceError, match=r"several policies \(majority, strict\)"):
        run(project)
    assert len(lines_of(run(project, filters=ExportFilters(policies=("majority",)))[0])) == 2
    Judgment.objects.all().delete()  # re-derived, "strict" makes no pairs: nothing to mix
    derive_pairs(project_id=project.pk, policy=PairPolicy(name="strict", ties="keep"))
    project.refresh_from_db()
    assert sorted(project.pair_policies) == ["majority"]
    assert run(project)[1].row_count == 4 + 2


@pytest.mark.parametrize("streamed", [True, False])
def test_exported_ties_say_they_are_ties(project, make_member, monkeypatch, streamed):
    from feedback.pairs import PairPolicy
    from feedback.services import exports
    from feedback.services.pairs import derive_pairs

    monkeypatch.setattr(exports, "can_stream_rows", lambda: streamed)  # else the ORM's rows
    annotator = make_member()
    for n, choice in enumerate(["a", "tie"]):
        prompt = services.create_prompt(project_id=project.pk, text=f"Q{n}?")
        one = services.create_completion(prompt_id=prompt.pk, text=f"one {n}")
        two = services.create_completion(prompt_id=prompt.pk, text=f"two {n}")
        task = services.create_task(prompt_id=prompt.pk, completion_ids=[one.pk, two.pk])
        services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
        services.submit_judgment(
            annotator_id=annotator.pk,
            task_id=task.pk,
            data=services.JudgmentInput(kind="pairwise", choice=choice, idempotency_key=f"k{n}"),
        )
    derive_pairs(project_id=project.pk, policy=PairPolicy(name="p", ties="keep"))
    data, _ = run(project, margin=True)
    assert lines_of(data) == [
        {"prompt": "Q0?", "chosen": "one 0", "rejected": "two 0", "margin": 1.0}
    ]
    data, _ = run(project, margin=True, filters=ExportFilters(include_ties=True))
    assert [(row["prompt"], row["margin"], row["is_tie"]) for row in lines_of(data)] == [
        ("Q0?", 1.0, False),
        ("Q1?", 0.0, True),
    ]
    data, _ = run(project, style="hh", filters=ExportFilters(include_ties=True))
    assert [sorted(row) for row in lines_of(data)] == [["chosen", "is_tie", "rejected"]] * 2
    data, _ = run(project, format="parquet", filters=ExportFilters(include_ties=True))
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == ["prompt", "chosen", "rejected", "is_tie"]
    assert table.column("is_tie").to_pylist() == [False, True]


def test_judgment_filters_treat_imported_pairs_as_judged_at_import(project, imported, make_member):
    """Imported TRL pairs have no judgment rows; they pass agreement and time filters as one
    verdict given when they were imported, and never match an annotator."""
    from datetime import timedelta

    from django.utils import timezone

    def count(**filters) -> int:
        data, _ = run(project, filters=ExportFilters(**filters))
        return len(lines_of(data))

    now = timezone.now()
    assert count(min_agreement=1.0) == 5
    assert count(judged_after=now - timedelta(hours=1)) == 5
    assert count(judged_after=now + timedelta(hours=1)) == 0
    assert count(judged_before=now - timedelta(hours=1)) == 0
    assert count(annotator_ids=(make_member().pk,)) == 0


def test_judgment_and_rating_exports(project, make_member):
    judged_project(project, make_member)
    data, snapshot = run(project, kind="judgments")
    rows = lines_of(data)
    assert snapshot.row_count == 6 and [row["choice"] for row in rows] == [
        "a",
        "a",
        "a",
        "b",
        "b",
        "b",
    ]
    assert [item["model"] for item in rows[0]["items"]] == ["left", "right"]
    assert all(datetime.fromisoformat(row["created_at"]).tzinfo for row in rows)
    # Times read as Python writes them: the fraction of a second only when there is one.
    first, second = (row["id"] for row in rows[:2])
    Judgment.objects.filter(pk=first).update(created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    Judgment.objects.filter(pk=second).update(
        created_at=datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)
    )
    rows = lines_of(run(project, kind="judgments")[0])
    assert [row["created_at"] for row in rows[:2]] == [
        "2026-01-02T03:04:05+00:00",
        "2026-01-02T03:04:05.000060+00:00",
    ]
    assert [row["created_at"] for row in rows] == [
        j.created_at.isoformat() for j in Judgment.objects.order_by("pk")
    ]

    # A ranking over three outputs, between pairwise judgments: each row has its own task's.
    third = services.create_model_version(project_id=project.pk, name="third")
    prompt = services.create_prompt(project_id=project.pk, text="rank three")
    outputs = [
        services.create_completion(prompt_id=prompt.pk, text=f"output {n}") for n in range(3)
    ]
    outputs.append(
        services.create_completion(prompt_id=prompt.pk, text="third's", model_version_id=third.pk)
    )
    ranked = services.create_task(
        prompt_id=prompt.pk, completion_ids=[c.pk for c in outputs[1:]], mode="ranking"
    )
    ranker = make_member()
    services.next_task_for(annotator_id=ranker.pk, project_id=project.pk)
    ranking = [[outputs[3].pk], [outputs[1].pk, outputs[2].pk]]
    services.submit_judgment(
        annotator_id=ranker.pk,
        task_id=ranked.pk,
        data=services.JudgmentInput(kind="ranking", ranking=ranking, idempotency_key="rank"),
    )
    rows = lines_of(run(project, kind="judgments")[0])
    assert [len(row["items"]) for row in rows] == [2] * 6 + [3]
    assert rows[-1]["items"] == [
        {"completion_id": outputs[1].pk, "model": None},
        {"completion_id": outputs[2].pk, "model": None},
        {"completion_id": outputs[3].pk, "model": "third"},
    ]
    assert (rows[-1]["kind"], rows[-1]["ranking"], rows[-1]["choice"]) == ("ranking", ranking, None)
    parquet, _ = run(project, kind="judgments", format="parquet")
    assert pq.read_table(io.BytesIO(parquet)).column("choice").to_pylist() == [
        r["choice"] for r in rows
    ]
    ratings, _ = run(project, kind="ratings")
    board = lines_of(ratings)
    assert {row["model"] for row in board} == {"left", "right"}
    assert all(row["bt_low"] <= row["bt_score"] <= row["bt_high"] for row in board)
    assert set(board[0]) == {
        "model_version_id",
        "model",
        "games",
        "wins",
        "bt_score",
        "bt_low",
        "bt_high",
        "elo",
        "group",
    }
    assert {row["group"] for row in board} == {1}
    parquet, _ = run(project, kind="ratings", format="parquet")
    assert pq.read_table(io.BytesIO(parquet)).to_pylist() == board


def test_bad_requests_are_refused(project):
    for request in (
        ExportRequest(project_id=project.pk, format="csv"),
        ExportRequest(project_id=project.pk, style="alpaca"),
        ExportRequest(project_id=project.pk, filters=ExportFilters(min_agreement=1.5)),
    ):
        with pytest.raises(ServiceError):
            start_export(request, user_id=None)
    with pytest.raises(ServiceError) as missing:
        start_export(ExportRequest(project_id=99999), user_id=None)
    assert missing.value.code == "not_found"
    assert not ExportSnapshot.objects.exists()


@pytest.mark.slow
def test_exported_pairs_train_trl_dpo_and_reward_models(project, settings, tmp_path):
    """The files go to datasets.load_dataset and TRL's trainers unchanged."""
    import torch
    from datasets import load_dataset
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    from training.engine.tiny import build_tiny_tokenizer, tiny_llama_config

    settings.ARTIFACT_ROOT = tmp_path
    rows = [
        {
            "prompt": f"tell me about the {animal}",
            "chosen": f"the {animal} is kind .",
            "rejected": f"the {animal} is rude .",
            "margin": 1.0,
        }
        for animal in ("cat", "dog", "bird", "fox", "cow", "owl")
    ]
    import_jsonl(
        project_id=project.pk, user_id=None, lines=[json.dumps(r) for r in rows], format="trl"
    )
    _, standard = export_pairs_to_file(project_id=project.pk, margin=True)
    _, conversational = export_pairs_to_file(project_id=project.pk, style="conversational")
    standard_set = load_dataset("json", data_files=str(standard), split="train")
    chat_set = load_dataset("json", data_files=str(conversational), split="train")
    assert standard_set.column_names == ["prompt", "chosen", "rejected", "margin"]
    assert chat_set[0]["chosen"] == [{"role": "assistant", "content": "the cat is kind ."}]

    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer(
        [r["prompt"] + " " + r["chosen"] + " " + r["rejected"] for r in rows]
    )
    config = tiny_llama_config(tokenizer, hidden_size=32)
    common = {
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "max_length": 64,
    }
    for dataset in (standard_set.remove_columns("margin"), chat_set):
        policy = LlamaForCausalLM(config)
        dpo = DPOTrainer(
            model=policy,
            ref_model=copy.deepcopy(policy),
            args=DPOConfig(output_dir=str(tmp_path / "dpo"), **common),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        assert dpo.train().global_step == 2
    config.num_labels = 1
    reward = RewardTrainer(
        model=LlamaForSequenceClassification(config),
        args=RewardConfig(output_dir=str(tmp_path / "reward"), **common),
        train_dataset=standard_set,
        processing_class=tokenizer,
    )
    assert reward.train().global_step == 2


def test_copied_rows_give_the_same_bytes_as_the_orm_path(project, monkeypatch):
    tricky = (
        'quote " backslash \\ tab \t newline \n nul-ish \x01 \x1f del \x7f é ☃ \u2028 😀 </script>'
    )
    rows = [
        {"prompt": tricky, "chosen": tricky + " yes", "rejected": "no " + tricky, "margin": 2},
        {"prompt": "margins", "chosen": "a", "rejected": "b", "margin": 0.1},
        # The same prompt again, right after and further on: its text is fetched once per run.
        {"prompt": "margins", "chosen": "c", "rejected": "d", "margin": 0.2},
        {"prompt": "big margin", "chosen": "a", "rejected": "b", "margin": 1e17},
        {
            "prompt": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "u1"},
                {"role": "assistant", "content": "a1"},
                {"role": "user", "content": "u2"},
            ],
            "chosen": [{"role": "assistant", "content": "c"}],
            "rejected": [{"role": "assistant", "content": "r"}],
        },
        {
            "prompt": [{"role": "user", "content": tricky}],
            "chosen": [{"role": "assistant", "content": tricky}],
            "rejected": [{"role": "assistant", "content": "plain"}],
        },
        {"prompt": "margins", "chosen": "e", "rejected": "f", "margin": 3},
    ]
    import_jsonl(
        project_id=project.pk, user_id=None, lines=[json.dumps(r) for r in rows], format="trl"
    )
    for style in ("standard", "conversational", "hh"):
        copied, _ = run(project, style=style, margin=True)
        monkeypatch.setattr("feedback.services.exports.can_stream_rows", lambda: False)
        through_orm, _ = run(project, style=style, margin=True)
        monkeypatch.undo()
        assert copied == through_orm
        assert len(lines_of(copied)) == len(rows)
        # Byte for byte what json.dumps writes (escapes, margins such as 1e+17, separators).
        for line in copied.decode().split("\n")[:-1]:
            assert line == json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":"))
        if style == "standard":
            assert lines_of(copied)[2] == rows[2] and lines_of(copied)[-1] == rows[-1]
        first = lines_of(copied)[0]["chosen"]
        if style == "conversational":
            first = first[0]["content"]
        assert first.endswith(tricky + " yes")


def test_streamed_pairs_take_texts_from_other_prompts_and_big_prompts(project, monkeypatch):
    """The fast path sends a prompt's completions once per run of its pairs; a pair whose
    completion belongs to another prompt, or whose prompt has too many completions to send up
    front, or none, still gets its own texts."""
    monkeypatch.setattr("feedback.services.export_sql.RUN_COMPLETIONS", 2)
    big = services.create_prompt(project_id=project.pk, text="big")
    small = services.create_prompt(project_id=project.pk, text="small")
    bare = services.create_prompt(project_id=project.pk, text="bare")
    b1, b2, b3 = (
        services.create_completion(prompt_id=big.pk, text=f"big {n}") for n in range(1, 4)
    )
    s1, s2 = (services.create_completion(prompt_id=small.pk, text=f"small {n}") for n in (1, 2))
    pairs = [
        (small, s1, s2),
        (small, s2, b1),
        (big, b1, b2),
        (big, b3, s1),
        (bare, s2, b2),
        (small, s1, s2),
    ]
    for n, (prompt, chosen, rejected) in enumerate(pairs):
        PreferencePair.objects.create(
            project=project, prompt=prompt, chosen=chosen, rejected=rejected, policy=f"p{n}"
        )
    expected = [
        {"prompt": prompt.text, "chosen": chosen.text, "rejected": rejected.text}
        for prompt, chosen, rejected in pairs
    ]
    for style in ("standard", "conversational", "hh"):
        streamed, _ = run(project, style=style)
        monkeypatch.setattr("feedback.services.exports.can_stream_rows", lambda: False)
        through_orm, _ = run(project, style=style)
        monkeypatch.setattr("feedback.services.exports.can_stream_rows", can_stream_rows)
        assert streamed == through_orm
        if style == "standard":
            assert lines_of(streamed) == expected
    parquet, _ = run(project, format="parquet")
    assert pq.read_table(io.BytesIO(parquet)).to_pylist() == expected


@pytest.mark.skipif(not can_stream_rows(), reason="the streamed query is PostgreSQL's")
def test_switching_to_the_checked_query_mid_stream_keeps_the_transaction(project, monkeypatch):
    """A pair whose completion is another prompt's ends the unchecked query early, while
    PostgreSQL is still sending (20 MB of texts, read a row at a time): its cancelled query must
    not fail the export's transaction."""
    monkeypatch.setattr("feedback.services.export_sql.STREAM_ROWS", 1)
    filler = "x" * 100_000
    prompts = [services.create_prompt(project_id=project.pk, text=f"p{n}") for n in range(100)]
    completions = [
        [services.create_completion(prompt_id=p.pk, text=f"{p.text}{k} {filler}") for k in (0, 1)]
        for p in prompts
    ]
    for n, (chosen, rejected) in enumerate(completions):
        if n == 2:
            chosen = completions[0][0]  # another prompt's completion
        PreferencePair.objects.create(
            project=project, prompt=prompts[n], chosen=chosen, rejected=rejected, policy="x"
        )
    streamed, snapshot = run(project)
    monkeypatch.setattr("feedback.services.exports.can_stream_rows", lambda: False)
    through_orm, _ = run(project)
    assert snapshot.status == "complete" and snapshot.row_count == 100
    assert streamed == through_orm
    assert lines_of(streamed)[2]["chosen"].startswith("p00 ")
