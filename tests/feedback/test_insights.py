"""Leaderboard (feedback.leaderboards) and agreement reads, and the insight pages built on them."""

import json
import random
from datetime import timedelta

import pytest
from django.test import Client

from feedback import charts, insights, leaderboards, services
from feedback.models import AnnotationTask, Assignment, Judgment, ModelVersion
from feedback.services.imports import import_jsonl

pytestmark = pytest.mark.django_db


def battle(model_a: str, model_b: str, winner: str, n: int) -> str:
    return json.dumps(
        {
            "model_a": model_a,
            "model_b": model_b,
            "winner": winner,
            "prompt": f"q{n}",
            "response_a": f"{model_a} says {n}",
            "response_b": f"{model_b} says {n}",
        }
    )


@pytest.fixture
def arena(project):
    """strong beats medium 8:2, medium beats weak 8:2, strong beats weak 9:1, plus ties."""
    lines, n = [], 0
    for a, b, wins, losses in (
        ("strong", "medium", 8, 2),
        ("medium", "weak", 8, 2),
        ("strong", "weak", 9, 1),
    ):
        for winner, count in (("model_a", wins), ("model_b", losses)):
            for _ in range(count):
                lines.append(battle(a, b, winner, n))
                n += 1
    lines.append(battle("weak", "strong", "tie", n))
    import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="arena")
    return project


def test_leaderboard_orders_models_with_intervals_around_the_fit(arena):
    board = leaderboards.leaderboard(arena.pk, rounds=200)
    assert [row.model for row in board.rows] == ["strong", "medium", "weak"]
    assert board.comparisons == 31
    for row in board.rows:
        assert row.bt_low <= row.bt_score <= row.bt_high
    strong, medium, weak = board.rows
    assert (strong.games, medium.games, weak.games) == (21, 20, 21)
    assert strong.wins == 8 + 9 + 0.5 and weak.wins == 2 + 1 + 0.5
    assert strong.elo > 1000 > weak.elo
    # win_rates follow the rows' order: strong over medium is 8 of 10.
    assert board.win_rates[0][1] == pytest.approx(0.8)
    assert board.win_rates[1][0] == pytest.approx(0.2)
    assert board.win_rates[0][0] is None
    same = leaderboards.computed_leaderboard(arena.pk, rounds=200, seed=0, style_control=False)
    assert [r.bt_low for r in same.rows] == [r.bt_low for r in board.rows]  # seeded: reproducible


def test_versions_never_compared_with_the_rest_form_a_group_of_their_own(arena, make_member):
    alone = leaderboards.computed_leaderboard(arena.pk, rounds=50, seed=0, style_control=False)
    assert not alone.regularised
    # Two models met only each other: nothing relates their ratings to the first three's.
    winners = ("model_a",) * 12 + ("model_b",) * 8  # so that every bootstrap round has both
    lines = [battle("solo-a", "solo-b", winner, 100 + n) for n, winner in enumerate(winners)]
    import_jsonl(project_id=arena.pk, user_id=None, lines=lines, format="arena")
    board = leaderboards.leaderboard(arena.pk, rounds=50)
    assert board.groups == 2 and not board.regularised
    # Each group is fitted on its own: the first three rate as they did without the others.
    assert board.rows[:3] == alone.rows
    solo = [row.bt_score for row in board.rows[3:]]
    assert sum(solo) / 2 == pytest.approx(1000)
    assert [(row.group, row.model) for row in board.rows] == [
        (1, "strong"),
        (1, "medium"),
        (1, "weak"),
        (2, "solo-a"),
        (2, "solo-b"),
    ]
    # Ranked within their group: solo-a's rating says nothing about strong's.
    assert board.rows[0].rank == board.rows[3].rank == 1
    client = Client()
    client.force_login(make_member(role="reviewer"))
    page = client.get(f"/insights/projects/{arena.pk}/leaderboard/").content.decode()
    assert "fall into 2 groups that were never compared" in page
    assert page.count('stroke-dasharray="6 4"') == 1  # the plot's rule between the groups
    served = client.get(f"/api/v1/projects/{arena.pk}/leaderboard/").json()
    assert [row["group"] for row in served["rows"]] == [1, 1, 1, 2, 2]
    styled = leaderboards.leaderboard(arena.pk, rounds=50, style_control=True)
    assert all(row.style_score is not None for row in styled.rows)


