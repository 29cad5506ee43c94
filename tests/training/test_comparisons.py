"""training.comparisons: head-to-head maths on hand-computed data, records read from judgments,
blind pairwise tasks and generation for missing outputs."""

import math

import pytest

from feedback import services
from feedback.errors import ServiceError
from feedback.models import AnnotationTask, Prompt
from training import comparisons, runners
from training.comparisons import Record, head_to_head, outcome_for_a, text_similarity
from training.models import JobKind, TrainingJob

from .builders import answer, judge, make_prompt_set, make_version

# 400 / ln(10): Elo points per unit of natural log-odds.
POINTS = 173.71779276


def test_win_rate_wilson_interval_and_gap_match_hand_computation():
    # 6 wins, 2 ties, 2 losses: rate (6 + 1) / 10 = 0.7. Wilson with z = 1.95996, n = 10:
    # centre (0.7 + z^2/20) / (1 + z^2/10) = 0.64449, half-width 0.24772 -> [0.39678, 0.89221].
    # Bradley-Terry with ties as half wins: s_A - s_B = ln(7 / 3) = 0.84730 -> 147.19 Elo points.
    summary = head_to_head(Record(wins=6, ties=2, losses=2))
    assert summary.win_rate.rate == pytest.approx(0.7)
    assert summary.win_rate.lower == pytest.approx(0.39678, abs=1e-5)
    assert summary.win_rate.upper == pytest.approx(0.89221, abs=1e-5)
    assert summary.gap == pytest.approx(147.19, abs=0.01)
    # The gap's interval is the logit of the Wilson bounds: ln(0.39678 / 0.60322) * 173.72.
    assert summary.gap_lower == pytest.approx(POINTS * math.log(0.39678 / 0.60322), abs=0.05)
    assert summary.gap_upper == pytest.approx(POINTS * math.log(0.89221 / 0.10779), abs=0.05)
    assert summary.gap_lower < summary.gap < summary.gap_upper


def test_an_even_record_has_no_gap_and_a_symmetric_interval():
    summary = head_to_head(Record(wins=3, ties=0, losses=3))
    assert summary.win_rate.rate == pytest.approx(0.5)
    assert summary.gap == pytest.approx(0.0, abs=1e-9)
    assert summary.gap_lower == pytest.approx(-summary.gap_upper)


def test_a_clean_sweep_has_no_finite_gap_but_keeps_its_lower_bound():
    summary = head_to_head(Record(wins=4))
    assert summary.gap is None
    assert "A won every judgment" in summary.gap_note
    # Wilson for 4 of 4: lower = n / (n + z^2) = 4 / 7.84146 = 0.51011, upper = 1.
    assert summary.win_rate.lower == pytest.approx(0.51011, abs=1e-5)
    assert summary.gap_lower == pytest.approx(POINTS * math.log(0.51011 / 0.48989), abs=0.05)
    assert summary.gap_upper is None


def test_no_judgments_means_no_rate():
    summary = head_to_head(Record())
    assert not summary.has_judgments
    assert math.isnan(summary.win_rate.rate)
    assert summary.gap is None


@pytest.mark.parametrize(
    ("choice", "a_position", "outcome"),
    [
        ("a", 0, 1.0),
        ("a", 1, 0.0),
        ("b", 1, 1.0),
        ("b", 0, 0.0),
        ("tie", 0, 0.5),
        ("both_bad", 1, 0.5),
    ],
)
def test_a_choice_names_positions_not_versions(choice, a_position, outcome):
    assert outcome_for_a(choice, a_position) == outcome


def test_record_knows_when_judges_split():
    assert not Record(wins=3).judges_split
    assert Record(wins=1, losses=1).judges_split
    assert Record(ties=1, losses=2).judges_split


def test_similarity_is_difflibs_ratio():
    assert text_similarity("abcd", "abcd") == 1.0
    assert text_similarity("abcd", "wxyz") == 0.0
    # "abcd" vs "abxy": 2 matching characters of 8 -> 2 * 2 / 8.
    assert text_similarity("abcd", "abxy") == pytest.approx(0.5)


@pytest.fixture
def two_versions(project):
    base = make_version(project, "base")
    tuned = make_version(project, "tuned", parent_id=base.pk, method="dpo")
    return base, tuned


def pairwise_task(prompt, first, second):
    return services.create_task(prompt_id=prompt.pk, completion_ids=[first.pk, second.pk])


