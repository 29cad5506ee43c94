"""Training pages through Django's test client: permissions, launching, live polling, round
actions, the registry with adapter downloads, and side-by-side comparisons."""

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from feedback.models import AnnotationTask, ModelVersion, Role
from feedback.services.imports import import_jsonl
from training.models import (
    AlignmentRound,
    JobKind,
    JobStatus,
    RoundDefaults,
    RoundState,
    TrainingJob,
)

from .builders import answer, make_prompt_set, make_round, make_version, trained_version

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def people(make_member, make_user):
    return {
        "admin": make_member(Role.ADMIN),
        "reviewer": make_member(Role.REVIEWER),
        "annotator": make_member(Role.ANNOTATOR),
        "stranger": make_user(),
    }


@pytest.fixture
def setup(project):
    policy = make_version(project, "base")
    prompt_set, prompts = make_prompt_set(project, n=3, name="Everyday questions")
    return {"policy": policy, "prompt_set": prompt_set, "prompts": prompts}


def signed_in(client, user):
    client.force_login(user)
    return client


def page_urls(project, round_, version):
    return [
        reverse("training:index"),
        reverse("training:round_list", args=[project.pk]),
        reverse("training:launch", args=[project.pk]),
        reverse("training:round_detail", args=[round_.pk]),
        reverse("training:registry", args=[project.pk]),
        reverse("training:compare", args=[project.pk]),
        reverse("training:adapter_download", args=[version.pk]),
    ]


def test_anonymous_visitors_are_sent_to_the_login_page(client, project, setup):
    round_ = make_round(project, setup["policy"], setup["prompt_set"])
    for url in page_urls(project, round_, setup["policy"]):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    # htmx requests get a whole-page redirect instead of a login form swapped into the page.
    response = client.get(reverse("training:round_live", args=[round_.pk]), headers=HTMX)
    assert response.status_code == 200 and response["HX-Redirect"].startswith(reverse("login"))


def test_the_top_bar_links_to_training_only_for_those_it_has_pages_for(client, people, make_user):
    link = f'href="{reverse("training:index")}"'.encode()
    for who, shown in (
        ("admin", True),
        ("reviewer", True),
        ("annotator", False),
        ("stranger", False),
    ):
        page = signed_in(client, people[who]).get(reverse("annotations:home"))
        assert page.status_code == 200
        assert (link in page.content) is shown, who
    staff = signed_in(client, make_user(is_staff=True)).get(reverse("annotations:home"))
    assert link in staff.content


def test_annotators_are_forbidden_and_strangers_see_nothing(client, project, setup, people):
    round_ = make_round(project, setup["policy"], setup["prompt_set"])
    urls = page_urls(project, round_, setup["policy"])[1:]
    signed_in(client, people["annotator"])
    for url in urls:
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"Only reviewers and admins" in response.content, url
    signed_in(client, people["stranger"])
    for url in urls:
        assert client.get(url).status_code == 404, url
    # The overview simply lists no project for them.
    response = client.get(reverse("training:index"))
    assert response.status_code == 200 and project.name.encode() not in response.content


def test_reviewers_read_but_only_admins_act(client, project, setup, people):
    round_ = make_round(project, setup["policy"], setup["prompt_set"])
    signed_in(client, people["reviewer"])
    for url in page_urls(project, round_, setup["policy"])[:-1]:
        if "/new/" in url:
            assert client.get(url).status_code == 403
        else:
            assert client.get(url).status_code == 200, url
    page = client.get(reverse("training:round_detail", args=[round_.pk])).content.decode()
    assert "Cancel round" not in page
    response = client.post(reverse("training:round_action", args=[round_.pk, "cancel"]))
    assert response.status_code == 403
    round_.refresh_from_db()
    assert round_.state == RoundState.GENERATING


def test_admin_sees_every_page(client, project, setup, people):
    round_ = make_round(project, setup["policy"], setup["prompt_set"])
    signed_in(client, people["admin"])
    for url in page_urls(project, round_, setup["policy"])[:-1]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'href="/static/css/training.css"' in response.content, url