def test_cached_leaderboard_follows_new_and_taken_back_judgments_and_renamed_versions(
    arena, make_member
):
    assert leaderboards.leaderboard(arena.pk, rounds=50).comparisons == 31
    import_jsonl(
        project_id=arena.pk,
        user_id=None,
        lines=[battle("weak", "medium", "model_a", 99)],
        format="arena",
    )
    assert leaderboards.leaderboard(arena.pk, rounds=50).comparisons == 32

    strong, weak = (
        ModelVersion.objects.get(project=arena, name=name) for name in ("strong", "weak")
    )
    prompt = services.create_prompt(project_id=arena.pk, text="one more")
    outputs = [
        services.create_completion(prompt_id=prompt.pk, text=v.name, model_version_id=v.pk)
        for v in (weak, strong)
    ]
    task = services.create_task(prompt_id=prompt.pk, completion_ids=[c.pk for c in outputs])
    annotator = make_member()
    services.next_task_for(annotator_id=annotator.pk, project_id=arena.pk)
    services.submit_judgment(
        annotator_id=annotator.pk,
        task_id=task.pk,
        data=services.JudgmentInput(kind="pairwise", choice="a", idempotency_key="upset"),
    )
    board = leaderboards.leaderboard(arena.pk, rounds=50)
    assert board.comparisons == 33
    assert {row.model: row.wins for row in board.rows}["weak"] == 2 + 1 + 0.5 + 1 + 1
    services.undo_last_judgment(annotator_id=annotator.pk, project_id=arena.pk)
    assert leaderboards.leaderboard(arena.pk, rounds=50).comparisons == 32

    ModelVersion.objects.filter(pk=weak.pk).update(name="feeble")
    board = leaderboards.leaderboard(arena.pk, rounds=50)
    assert "feeble" in [row.model for row in board.rows]
    assert "weak" not in [row.model for row in board.rows]


def assert_as_if_read_whole(board, project_id):
    whole = leaderboards.computed_leaderboard(project_id, rounds=50, seed=0, style_control=False)
    assert board.comparisons == whole.comparisons
    assert board.rows == whole.rows  # Elo folded in a batch at a time, counts and intervals


def test_leaderboard_folds_newer_judgments_in_unless_older_ones_changed(
    arena, make_member, monkeypatch
):
    reads = []
    read = leaderboards.model_comparisons

    def recorded(project_id, **kwargs):
        reads.append(kwargs.get("after"))
        return read(project_id, **kwargs)

    monkeypatch.setattr(leaderboards, "model_comparisons", recorded)
    first = leaderboards.leaderboard(arena.pk, rounds=50)
    assert reads == [None]  # nothing kept yet: read whole
    assert leaderboards.leaderboard(arena.pk, rounds=50) == first
    assert reads == [None]  # cached

    newest = Judgment.objects.filter(task__project=arena).latest("pk").pk
    more = [battle("newcomer", name, "model_a", 100 + n) for n, name in enumerate(["weak"] * 3)]
    import_jsonl(project_id=arena.pk, user_id=None, lines=more, format="arena")
    board = leaderboards.leaderboard(arena.pk, rounds=50)
    assert reads[-1] == newest  # only the newer judgments read
    assert board.comparisons == 34 and "newcomer" in [row.model for row in board.rows]
    assert_as_if_read_whole(board, arena.pk)

    # A judgment taken back: the kept counts no longer hold, so everything is read again.
    Judgment.objects.filter(pk=newest).delete()
    board = leaderboards.leaderboard(arena.pk, rounds=50)
    assert reads[-1] is None and board.comparisons == 33
    assert_as_if_read_whole(board, arena.pk)

    # A newer judgment dated before the kept ones would change Elo's order: read again too.
    import_jsonl(
        project_id=arena.pk,
        user_id=None,
        lines=[battle("weak", "strong", "model_a", 200)],
        format="arena",
    )
    late = Judgment.objects.filter(task__project=arena).latest("pk")
    Judgment.objects.filter(pk=late.pk).update(created_at=late.created_at - timedelta(days=1))
    board = leaderboards.leaderboard(arena.pk, rounds=50)
    assert reads[-1] is None and board.comparisons == 34
    assert_as_if_read_whole(board, arena.pk)