@pytest.mark.django_db
def test_records_read_judgments_from_a_side_whatever_the_position(project, make_user, two_versions):
    base, tuned = two_versions
    other = make_version(project, "other")
    prompt_set, (p1, p2, p3) = make_prompt_set(project)
    judges = [make_user() for _ in range(3)]
    # p1: tuned in position 0; "a" twice (tuned wins), "tie" once.
    task1 = pairwise_task(p1, answer(p1, tuned), answer(p1, base))
    judge(task1, judges[0], "a")
    judge(task1, judges[1], "a")
    judge(task1, judges[2], "tie")
    # p2: tuned in position 1; "a" means base won, "b" that tuned won.
    task2 = pairwise_task(p2, answer(p2, base), answer(p2, tuned))
    judge(task2, judges[0], "a")
    judge(task2, judges[1], "b")
    # Not between the two versions: tuned against another model, and two outputs of tuned.
    judge(pairwise_task(p3, answer(p3, tuned), answer(p3, other)), judges[0], "a")
    judge(pairwise_task(p3, answer(p3, tuned, "x"), answer(p3, tuned, "y")), judges[1], "a")

    records = comparisons.records_between(
        tuned.pk, base.pk, Prompt.objects.filter(pk__in=[p1.pk, p2.pk, p3.pk])
    )
    assert records == {p1.pk: Record(2, 1, 0), p2.pk: Record(1, 0, 1)}

    comparison = comparisons.compare_versions(
        project_id=project.pk,
        version_a_id=tuned.pk,
        version_b_id=base.pk,
        prompt_set_id=prompt_set.pk,
    )
    assert comparison.summary.record == Record(wins=3, ties=1, losses=1)
    assert comparison.summary.win_rate.rate == pytest.approx(3.5 / 5)
    # The newest output of each version per prompt is shown; p3 has two of tuned and none of base.
    row3 = comparisons.shown(comparison.rows[2:3])[0]
    assert row3.prompt == p3 and row3.completion_a.text == "y" and row3.completion_b is None
    assert (comparison.prompts, comparison.missing_a, comparison.missing_b) == (3, 0, 1)
    assert comparison.comparable == 2

    # Without a prompt set, every prompt of the project is compared (imported data has no sets).
    outside = services.create_prompt(project_id=project.pk, text="Not in the set?")
    answer(outside, tuned)
    services.create_prompt(project_id=project.pk, text="Answered by neither?")
    everything = comparisons.compare_versions(
        project_id=project.pk, version_a_id=tuned.pk, version_b_id=base.pk, prompt_set_id=None
    )
    # A prompt neither version answered is no row, only a missing output of each.
    assert [row.prompt_id for row in everything.rows] == [p1.pk, p2.pk, p3.pk, outside.pk]
    assert (everything.prompts, everything.missing_a, everything.missing_b) == (5, 1, 3)
    assert (everything.scope_name, everything.summary.record) == ("all prompts", Record(3, 1, 1))


@pytest.mark.django_db
def test_rows_can_be_ordered_by_difference_or_filtered_to_split_judges(
    project, make_user, two_versions
):
    base, tuned = two_versions
    prompt_set, (p1, p2, p3) = make_prompt_set(project)
    answer(p1, base, "The same answer.")
    answer(p1, tuned, "The same answer!")
    answer(p2, base, "Paris.")
    answer(p2, tuned, "It is Lyon, famously.")
    task = pairwise_task(
        p3, answer(p3, base, "Yes, 100 degrees."), answer(p3, tuned, "Yes, 90 degrees.")
    )
    judge(task, make_user(), "a")
    judge(task, make_user(), "b")
    comparison = comparisons.compare_versions(
        project_id=project.pk,
        version_a_id=tuned.pk,
        version_b_id=base.pk,
        prompt_set_id=prompt_set.pk,
    )
    different = comparisons.shown_rows(comparison.rows, "different")
    assert [row.prompt_id for row in different] == [p2.pk, p3.pk, p1.pk]
    assert [row.prompt_id for row in comparisons.shown_rows(comparison.rows, "split")] == [p3.pk]
    assert comparisons.shown_rows(comparison.rows, "all") == comparison.rows


@pytest.mark.django_db
def test_comparing_a_version_with_itself_or_another_projects_is_refused(project, two_versions):
    base, tuned = two_versions
    prompt_set, _ = make_prompt_set(project)
    with pytest.raises(ServiceError, match="two different versions"):
        comparisons.compare_versions(
            project_id=project.pk,
            version_a_id=base.pk,
            version_b_id=base.pk,
            prompt_set_id=prompt_set.pk,
        )
    elsewhere = services.create_project(name="Elsewhere")
    stranger = make_version(elsewhere, "stranger")
    with pytest.raises(ServiceError, match="belong to this project"):
        comparisons.compare_versions(
            project_id=project.pk,
            version_a_id=base.pk,
            version_b_id=stranger.pk,
            prompt_set_id=prompt_set.pk,
        )