def test_launch_form_shows_the_engines_defaults_per_method(client, project, setup, people):
    signed_in(client, people["admin"])
    page = client.get(reverse("training:launch", args=[project.pk])).content.decode()
    assert 'name="hp_generation"' in page and 'name="hp_dpo"' in page
    assert 'name="hp_ppo"' not in page
    assert "&quot;beta&quot;: 0.1" in page  # DPO's default, as editable JSON
    assert "Everyday questions (3 training prompts)" in page
    assert '<input type="radio" name="method" value="dpo" id="id_method_dpo" checked' in page
    # Switching to PPO swaps in its sections and keeps what was typed into the shared one.
    response = client.get(
        reverse("training:launch_hyperparameters", args=[project.pk]),
        {"method": "ppo", "hp_generation": '{"max_new_tokens": 7}', "hp_dpo": "{}"},
        headers=HTMX,
    )
    partial = response.content.decode()
    assert response.status_code == 200 and "<html" not in partial
    assert 'name="hp_ppo"' in partial and 'name="hp_reward"' in partial and "hp_dpo" not in partial
    assert "&quot;max_new_tokens&quot;: 7" in partial
    assert "&quot;kl_coef&quot;: 0.05" in partial
    assert "Hyperparameters for PPO." in partial


def test_launch_form_starts_from_the_projects_round_defaults_and_a_ranking_of_four(
    client, project, setup, people
):
    RoundDefaults.objects.create(project=project, hyperparameters={"dpo": {"beta": 0.25}})
    signed_in(client, people["admin"])
    page = client.get(reverse("training:launch", args=[project.pk])).content.decode()
    assert "&quot;beta&quot;: 0.25" in page and "round defaults" in page
    # The project ranks, so four samples make one ranking per prompt.
    assert 'name="samples_per_prompt" value="4"' in page
    project.ranking_enabled = False
    project.save(update_fields=["ranking_enabled"])
    page = client.get(reverse("training:launch", args=[project.pk])).content.decode()
    assert 'name="samples_per_prompt" value="2"' in page


def launch_data(setup, **overrides):
    data = {
        "policy": setup["policy"].pk,
        "prompt_set": setup["prompt_set"].pk,
        "method": "dpo",
        "samples_per_prompt": 2,
        "judgments_wanted": "",
        "hp_generation": '{"max_new_tokens": 32}',
        "hp_dpo": '{"beta": 0.2, "lora": {"rank": 8}}',
    }
    return {**data, **overrides}