def test_rankings_count_as_comparisons_between_model_versions(project, make_member):
    versions = [
        services.create_model_version(project_id=project.pk, name=name) for name in ("x", "y", "z")
    ]
    prompt = services.create_prompt(project_id=project.pk, text="rank these")
    completions = [
        services.create_completion(prompt_id=prompt.pk, text=v.name, model_version_id=v.pk)
        for v in versions
    ]
    task = services.create_task(
        prompt_id=prompt.pk,
        completion_ids=[c.pk for c in completions],
        mode="ranking",
        judgments_wanted=2,
    )
    annotator = make_member()
    services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
    services.submit_judgment(
        annotator_id=annotator.pk,
        task_id=task.pk,
        data=services.JudgmentInput(
            kind="ranking",
            idempotency_key="r",
            ranking=[[completions[0].pk], [completions[1].pk, completions[2].pk]],
        ),
    )
    found = leaderboards.model_comparisons(project.pk)
    names = {v.pk: v.name for v in versions}
    events = sorted(
        (names[found.model_ids[a]], names[found.model_ids[b]], o)
        for a, b, o in zip(found.a, found.b, found.outcome, strict=True)
    )
    assert events == [("x", "y", 1.0), ("x", "z", 1.0), ("y", "z", 0.5)]
    board = leaderboards.leaderboard(project.pk, rounds=50)
    assert board.regularised  # one judgment cannot bound Bradley-Terry without a prior
    assert board.rows[0].model == "x"
    # The bootstrap resamples judgments: the one ranking, drawn whole in every round, leaves
    # nothing to vary (its three comparisons drawn one by one would).
    for row in board.rows:
        assert row.bt_low == pytest.approx(row.bt_score, abs=0.01)
        assert row.bt_high == pytest.approx(row.bt_score, abs=0.01)
    other = make_member()
    services.next_task_for(annotator_id=other.pk, project_id=project.pk)
    services.submit_judgment(
        annotator_id=other.pk,
        task_id=task.pk,
        data=services.JudgmentInput(
            kind="ranking",
            idempotency_key="r2",
            ranking=[[completions[2].pk], [completions[0].pk], [completions[1].pk]],
        ),
    )
    board = leaderboards.leaderboard(project.pk, rounds=50)  # the second one folded in
    assert board.rows[0].bt_low < board.rows[0].bt_high
    assert_as_if_read_whole(board, project.pk)


def judge(project, annotator, task, choice, key):
    services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
    return services.submit_judgment(
        annotator_id=annotator.pk,
        task_id=task.pk,
        data=services.JudgmentInput(kind="pairwise", choice=choice, idempotency_key=key),
    )