@pytest.mark.django_db
def test_blind_tasks_pair_the_newest_outputs_once(project, two_versions):
    base, tuned = two_versions
    prompt_set, prompts = make_prompt_set(project, n=4)
    expected = {}
    for prompt in prompts[:3]:
        answer(prompt, base, "old")
        expected[prompt.pk] = {answer(prompt, base).pk, answer(prompt, tuned).pk}
    answer(prompts[3], tuned)  # base never answered the fourth prompt

    result = comparisons.create_blind_tasks(
        project_id=project.pk,
        version_a_id=tuned.pk,
        version_b_id=base.pk,
        prompt_set_id=prompt_set.pk,
        judgments_wanted=2,
        seed=3,
    )
    assert (len(result.created), result.already_there, result.missing_outputs) == (3, 0, 1)
    tasks = AnnotationTask.objects.filter(pk__in=result.created).prefetch_related("items")
    assert {t.prompt_id: {i.completion_id for i in t.items.all()} for t in tasks} == expected
    assert {(t.mode, t.judgments_wanted, t.alignment_round_id) for t in tasks} == {
        ("pairwise", 2, None)
    }

    again = comparisons.create_blind_tasks(
        project_id=project.pk,
        version_a_id=base.pk,
        version_b_id=tuned.pk,
        prompt_set_id=prompt_set.pk,
    )
    assert (again.created, again.already_there) == ([], 3)
    assert AnnotationTask.objects.count() == 3


@pytest.mark.django_db
def test_blind_tasks_put_each_version_first_about_half_the_time(project, two_versions):
    base, tuned = two_versions
    prompt_set, prompts = make_prompt_set(project, n=40)
    tuned_ids = {answer(p, tuned).pk for p in prompts}
    for prompt in prompts:
        answer(prompt, base)
    result = comparisons.create_blind_tasks(
        project_id=project.pk,
        version_a_id=tuned.pk,
        version_b_id=base.pk,
        prompt_set_id=prompt_set.pk,
        seed=11,
    )
    first = AnnotationTask.objects.filter(pk__in=result.created, items__position=0).values_list(
        "items__completion_id", flat=True
    )
    tuned_first = sum(1 for cid in first if cid in tuned_ids)
    assert 10 <= tuned_first <= 30  # 40 fair coin flips land outside this with p < 0.002


@pytest.mark.django_db
def test_blind_tasks_need_pairwise_judgments_enabled():
    ranking_only = services.create_project(name="Ranking only", modes=("ranking",))
    a, b = make_version(ranking_only, "a"), make_version(ranking_only, "b")
    prompt_set, _ = make_prompt_set(ranking_only)
    with pytest.raises(ServiceError, match="pairwise"):
        comparisons.create_blind_tasks(
            project_id=ranking_only.pk,
            version_a_id=a.pk,
            version_b_id=b.pk,
            prompt_set_id=prompt_set.pk,
        )


@pytest.mark.django_db
def test_missing_outputs_are_queued_as_one_generate_job(
    project, two_versions, django_capture_on_commit_callbacks
):
    base, tuned = two_versions
    prompt_set, (p1, p2, p3) = make_prompt_set(project)
    answer(p2, tuned)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = comparisons.queue_missing_outputs(
            project_id=project.pk,
            version_id=tuned.pk,
            prompt_set_id=prompt_set.pk,
            created_by_id=None,
        )
    assert len(callbacks) == 1  # sent to the worker once the transaction commits
    assert (job.kind, job.model_version_id, job.alignment_round_id) == (
        JobKind.GENERATE,
        tuned.pk,
        None,
    )
    assert job.config == {"prompt_ids": [p1.pk, p3.pk], "samples_per_prompt": 1}
    with pytest.raises(ServiceError, match="already being generated") as error:
        comparisons.queue_missing_outputs(
            project_id=project.pk, version_id=tuned.pk, prompt_set_id=prompt_set.pk
        )
    assert error.value.code == "conflict"
    assert TrainingJob.objects.count() == 1


@pytest.mark.django_db
def test_a_job_reads_all_its_prompts_however_many_a_query_may_name(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    base = make_version(project)
    prompt_set, prompts = make_prompt_set(project, n=5)
    with django_capture_on_commit_callbacks(execute=False):
        job = comparisons.queue_missing_outputs(
            project_id=project.pk, version_id=base.pk, prompt_set_id=prompt_set.pk
        )
    monkeypatch.setattr(runners, "PROMPT_CHUNK", 2)
    assert sorted(p.pk for p in runners.prompts_of(job)) == sorted(p.pk for p in prompts)


@pytest.mark.django_db
def test_only_versions_with_weights_generate(project):
    imported = make_version(project, "imported", base_model="", method="imported")
    prompt_set, _ = make_prompt_set(project)
    with pytest.raises(ServiceError, match="no weights"):
        comparisons.queue_missing_outputs(
            project_id=project.pk, version_id=imported.pk, prompt_set_id=prompt_set.pk
        )
    complete = make_version(project, "complete")
    for prompt in prompt_set.prompts.all():
        answer(prompt, complete)
    with pytest.raises(ServiceError, match="answered every prompt"):
        comparisons.queue_missing_outputs(
            project_id=project.pk, version_id=complete.pk, prompt_set_id=prompt_set.pk
        )