def test_launching_creates_the_round_and_queues_its_generate_job(
    client, project, setup, people, django_capture_on_commit_callbacks
):
    signed_in(client, people["admin"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("training:launch", args=[project.pk]), launch_data(setup))
    round_ = AlignmentRound.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("training:round_detail", args=[round_.pk])
    assert (round_.state, round_.method, round_.number) == (RoundState.GENERATING, "dpo", 1)
    assert round_.judgments_wanted == 3  # 3 prompts x 1 pairwise task x overlap 1
    assert round_.hyperparameters["dpo"]["beta"] == 0.2
    assert round_.hyperparameters["dpo"]["lora"]["rank"] == 8
    assert round_.hyperparameters["dpo"]["lora"]["alpha"] == 32  # untouched keys keep defaults
    assert round_.hyperparameters["generation"]["max_new_tokens"] == 32
    job = TrainingJob.objects.get()
    assert (job.kind, job.status, job.alignment_round_id) == (
        JobKind.GENERATE,
        JobStatus.QUEUED,
        round_.pk,
    )
    assert job.config["prompt_ids"] == [p.pk for p in setup["prompts"]]
    assert len(callbacks) == 1  # the job goes to the worker on commit

    page = client.get(response["Location"]).content.decode()
    assert "Round 1 launched" in page
    assert "Generating samples" in page


def test_launch_errors_are_shown_next_to_the_form(client, project, setup, people):
    signed_in(client, people["admin"])
    url = reverse("training:launch", args=[project.pk])
    response = client.post(url, launch_data(setup, hp_dpo='{"beta": 0.2,}'))
    assert response.status_code == 422
    assert "Not valid JSON (line 1, column 14)" in response.content.decode()
    response = client.post(url, launch_data(setup, hp_dpo='{"betta": 1}'))
    assert response.status_code == 422
    assert "Unknown dpo hyperparameters: betta." in response.content.decode()
    response = client.post(url, launch_data(setup, samples_per_prompt=1))
    assert response.status_code == 422
    assert not AlignmentRound.objects.exists() and not TrainingJob.objects.exists()


def test_polling_answers_204_when_unchanged_and_286_when_the_round_has_ended(
    client, project, setup, people
):
    signed_in(client, people["reviewer"])
    round_ = make_round(project, setup["policy"], setup["prompt_set"], state=RoundState.ANNOTATING)
    url = reverse("training:round_live", args=[round_.pk])
    first = client.get(url, headers=HTMX)
    body = first.content.decode()
    assert first.status_code == 200 and "<html" not in body
    assert 'hx-trigger="every 2s"' in body
    fingerprint = body.split("?v=")[1].split('"')[0]
    assert client.get(url, {"v": fingerprint}, headers=HTMX).status_code == 204
    assert client.get(url, {"v": "stale"}, headers=HTMX).status_code == 200

    round_.state = RoundState.DONE
    round_.save()
    done = client.get(url, {"v": fingerprint}, headers=HTMX)
    assert done.status_code == 286
    assert "every 2s" not in done.content.decode() and "Done" in done.content.decode()
    for state in (RoundState.FAILED, RoundState.CANCELLED):
        round_.state = state
        round_.save()
        assert client.get(url, headers=HTMX).status_code == 286
    # The page itself does not poll a finished round.
    assert (
        "every 2s"
        not in client.get(reverse("training:round_detail", args=[round_.pk])).content.decode()
    )


def test_round_page_shows_jobs_curves_log_and_artifacts(client, project, setup, people):
    round_ = make_round(
        project, setup["policy"], setup["prompt_set"], state=RoundState.TRAINING_POLICY
    )
    TrainingJob.objects.create(
        project=project,
        kind=JobKind.DPO,
        status=JobStatus.RUNNING,
        alignment_round=round_,
        model_version=setup["policy"],
        progress=40.0,
        metrics_history=[
            {"step": 1, "loss": 0.69, "accuracy": 0.5},
            {"step": 2, "loss": 0.52, "accuracy": 0.75},
        ],
        log_tail="step 1 loss 0.69\nstep 2 loss 0.52 <script>\n",
        artifacts={"adapter_dir": "/var/artifacts/jobs/dpo-1/adapter"},
    )
    signed_in(client, people["reviewer"])
    page = client.get(reverse("training:round_detail", args=[round_.pk])).content.decode()
    assert page.count("<svg") == 2  # loss and accuracy curves
    assert '<progress class="tr-progress" max="100" value="40.0"' in page
    assert "step 2 loss 0.52 &lt;script&gt;" in page
    assert "/var/artifacts/jobs/dpo-1/adapter" in page
    assert 'aria-current="step"' in page


def post_action(client, round_, action, **kwargs):
    return client.post(reverse("training:round_action", args=[round_.pk, action]), **kwargs)


def test_cancel_then_resume_from_the_round_page(
    client, project, setup, people, django_capture_on_commit_callbacks
):
    signed_in(client, people["admin"])
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("training:launch", args=[project.pk]), launch_data(setup))
    round_ = AlignmentRound.objects.get()
    response = post_action(client, round_, "cancel", headers=HTMX)
    assert response.status_code == 200
    assert (
        'id="round-live"' in response.content.decode() and "Cancelled" in response.content.decode()
    )
    round_.refresh_from_db()
    assert (round_.state, round_.failed_state) == (RoundState.CANCELLED, RoundState.GENERATING)
    assert TrainingJob.objects.get().status == JobStatus.CANCELLED

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_action(client, round_, "resume")
    assert response.status_code == 302  # without htmx: back to the page
    round_.refresh_from_db()
    assert round_.state == RoundState.GENERATING
    assert TrainingJob.objects.get().status == JobStatus.QUEUED
    assert len(callbacks) == 1


def test_a_refused_action_shows_its_message_inline(client, project, setup, people):
    round_ = make_round(project, setup["policy"], setup["prompt_set"], state=RoundState.GENERATING)
    signed_in(client, people["admin"])
    response = post_action(client, round_, "move-on", headers=HTMX)
    assert response.status_code == 422  # htmx swaps 422 answers in (see base.html)
    assert "Round 1 is generating samples, not annotating." in response.content.decode()
    response = post_action(client, round_, "resume")
    assert response.status_code == 422
    assert "Round 1 has nothing to resume." in response.content.decode()
    assert "<html" in response.content.decode()  # the whole page, with the message, without htmx
    assert post_action(client, round_, "explode").status_code == 404