def test_agreement_report_figures(project, make_member, make_task):
    ann = [make_member(username=name) for name in ("ann", "bob", "cat")]
    tasks = [make_task(judgments_wanted=3) for _ in range(4)]
    # ann and bob always agree; cat disagrees on two of four tasks.
    plan = {"ann": "aaba", "bob": "aaba", "cat": "abbb"}
    for annotator in ann:
        for n, task in enumerate(tasks):
            judge(project, annotator, task, plan[annotator.username][n], f"{n}")
    gold = make_task()
    AnnotationTask.objects.filter(pk=gold.pk).update(is_gold=True, gold_answer={"choice": "a"})
    judge(project, ann[0], gold, "b", "gold")
    # As a gold check (tests/feedback/test_gold.py serves them): it scores.
    Assignment.objects.filter(task=gold, annotator=ann[0]).update(is_check=True)
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="trl",
        lines=[json.dumps({"prompt": "imported", "chosen": "c", "rejected": "r"})],
    )

    report = insights.agreement_report(project.pk)
    assert report.judgments == 13  # the imported judgment is left out
    assert report.overlapping_units == 4
    # Agreeing pairs of annotators per task: 3, 1, 3, 1 of 3 each -> 8 / 12.
    assert report.percent_agreement == pytest.approx(8 / 12)
    # Nominal alpha on the choices (aaa, aab, bbb, aab): coincidences aa 5, ab 2, ba 2, bb 3 of
    # 12, so D_o = 4/12 and D_e = 2 * 7 * 5 / (12 * 11); 1 - D_o / D_e = 13/35.
    assert report.pairwise_alpha == pytest.approx(13 / 35)
    assert report.ranking_alpha is None  # no rankings
    client = Client()
    client.force_login(make_member(username="rev", role="reviewer"))
    served = client.get(f"/api/v1/projects/{project.pk}/agreement/").json()
    assert served["pairwise_alpha"] == pytest.approx(13 / 35)
    assert served["ranking_alpha"] is None
    rows = {row.annotator: row for row in report.annotators}
    assert set(rows) == {"ann", "bob", "cat"}
    assert rows["ann"].agreement == pytest.approx(6 / 8)
    assert rows["cat"].agreement == pytest.approx(4 / 8)
    assert rows["ann"].gold_accuracy == 0.0 and rows["ann"].gold_judged == 1
    assert rows["bob"].gold_accuracy is None
    assert 0.0 <= rows["cat"].position_bias <= 1.0
    assert rows["ann"].judgments == 5
    assert report.over_time and report.over_time[-1]["tasks"] == 5


def test_agreement_counts_an_annotators_latest_view_of_outputs_met_in_two_tasks(
    project, make_member, make_task
):
    # As in the demo project: a pairwise task and a ranking task over the same outputs.
    project.ranking_enabled = True
    project.save()
    ann, bob = make_member(username="ann"), make_member(username="bob")
    pairwise = make_task(judgments_wanted=2)
    low, high = sorted(pairwise.items.values_list("completion_id", flat=True))
    ranking = services.create_task(
        prompt_id=pairwise.prompt_id, completion_ids=[low, high], mode="ranking"
    )
    low_wins = "a" if pairwise.items.get(position=0).completion_id == low else "b"
    judge(project, ann, pairwise, low_wins, "p")
    judge(project, bob, pairwise, low_wins, "p")
    services.next_task_for(annotator_id=ann.pk, project_id=project.pk)
    services.submit_judgment(
        annotator_id=ann.pk,
        task_id=ranking.pk,
        data=services.JudgmentInput(kind="ranking", ranking=[[high], [low]], idempotency_key="r"),
    )

    report = insights.agreement_report(project.pk)
    # ann's later ranking (high over low) stands against bob's pairwise verdict (low over high).
    assert report.overlapping_units == 1
    assert report.percent_agreement == 0.0
    assert report.ranking_alpha is None  # one ranking: nothing to agree on
    reviewer = make_member(username="rev", role="reviewer")
    client = Client()
    client.force_login(reviewer)
    assert client.get(f"/insights/projects/{project.pk}/agreement/").status_code == 200


def test_cached_agreement_report_follows_new_and_taken_back_judgments_and_renamed_people(
    project, make_member, make_task, monkeypatch
):
    reads = []
    read = insights.computed_agreement_report

    def recorded(project_id, gold):
        reads.append(project_id)
        return read(project_id, gold)

    monkeypatch.setattr(insights, "computed_agreement_report", recorded)
    ann, bob = make_member(username="ann"), make_member(username="bob")
    tasks = [make_task(judgments_wanted=2) for _ in range(2)]
    judge(project, ann, tasks[0], "a", "0")
    judge(project, bob, tasks[0], "a", "0")
    first = insights.agreement_report(project.pk)
    assert insights.agreement_report(project.pk) == first and len(reads) == 1  # cached

    judge(project, ann, tasks[1], "a", "1")
    judge(project, bob, tasks[1], "b", "1")
    report = insights.agreement_report(project.pk)
    assert len(reads) == 2 and report.percent_agreement == pytest.approx(1 / 2)

    services.undo_last_judgment(annotator_id=bob.pk, project_id=project.pk)
    report = insights.agreement_report(project.pk)
    assert len(reads) == 3 and report.percent_agreement == 1.0 and report.judgments == 3

    type(ann).objects.filter(pk=ann.pk).update(username="zed")
    report = insights.agreement_report(project.pk)
    assert len(reads) == 3  # the same judgments: names read fresh, rows sorted by them
    assert [row.annotator for row in report.annotators] == ["bob", "zed"]


def test_pages_are_for_reviewers_and_admins(arena, make_member, make_user):
    client = Client()
    url = f"/insights/projects/{arena.pk}/leaderboard/"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(make_member(role="annotator"))
    assert client.get(url).status_code == 403
    client.force_login(make_user())
    assert client.get(url).status_code == 404
    client.force_login(make_member(role="reviewer"))
    page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("<svg") == 2 and "strong" in html and "0.80" in html
    assert "cdn" not in html.lower()
    assert f"/insights/projects/{arena.pk}/agreement/" in html
    assert f"/projects/{arena.pk}/review/" in html
    agreement_page = client.get(f"/insights/projects/{arena.pk}/agreement/")
    assert agreement_page.status_code == 200 and "Krippendorff" in agreement_page.content.decode()


@pytest.fixture
def verbose(project):
    """Two versions of equal quality; "verbose" answers at length four times in five, "terse" one
    time in five, and the judge picks the longer answer nine times in ten."""
    rng = random.Random(3)
    long_answer, short_answer = "word " * 80, "word " * 10
    lines = []
    for n in range(1000):
        a, b = ("verbose", "terse") if n % 2 else ("terse", "verbose")
        text = {
            model: long_answer
            if rng.random() < (0.8 if model == "verbose" else 0.2)
            else short_answer
            for model in (a, b)
        }
        if text[a] == text[b]:
            winner = rng.choice(("model_a", "model_b"))
        else:
            longer = "model_a" if len(text[a]) > len(text[b]) else "model_b"
            shorter = "model_b" if longer == "model_a" else "model_a"
            winner = longer if rng.random() < 0.9 else shorter
        lines.append(
            json.dumps(
                {
                    "model_a": a,
                    "model_b": b,
                    "winner": winner,
                    "prompt": f"q{n}",
                    "response_a": f"{n} {text[a]}",
                    "response_b": f"{n} {text[b]}",
                }
            )
        )
    import_jsonl(project_id=project.pk, user_id=None, lines=lines, format="arena")
    return project


def test_style_control_takes_out_what_length_explains(verbose):
    plain = leaderboards.leaderboard(verbose.pk, rounds=50)
    assert plain.style_effects is None and all(row.style_score is None for row in plain.rows)
    board = leaderboards.leaderboard(verbose.pk, rounds=50, style_control=True)
    score = {row.model: row for row in board.rows}
    plain_gap = score["verbose"].bt_score - score["terse"].bt_score
    style_gap = score["verbose"].style_score - score["terse"].style_score
    assert plain_gap > 100
    assert abs(style_gap) < plain_gap / 4
    assert board.style_effects["length"] > 0.5
    # No answer here has markdown: nothing to estimate.
    assert board.style_effects["headers"] is None and board.style_effects["bold spans"] is None