def test_moving_an_annotating_round_on_starts_training(client, project, setup, people, monkeypatch):
    from feedback.models import ExportSnapshot

    round_ = make_round(project, setup["policy"], setup["prompt_set"], state=RoundState.ANNOTATING)
    snapshot = ExportSnapshot.objects.create(
        project=project,
        kind="pairs",
        format="jsonl",
        row_count=5,
        content_hash="f" * 64,
        status="complete",
    )
    # The export itself is tested with the exports; here it stands for "five pairs were written".
    monkeypatch.setattr(
        "feedback.services.exports.export_pairs_to_file", lambda **kwargs: (snapshot, None)
    )
    signed_in(client, people["admin"])
    response = post_action(client, round_, "move-on", headers=HTMX)
    assert response.status_code == 200
    round_.refresh_from_db()
    assert round_.state == RoundState.TRAINING_POLICY
    assert TrainingJob.objects.get().kind == JobKind.DPO


def test_next_round_starts_from_the_new_version(client, project, setup, people):
    tuned = make_version(project, "base-r1-dpo", parent_id=setup["policy"].pk, method="dpo")
    round_ = make_round(
        project, setup["policy"], setup["prompt_set"], state=RoundState.DONE, result_version=tuned
    )
    signed_in(client, people["admin"])
    response = post_action(client, round_, "next", headers=HTMX)
    new = AlignmentRound.objects.get(number=2)
    assert response["HX-Redirect"] == reverse("training:round_detail", args=[new.pk])
    assert (new.policy_id, new.state) == (tuned.pk, RoundState.GENERATING)


def test_registry_nests_versions_and_offers_adapters(client, project, setup, people, artifact_root):
    child = trained_version(
        project, setup["policy"], "base-r1-dpo", metrics={"eval_accuracy": 0.8125}
    )
    adapter = Path(child.adapter_path)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights" * 100)
    (adapter / "adapter_config.json").write_text("{}")
    signed_in(client, people["reviewer"])
    page = client.get(reverse("training:registry", args=[project.pk])).content.decode()
    nested = page.index('aria-label="Trained from base"')
    assert (
        page.index('id="version-' + str(setup["policy"].pk))
        < nested
        < page.index(f'id="version-{child.pk}"')
    )
    assert "0.8125" in page
    assert "Imported with" not in page
    # A version an import named first says which import it came with.
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        lines=['{"prompt": "Q", "completion": "A", "model": "outside-model"}'],
        source="theirs.jsonl",
    )
    page = client.get(reverse("training:registry", args=[project.pk])).content.decode()
    assert re.search(r"Imported with</dt><dd><a [^>]*>theirs\.jsonl</a>", page)
    download = reverse("training:adapter_download", args=[child.pk])
    assert download in page
    assert reverse("training:adapter_download", args=[setup["policy"].pk]) not in page

    response = client.get(download)
    assert response.status_code == 200 and response.streaming
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="test-project-base-r1-dpo-adapter.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert archive.read("adapter_model.safetensors") == b"weights" * 100
    assert (
        client.get(reverse("training:adapter_download", args=[setup["policy"].pk])).status_code
        == 404
    )
    signed_in(client, people["annotator"])
    assert client.get(download).status_code == 403


def test_admins_delete_versions_nothing_uses_from_the_registry(client, project, setup, people):
    unused = make_version(project, "mistyped")
    make_round(project, setup["policy"], setup["prompt_set"])  # the round's policy is in use
    registry = reverse("training:registry", args=[project.pk])
    delete = [
        reverse("training:delete_version", args=[project.pk, v.pk])
        for v in (unused, setup["policy"])
    ]
    signed_in(client, people["reviewer"])
    page = client.get(registry).content.decode()
    assert "Delete model version" not in page
    assert client.post(delete[0]).status_code == 403

    signed_in(client, people["admin"])
    page = client.get(registry).content.decode()
    # Offered where no outputs or child versions show on the page; the service says the rest.
    assert delete[0] in page and delete[1] in page
    assert 'data-confirm="Delete model version mistyped? It holds no outputs."' in page
    assert "js/forms.js" in page  # which asks that before the form goes
    refused = client.post(delete[1], follow=True).content.decode()
    assert "Model version &#x27;base&#x27; is in use (1 round); nothing was deleted." in refused
    deleted = client.post(delete[0], follow=True)
    assert deleted.redirect_chain == [(registry, 302)]
    assert "Model version &#x27;mistyped&#x27; deleted." in deleted.content.decode()
    assert list(ModelVersion.objects.values_list("name", flat=True)) == ["base"]
    assert client.get(delete[0]).status_code == 405

    rename = reverse("training:rename_version", args=[project.pk, setup["policy"].pk])
    assert rename in client.get(registry).content.decode()
    renamed = client.post(rename, {"name": "base-v1"}, follow=True)
    assert renamed.redirect_chain == [(f"{registry}#version-{setup['policy'].pk}", 302)]
    assert "Model version renamed &#x27;base-v1&#x27;." in renamed.content.decode()
    empty = client.post(rename, {"name": " "}, follow=True).content.decode()
    assert "A model version needs a name." in empty
    signed_in(client, people["reviewer"])
    assert client.post(rename, {"name": "x"}).status_code == 403
    assert list(ModelVersion.objects.values_list("name", flat=True)) == ["base-v1"]