def test_style_features_are_kept_and_only_newly_judged_outputs_measured(verbose, monkeypatch):
    from django.core.cache import cache

    measured = []
    measure = leaderboards.style_features

    def counted(text):
        measured.append(text)
        return measure(text)

    monkeypatch.setattr(leaderboards, "style_features", counted)
    first = leaderboards.leaderboard(verbose.pk, rounds=50, style_control=True)
    outputs = len(measured)
    assert outputs > 0
    more = json.dumps(
        {
            "model_a": "verbose",
            "model_b": "terse",
            "winner": "model_a",
            "prompt": "one more",
            "response_a": "A long **answer**.",
            "response_b": "Short.",
        }
    )
    import_jsonl(project_id=verbose.pk, user_id=None, lines=[more], format="arena")
    board = leaderboards.leaderboard(verbose.pk, rounds=50, style_control=True)
    assert sorted(measured[outputs:]) == ["A long **answer**.", "Short."]  # only the new ones
    assert board.comparisons == first.comparisons + 1
    # The comparisons with their style were kept too, and the new one appended to them.
    kept = cache.get(leaderboards.style_state_key(verbose.pk))
    assert (
        kept.model_a.size == board.comparisons and kept.newest == Judgment.objects.latest("pk").pk
    )
    cache.delete(leaderboards.style_key(verbose.pk))
    whole = leaderboards.computed_leaderboard(verbose.pk, rounds=50, seed=0, style_control=True)
    assert whole.rows == board.rows and whole.style_effects == board.style_effects

    # A judgment taken back: everything is read again, and agrees with a fresh read.
    Judgment.objects.filter(task__project=verbose).earliest("pk").delete()
    board = leaderboards.leaderboard(verbose.pk, rounds=50, style_control=True)
    assert board.comparisons == first.comparisons
    whole = leaderboards.computed_leaderboard(verbose.pk, rounds=50, seed=0, style_control=True)
    assert whole.rows == board.rows and whole.style_effects == board.style_effects


def test_style_control_through_the_api_and_the_page(verbose, make_member):
    client = Client()
    client.force_login(make_member(role="reviewer"))
    url = f"/api/v1/projects/{verbose.pk}/leaderboard/"
    assert client.get(url).json()["style_effects"] is None
    data = client.get(url + "?style_control=true").json()
    assert data["style_effects"]["length"] > 0.5
    assert all(row["style_score"] is not None for row in data["rows"])
    page = client.get(
        f"/insights/projects/{verbose.pk}/leaderboard/?style_control=1"
    ).content.decode()
    assert "Style held fixed" in page and "Length" in page
    assert (
        "Style held fixed"
        not in client.get(f"/insights/projects/{verbose.pk}/leaderboard/").content.decode()
    )


def test_charts_escape_labels_and_scale_points():
    svg = charts.interval_plot(["<b>"], [10.0], [5.0], [15.0], title="t")
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    heat = charts.heatmap(["a", "b"], [[None, 0.75], [0.25, None]], title="h")
    assert "0.75" in heat and "0.25" in heat and heat.count("<rect") == 4
    assert charts.nice_ticks(0, 1, 4) == [0, 0.5, 1.0]
    assert charts.nice_ticks(940, 1060) == [950, 1000, 1050]


def test_chart_labels_in_wide_scripts_are_measured_an_em_a_character():
    # Chinese, Japanese and full-width letters take a whole em (12 px); read as Latin letters,
    # a CJK model name ran past the margin sized for it. (The browser test cannot see this:
    # Chromium here has no CJK font and draws narrower boxes.)
    assert charts.text_width("通义千问") == 4 * 12.0
    assert charts.text_width("ＡＢ") == 2 * 12.0
    assert charts.text_width("gamma") < 5 * 12.0
    assert charts.fit_label("模" * 30) == "模" * 21 + "…"