def test_side_by_side_shows_outputs_and_the_head_to_head(client, project, setup, people):
    base = setup["policy"]
    tuned = make_version(project, "tuned", parent_id=base.pk, method="dpo")
    p1, p2, p3 = setup["prompts"]
    answer(p1, base, "Base answer one.")
    answer(p1, tuned, "Tuned answer one.")
    answer(p2, tuned, "Only tuned answered, **in bold**. <script>alert(1)</script>")
    signed_in(client, people["admin"])
    url = reverse("training:compare", args=[project.pk])
    query = {"a": tuned.pk, "b": base.pk, "prompt_set": setup["prompt_set"].pk}
    page = client.get(url, query).content.decode()
    assert (
        "Tuned answer one." in page
        and "Base answer one." in page
        and "Only tuned answered, <strong>in bold</strong>." in page
    )
    # Outputs are rendered as annotators see them, and untrusted markup stays text.
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "no judgments yet" in page
    assert "Generate 2 missing outputs of B" in page
    assert "Send 1 pair to annotators blind" in page
    partial = client.get(url, {**query, "show": "different"}, headers=HTMX)
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    assert 'id="comparison"' in partial.content.decode()
    every_prompt = client.get(url, {**query, "prompt_set": ""}).content.decode()
    assert "on all prompts" in every_prompt and "Only tuned answered" in every_prompt
    # The same version twice is refused with a message, not an error page.
    same = client.get(url, {**query, "b": tuned.pk}).content.decode()
    assert "Pick a different version than A." in same
    # Without parameters it suggests the newest version against its parent.
    blank = client.get(url).content.decode()
    assert f'<option value="{tuned.pk}" selected>' in blank


def test_blind_comparison_creates_pairwise_tasks_and_generate_queues_a_job(
    client, project, setup, people, django_capture_on_commit_callbacks
):
    base = setup["policy"]
    tuned = make_version(project, "tuned", parent_id=base.pk, method="dpo")
    pairs = {}
    for prompt in setup["prompts"][:2]:
        pairs[prompt.pk] = {answer(prompt, base).pk, answer(prompt, tuned).pk}
    answer(setup["prompts"][2], tuned)
    form = {"a": tuned.pk, "b": base.pk, "prompt_set": setup["prompt_set"].pk}
    signed_in(client, people["reviewer"])
    assert (
        client.post(reverse("training:compare_blind", args=[project.pk]), form).status_code == 403
    )
    signed_in(client, people["admin"])
    response = client.post(reverse("training:compare_blind", args=[project.pk]), form, follow=True)
    assert (
        "Created 2 blind pairwise tasks. 1 prompt lacks an output of one version."
        in response.content.decode()
    )
    tasks = AnnotationTask.objects.prefetch_related("items")
    assert {t.prompt_id: {i.completion_id for i in t.items.all()} for t in tasks} == pairs
    assert {t.mode for t in tasks} == {"pairwise"}

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            reverse("training:compare_generate", args=[project.pk]),
            {"version": base.pk, "prompt_set": setup["prompt_set"].pk, "a": tuned.pk, "b": base.pk},
            follow=True,
        )
    job = TrainingJob.objects.get()
    assert f"Queued generate job #{job.pk} for 1 prompt." in response.content.decode()
    assert (job.kind, job.model_version_id, job.config["prompt_ids"]) == (
        JobKind.GENERATE,
        base.pk,
        [setup["prompts"][2].pk],
    )
    assert f"Generate job #{job.pk} for base is queued" in response.content.decode()
