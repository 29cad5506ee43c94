"""API behaviour: tokens, imports, annotating through the API, judgment filters, exports, docs."""

import gzip
import hashlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from feedback import services
from feedback.models import (
    AnnotationTask,
    ApiToken,
    ExportSnapshot,
    Judgment,
    ModelVersion,
    PreferencePair,
    Prompt,
)
from feedback.services.imports import import_jsonl
from tests.training.builders import make_prompt_set, make_round, make_version

pytestmark = pytest.mark.django_db


def test_a_token_is_shown_once_stored_hashed_and_stops_working_when_revoked(make_user):
    user = make_user()
    session = APIClient()
    session.force_login(user)
    created = session.post("/api/v1/tokens/", {"name": "laptop"}, format="json")
    assert created.status_code == 201
    key = created.data["key"]
    token = ApiToken.objects.get(pk=created.data["id"])
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest() and key not in token.key_hash
    listed = session.get("/api/v1/tokens/").data["results"]
    assert listed[0]["prefix"] == token.prefix and "key" not in listed[0]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/projects/").status_code == 200
    # A token cannot make another: revoking a leaked one would leave its offspring working.
    spawned = client.post("/api/v1/tokens/", {"name": "mine now"}, format="json")
    assert spawned.status_code == 403 and "sign in" in spawned.data["detail"]
    assert ApiToken.objects.filter(user=user).count() == 1
    token.refresh_from_db()
    assert token.last_used_at is not None
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key[:-1]}x")
    assert client.get("/api/v1/projects/").status_code == 401

    assert session.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/projects/").status_code == 401
    other = make_user()
    assert APIClient().get("/api/v1/tokens/").status_code == 401
    stranger = APIClient()
    stranger.force_login(other)
    assert stranger.delete(f"/api/v1/tokens/{token.pk}/").status_code == 404


def test_import_refuses_a_bad_file_naming_each_line(client_for, make_member, project):
    client = client_for(make_member(role="admin"))
    body = "\n".join(
        [
            json.dumps({"prompt": "ok", "chosen": "a", "rejected": "b"}),
            json.dumps({"prompt": "p", "chosen": "a", "rejected": 3}),
            "nope",
        ]
    )
    response = client.post(
        f"/api/v1/projects/{project.pk}/imports/?import_format=trl",
        data=body,
        content_type="application/jsonl",
    )
    assert response.status_code == 400
    assert [d.split(":")[0] for d in response.data["details"]] == ["line 2", "line 3"]
    assert not Prompt.objects.exists()


def test_import_takes_gzipped_multipart_uploads(client_for, make_member, project):
    client = client_for(make_member(role="admin"))
    lines = "".join(
        json.dumps(
            {
                "chosen": f"\n\nHuman: q{i}\n\nAssistant: yes",
                "rejected": f"\n\nHuman: q{i}\n\nAssistant: no",
            }
        )
        + "\n"
        for i in range(3)
    )
    upload = SimpleUploadedFile(
        "hh.jsonl.gz", gzip.compress(lines.encode()), content_type="application/gzip"
    )
    response = client.post(
        f"/api/v1/projects/{project.pk}/imports/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 201, response.data
    assert response.data["format"] == "hh" and response.data["created"]["pairs"] == 3
    assert response.data["batch"]["source"] == "hh.jsonl.gz"
    listed = client.get(f"/api/v1/projects/{project.pk}/imports/").data["results"]
    assert [(row["line_count"], row["made"]) for row in listed] == [
        (3, {"prompts": 3, "completions": 6, "pairs": 3})
    ]

    # Cut short in transit: refused as such, nothing kept.
    upload = SimpleUploadedFile("hh.jsonl.gz", gzip.compress(lines.encode())[:-12])
    response = client.post(
        f"/api/v1/projects/{project.pk}/imports/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert response.data["detail"].startswith("Not a readable gzip file (Compressed file ended")
    assert len(client.get(f"/api/v1/projects/{project.pk}/imports/").data["results"]) == 1


def parquet_file(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def test_import_takes_parquet_as_the_hub_stores_datasets(client_for, make_member, project):
    # UltraFeedback binarized's columns: a string prompt beside whole conversations, and more.
    def row(n: int, rejected_reply) -> dict:
        question = {"role": "user", "content": f"q{n}"}
        return {
            "prompt": f"q{n}",
            "prompt_id": f"id{n}",
            "chosen": [question, {"role": "assistant", "content": "good"}],
            "rejected": [question, {"role": "assistant", "content": rejected_reply}],
            "score_chosen": 8.0,
            "score_rejected": 2.5,
        }

    client = client_for(make_member(role="admin"))
    url = f"/api/v1/projects/{project.pk}/imports/"
    upload = SimpleUploadedFile(
        "train-00000-of-00001.parquet", parquet_file([row(0, "bad"), row(1, "worse")])
    )
    response = client.post(url, {"file": upload}, format="multipart")
    assert response.status_code == 201, response.data
    assert response.data["format"] == "trl" and response.data["created"]["pairs"] == 2
    pair = PreferencePair.objects.order_by("pk").last()
    assert pair.prompt.messages == [{"role": "user", "content": "q1"}]
    assert (pair.chosen.text, pair.rejected.text) == ("good", "worse")

    # The raw body, as the export sends it; a bad row is named by its number, nothing kept.
    response = client.post(
        url,
        data=parquet_file([row(2, "bad"), row(3, "bad"), {**row(4, "bad"), "chosen": []}]),
        content_type="application/vnd.apache.parquet",
    )
    assert response.status_code == 400
    assert [d.split(":")[0] for d in response.data["details"]] == ["line 3"]
    assert PreferencePair.objects.count() == 2 and Prompt.objects.count() == 2

    response = client.post(
        url, {"file": SimpleUploadedFile("x.parquet", b"PAR1 not really")}, format="multipart"
    )
    assert response.status_code == 400
    assert response.data["detail"].startswith("Not a readable Parquet file")


def test_model_versions_list_says_which_import_brought_them(client_for, make_member, project):
    client = client_for(make_member(role="annotator"))
    batch = import_jsonl(
        project_id=project.pk,
        user_id=None,
        lines=['{"prompt": "Q", "completion": "A", "model": "theirs"}'],
    ).batch
    services.create_model_version(project_id=project.pk, name="ours")
    rows = client.get(f"/api/v1/projects/{project.pk}/model-versions/").data["results"]
    assert [(r["name"], r["method"], r["import_batch"]) for r in rows] == [
        ("ours", "base", None),
        ("theirs", "imported", batch.pk),
    ]


def test_model_versions_are_renamed_and_deleted_through_the_api(client_for, make_member, project):
    client = client_for(make_member(role="admin"))
    url = f"/api/v1/projects/{project.pk}/model-versions/"
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        lines=['{"prompt": "Q", "completion": "A", "model": "answering"}'],
    )
    answering = ModelVersion.objects.get(name="answering")
    typo = services.create_model_version(project_id=project.pk, name="typo")
    refused = client.delete(f"{url}{answering.pk}/")
    assert refused.status_code == 409
    assert refused.data["detail"].startswith("Model version 'answering' is in use (1 output)")
    renamed = client.patch(f"{url}{typo.pk}/", {"name": "fixed"}, format="json")
    assert renamed.status_code == 200 and renamed.data["name"] == "fixed"
    clash = client.patch(f"{url}{typo.pk}/", {"name": "answering"}, format="json")
    assert clash.status_code == 409
    assert client.patch(f"{url}{typo.pk}/", {}, format="json").status_code == 400
    assert client.delete(f"{url}{typo.pk}/").status_code == 204
    assert client.delete(f"{url}{typo.pk}/").status_code == 404
    assert [v["name"] for v in client.get(url).data["results"]] == ["answering"]


def test_an_import_is_deleted_through_the_api(client_for, make_member, project):
    client = client_for(make_member(role="admin"))
    url = f"/api/v1/projects/{project.pk}/imports/"
    body = "prompt,chosen,rejected\nQ1,a,b\nQ2,c,d\n"
    batch = client.post(url, data=body.encode(), content_type="text/csv").data["batch"]["id"]
    response = client.delete(f"{url}{batch}/")
    assert response.status_code == 200, response.data
    assert response.data == {
        "detail": f"Import #{batch} deleted: 2 prompts, 4 outputs, 2 pairs.",
        "prompts": 2,
        "completions": 4,
        "pairs": 2,
        "tasks": 0,
        "model_versions": 0,
        "kept_prompts": 0,
        "kept_model_versions": 0,
    }
    assert not PreferencePair.objects.exists() and not Prompt.objects.exists()
    gone = client.delete(f"{url}{batch}/")
    assert gone.status_code == 404 and gone.data == {"detail": "No such import in this project."}


def test_import_takes_csv_as_kaggle_and_spreadsheets_write_it(client_for, make_member, project):
    client = client_for(make_member(role="admin"))
    url = f"/api/v1/projects/{project.pk}/imports/"
    # Kaggle's arena battles (train.csv) as the raw body: turns JSON-encoded inside quoted cells.
    kaggle = (
        "id,model_a,model_b,prompt,response_a,response_b,winner_model_a,winner_model_b,winner_tie\r\n"
        '1,gpt-4,llama,"[""Hi, there""]","[""Hello!\\nHow can I help?""]","[null]",1,0,0\r\n'
        '2,gpt-4,llama,"[""Q""]","[""x""]","[""y""]",0,0,1\r\n'
    )
    checked = client.post(f"{url}?dry_run=true", data=kaggle.encode(), content_type="text/csv")
    assert checked.status_code == 200, checked.data
    assert checked.data["batch"] is None and checked.data["created"]["judgments"] == 2
    assert not Prompt.objects.exists()
    response = client.post(url, data=kaggle.encode(), content_type="text/csv")
    assert response.status_code == 201, response.data
    assert response.data["format"] == "arena" and response.data["lines"] == 2
    assert response.data["created"] == {
        "model_versions": 2,
        "prompts": 2,
        "completions": 4,
        "tasks": 2,
        "judgments": 2,
        "pairs": 1,
    }
    pair = PreferencePair.objects.get()
    assert (pair.prompt.text, pair.chosen.text, pair.rejected.text) == (
        "Hi, there",
        "Hello!\nHow can I help?",
        "",
    )

    # A spreadsheet's TRL pairs through the form field, gzipped; bad rows named, nothing kept.
    sheet = "prompt,chosen,rejected,margin\nQ1,a,b,1\nQ2,a,b,much\nQ3,a,b,2,extra\n"
    upload = SimpleUploadedFile("pairs.csv.gz", gzip.compress(sheet.encode()))
    response = client.post(url, {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert response.data["details"] == [
        "line 2: 'margin' must be a number.",
        "line 3: 5 cells, but the header names 4 columns.",
    ]
    assert PreferencePair.objects.count() == 1
    upload = SimpleUploadedFile("pairs.csv", sheet.encode().split(b"Q2")[0])
    response = client.post(url, {"file": upload}, format="multipart")
    assert response.status_code == 201, response.data
    assert PreferencePair.objects.filter(policy="import", margin=1.0).count() == 1


def test_an_api_client_annotates_like_the_ui(client_for, make_member, make_task, project):
    task = make_task()
    annotator = make_member()
    client = client_for(annotator)
    lease = client.post(f"/api/v1/projects/{project.pk}/next-task/")
    assert lease.status_code == 200 and lease.data["task_id"] == task.pk
    assert (lease.data["project_id"], lease.data["mode"]) == (project.pk, "pairwise")
    assert (lease.data["prompt_text"], lease.data["prompt_messages"]) == (task.prompt.text, None)
    shown = [item["completion_id"] for item in lease.data["items"]]
    assert sorted(shown) == sorted(task.items.values_list("completion_id", flat=True))
    texts = dict(task.items.values_list("completion_id", "completion__text"))
    assert [item["text"] for item in lease.data["items"]] == [texts[cid] for cid in shown]
    # The items come in this annotator's shuffled order; "a" names position 0, wherever listed.
    positions = dict(task.items.values_list("completion_id", "position"))
    assert [item["position"] for item in lease.data["items"]] == [positions[c] for c in shown]
    bad = client.post(
        "/api/v1/judgments/",
        {"task": task.pk, "kind": "pairwise", "choice": "z", "idempotency_key": "k1"},
        format="json",
    )
    assert bad.status_code == 400 and "Choose A, B" in bad.data["detail"]
    body = {
        "task": task.pk,
        "kind": "pairwise",
        "choice": "a",
        "strength": "much",
        "idempotency_key": "k1",
    }
    created = client.post("/api/v1/judgments/", body, format="json")
    assert created.status_code == 201 and created.data["shown_order"] == shown
    again = client.post("/api/v1/judgments/", body, format="json")
    assert again.status_code == 201 and again.data["id"] == created.data["id"]
    assert Judgment.objects.count() == 1
    assert client.post(f"/api/v1/projects/{project.pk}/next-task/").status_code == 204
    other_task = make_task()
    someone = make_member()
    other_client = client_for(someone)
    other_client.post(f"/api/v1/projects/{project.pk}/next-task/")
    refused = client.post(
        "/api/v1/judgments/",
        {**body, "task": other_task.pk, "idempotency_key": "k2"},
        format="json",
    )
    assert refused.status_code == 403
    assert client.post(f"/api/v1/tasks/{other_task.pk}/skip/", {}, format="json").status_code == 409
    skipped = other_client.post(
        f"/api/v1/tasks/{other_task.pk}/skip/", {"reason": "unsafe"}, format="json"
    )
    assert skipped.status_code == 200


def test_judgment_list_is_scoped_and_filtered(client_for, make_member, make_task, project):
    tasks = [make_task(judgments_wanted=2), make_task(judgments_wanted=2)]
    ann1, ann2 = make_member(), make_member()
    reviewer = make_member(role="reviewer")
    for annotator in (ann1, ann2):
        for _ in tasks:
            assignment = services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
            services.submit_judgment(
                annotator_id=annotator.pk,
                task_id=assignment.task_id,
                data=services.JudgmentInput(
                    kind="pairwise", choice="b", idempotency_key=f"{assignment.task_id}"
                ),
            )
    own = client_for(ann1).get("/api/v1/judgments/").data["results"]
    assert {row["annotator"] for row in own} == {ann1.username} and len(own) == 2
    everyone = client_for(reviewer).get("/api/v1/judgments/").data["results"]
    assert len(everyone) == 4
    filtered = (
        client_for(reviewer)
        .get(f"/api/v1/judgments/?annotator={ann2.pk}&task={tasks[0].pk}")
        .data["results"]
    )
    assert [(row["annotator"], row["task"]) for row in filtered] == [(ann2.username, tasks[0].pk)]
    assert client_for(reviewer).get("/api/v1/judgments/?choice=a").data["results"] == []
    first = client_for(reviewer).get("/api/v1/judgments/?page_size=1").data
    second = client_for(reviewer).get(first["next"]).data
    assert len(first["results"]) == len(second["results"]) == 1
    assert first["results"][0]["id"] > second["results"][0]["id"]


def test_derive_then_export_pairs_through_the_api(client_for, make_member, make_task, project):
    task = make_task()
    admin = make_member(role="admin")
    assignment = services.next_task_for(annotator_id=admin.pk, project_id=project.pk)
    services.submit_judgment(
        annotator_id=admin.pk,
        task_id=assignment.task_id,
        data=services.JudgmentInput(
            kind="pairwise", choice="b", strength="much", idempotency_key="x"
        ),
    )
    client = client_for(admin)
    derived = client.post(
        f"/api/v1/projects/{project.pk}/pairs/derive/", {"name": "majority"}, format="json"
    )
    assert derived.status_code == 200 and derived.data["pairs"] == 1
    pair = PreferencePair.objects.get(policy="majority")
    b_item = task.items.get(position=1).completion
    assert (
        pair.chosen == b_item
        and pair.margin == 2.0
        and list(pair.judgments.all()) == list(Judgment.objects.all())
    )
    assert (
        client.post(
            f"/api/v1/projects/{project.pk}/pairs/derive/", {"name": "import"}, format="json"
        ).status_code
        == 400
    )

    response = client.get(
        f"/api/v1/projects/{project.pk}/exports/pairs/?format=jsonl&margin=true&policy=majority"
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/jsonl"
    data = b"".join(response.streaming_content)
    assert json.loads(data) == {
        "prompt": task.prompt.text,
        "chosen": b_item.text,
        "rejected": task.items.get(position=0).completion.text,
        "margin": 2.0,
    }
    snapshot = ExportSnapshot.objects.get(pk=response["X-Export-Snapshot"])
    assert snapshot.content_hash == hashlib.sha256(data).hexdigest() and snapshot.filters[
        "policies"
    ] == ["majority"]
    detail = client.get(f"/api/v1/exports/{snapshot.pk}/").data
    assert detail["row_count"] == 1 and detail["status"] == "complete"
    parquet = client.get(f"/api/v1/projects/{project.pk}/exports/pairs/?format=parquet")
    assert parquet.status_code == 200 and b"".join(parquet.streaming_content)[:4] == b"PAR1"
    # Refusals are JSON, whichever file was asked for.
    refused = client.get(
        f"/api/v1/projects/{project.pk}/exports/pairs/?format=parquet&min_agreement=2"
    )
    assert refused.status_code == 400 and refused["Content-Type"] == "application/json"
    assert "min_agreement" in refused.json()
    unknown = client.get(f"/api/v1/projects/{project.pk}/exports/pairs/?format=csv")
    assert unknown.status_code == 400 and unknown["Content-Type"] == "application/json"
    assert unknown.json() == {"format": ["Unknown format 'csv'; use jsonl or parquet."]}


def test_the_openapi_schema_is_valid_and_draws_without_warnings(tmp_path):
    """A warning is a guess drf-spectacular made (an enum's name, a field's type): clients
    generated from the schema would carry it."""
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", tmp_path / "schema.yaml")


def test_docs_page_lists_every_endpoint_offline(client_for, make_user):
    response = client_for(make_user()).get("/api/v1/docs/")
    html = response.content.decode()
    assert response.status_code == 200
    for path in ("/api/v1/projects/{project_id}/imports/", "/api/v1/judgments/", "/api/v1/tokens/"):
        assert path in html
    assert "https://" not in html.split("<main", 1)[1].split("</main>")[0].replace(
        "https://huggingface.co", ""
    )
    assert '<script src="http' not in html
    # Every endpoint says what it does itself, not what a shared base class is for.
    assert "refusal into an HTTP answer" not in html and "v1 (1)" not in html
    # Grouped by what they are for, and a body's fields are listed with their types.
    assert html.index('id="data-in"') < html.index("/api/v1/projects/{project_id}/imports/")
    assert html.index("/api/v1/projects/{project_id}/imports/") < html.index(
        'id="tasks-and-judging"'
    )
    members = html.split('id="post-api-v1-projects-project_id-members"')[1].split("</tr>")[0]
    assert "<code>username</code> <small>(string, required)</small>" in members
    assert "annotator | reviewer | admin" in members
    assert 'id="other"' not in html  # every endpoint has its section
    schema = client_for(make_user()).get("/api/v1/schema/?format=json")
    assert (
        schema.status_code == 200
        and "/api/v1/projects/{project_id}/exports/pairs/" in schema.json()["paths"]
    )
    export = schema.json()["paths"]["/api/v1/projects/{project_id}/exports/pairs/"]["get"]
    assert {"format", "style", "min_agreement"} <= {p["name"] for p in export["parameters"]}


def test_imports_and_exports_have_their_own_rate_limits(
    client_for, make_member, project, monkeypatch
):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"import": "1/hour", "export": "2/hour"}
    )
    cache.clear()
    client = client_for(make_member(role="admin"))
    body = json.dumps({"prompt": "p"})
    url = f"/api/v1/projects/{project.pk}/imports/?import_format=prompts"
    assert client.post(url, data=body, content_type="application/jsonl").status_code == 201
    assert client.post(url, data=body, content_type="application/jsonl").status_code == 429
    assert (
        client.get(f"/api/v1/projects/{project.pk}/imports/").status_code == 200
    )  # listing is not an import
    export = f"/api/v1/projects/{project.pk}/exports/judgments/"
    kept = client.post(export).data["file"]
    assert [client.get(export).status_code for _ in range(2)] == [200, 429]
    # A kept file is served, not exported: a reader that fetches it a range at a time (fsspec
    # streaming a Parquet file) is held to the general rate only.
    assert [client.get(kept).status_code for _ in range(5)] == [200] * 5
    cache.clear()


def test_imported_outputs_become_tasks_through_the_api(client_for, make_member, project):
    client = client_for(make_member(role="admin"))
    lines = "\n".join(
        json.dumps({"prompt": f"Question {q}?", "completion": f"{model} says {q}", "model": model})
        for q in range(3)
        for model in ("alpha", "beta", "gamma")
    )
    imported = client.post(
        f"/api/v1/projects/{project.pk}/imports/?import_format=completions",
        data=lines,
        content_type="application/jsonl",
    )
    assert imported.status_code == 201, imported.data
    url = f"/api/v1/projects/{project.pk}/tasks/"
    created = client.post(url, {"mode": "pairwise", "judgments_wanted": 2}, format="json")
    assert created.status_code == 201, created.data
    assert created.data == {"created": 9, "prompts": 3, "already_there": 0, "too_few_outputs": 0}
    assert AnnotationTask.objects.filter(project=project, judgments_wanted=2).count() == 9
    again = client.post(url, {"mode": "pairwise"}, format="json")
    assert (again.data["created"], again.data["already_there"]) == (0, 9)

    refused = client.post(url, {"mode": "ranking", "model_version_ids": [10_000]}, format="json")
    assert refused.status_code == 400
    assert refused.data["detail"] == "Model versions [10000] are not in this project."
    bad = client.post(url, {"mode": "pairwise", "prompt_ids": []}, format="json")
    assert bad.status_code == 400 and "prompt_ids" in bad.data
    assert AnnotationTask.objects.count() == 9
    ranked = client.post(url, {"mode": "ranking"}, format="json")
    assert (ranked.status_code, ranked.data["created"]) == (201, 3)
    assert AnnotationTask.objects.filter(mode="ranking").count() == 3
    assert client.delete(f"{url}?mode=ranking").data == {"deleted": 3}
    assert client.delete(f"{url}?mode=vibes").status_code == 400
    assert AnnotationTask.objects.count() == 9

    reviewer = client_for(make_member(role="reviewer"))
    outputs = reviewer.get(f"/api/v1/projects/{project.pk}/completions/?page_size=1000").data
    assert len(outputs["results"]) == 9
    beta = ModelVersion.objects.get(project=project, name="beta")
    only_beta = reviewer.get(f"/api/v1/projects/{project.pk}/completions/?model_version={beta.pk}")
    assert {row["text"] for row in only_beta.data["results"]} == {
        f"beta says {q}" for q in range(3)
    }
    assert {row["model_version"] for row in only_beta.data["results"]} == {beta.pk}
    listed = reviewer.get(f"{url}?mode=pairwise&page_size=4")
    assert listed.status_code == 200
    newest = AnnotationTask.objects.order_by("-pk")[:4]
    assert [row["id"] for row in listed.data["results"]] == [task.pk for task in newest]
    row = listed.data["results"][0]
    items = newest[0].items.order_by("position").values_list("completion_id", flat=True)
    assert row["completions"] == list(items) and len(items) == 2
    assert (row["mode"], row["status"], row["judgments_wanted"], row["judgment_count"]) == (
        "pairwise",
        "open",
        2,
        0,
    )
    assert listed.data["next"]  # cursor pages through the rest
    assert client.get(f"{url}?status=complete").data["results"] == []
    assert client.get(f"{url}?mode=vibes").status_code == 400


def test_an_api_client_takes_back_its_last_judgment(client_for, make_member, make_task, project):
    first, second = make_task(), make_task()
    client = client_for(make_member())
    url = f"/api/v1/projects/{project.pk}/undo/"
    nothing = client.post(url)
    assert nothing.status_code == 404 and "no judgment" in nothing.data["detail"]
    lease = client.post(f"/api/v1/projects/{project.pk}/next-task/").data
    body = {"task": lease["task_id"], "kind": "pairwise", "choice": "a", "idempotency_key": "k"}
    assert client.post("/api/v1/judgments/", body, format="json").status_code == 201
    client.post(f"/api/v1/projects/{project.pk}/next-task/")  # holds the other task now
    undone = client.post(url)
    assert undone.status_code == 200
    assert (undone.data["task_id"], undone.data["items"]) == (lease["task_id"], lease["items"])
    assert not Judgment.objects.exists()
    # The task held meanwhile went back to the queue: someone else gets it.
    (other_task,) = {first.pk, second.pk} - {lease["task_id"]}
    someone = client_for(make_member())
    assert someone.post(f"/api/v1/projects/{project.pk}/next-task/").data["task_id"] == other_task


def test_prompt_sets_through_the_api(client_for, make_member, project):
    prompts = [services.create_prompt(project_id=project.pk, text=f"q{n}") for n in range(3)]
    admin, reviewer = (
        client_for(make_member(role="admin")),
        client_for(make_member(role="reviewer")),
    )
    url = f"/api/v1/projects/{project.pk}/prompt-sets/"
    body = {"name": "first two", "prompt_ids": [p.pk for p in prompts[:2]]}
    created = admin.post(url, body, format="json")
    assert created.status_code == 201
    assert (created.data["name"], created.data["prompt_count"]) == ("first two", 2)
    listed = reviewer.get(url).data["results"]
    assert [(row["name"], row["prompt_count"]) for row in listed] == [("first two", 2)]
    refused = admin.post(url, {"name": "none", "prompt_ids": [10_000]}, format="json")
    assert refused.status_code == 400 and "are not in this project" in refused.data["detail"]


def test_staff_start_projects_and_admins_run_them_through_the_api(
    client_for, make_user, make_member, make_task
):
    staff = make_user(is_staff=True)
    client = client_for(staff)
    body = {"name": "Chat eval", "modes": ["pairwise", "ranking"], "overlap": 3}
    created = client.post("/api/v1/projects/", body, format="json")
    assert created.status_code == 201, created.data
    project_id = created.data["id"]
    assert (created.data["modes"], created.data["overlap"]) == (["pairwise", "ranking"], 3)
    members = client.get(f"/api/v1/projects/{project_id}/members/").data
    assert members == [{"user": staff.pk, "username": staff.username, "role": "admin"}]
    again = client.post("/api/v1/projects/", body, format="json")
    assert again.status_code == 409 and "exists already" in again.data["detail"]
    assert (
        client.post("/api/v1/projects/", {"name": "x", "overlap": 0}, format="json").status_code
        == 400
    )
    assert client_for(make_user()).post("/api/v1/projects/", {"name": "mine"}).status_code == 403
    assert client.get("/api/v1/projects/10000/").status_code == 404  # staff see every project
    assert client.patch("/api/v1/projects/10000/", {"overlap": 2}).status_code == 404

    url = f"/api/v1/projects/{project_id}/"
    changed = client.patch(url, {"guidelines": "Be kind.", "overlap": 2}, format="json")
    assert changed.status_code == 200, changed.data
    assert (changed.data["guidelines"], changed.data["modes"], changed.data["overlap"]) == (
        "Be kind.",
        ["pairwise", "ranking"],  # left out, so kept
        2,
    )
    assert changed.data["contents"] == {"prompts": 0, "outputs": 0, "tasks": 0, "open_tasks": 0}
    refused = client.patch(url, {"modes": []}, format="json")
    assert refused.status_code == 400
    assert client.patch(url, {"overlap": 101}, format="json").data["detail"] == (
        "Overlap (judgments wanted per task) is 1 to 100."
    )
    assert changed.data["gold_percent"] == 10
    assert client.patch(url, {"gold_percent": 0}, format="json").data["gold_percent"] == 0
    assert client.patch(url, {"gold_percent": 60}, format="json").data["detail"] == (
        "Gold checks are 0 to 50% of the tasks served."
    )

    annotator = make_user(username="ann")
    members_url = f"/api/v1/projects/{project_id}/members/"
    added = client.post(members_url, {"username": "ann"}, format="json")
    assert added.status_code == 201
    assert added.data == {"user": annotator.pk, "username": "ann", "role": "annotator"}
    missing = client.post(members_url, {"username": "nobody"}, format="json")
    assert missing.status_code == 404 and "nobody" in missing.data["detail"]
    promoted = client.patch(f"{members_url}{annotator.pk}/", {"role": "reviewer"}, format="json")
    assert promoted.data["role"] == "reviewer"
    assert client_for(annotator).get(url).data["contents"]["tasks"] == 0  # members read it
    last_admin = client.delete(f"{members_url}{staff.pk}/")
    assert last_admin.status_code == 409 and "admin" in last_admin.data["detail"]
    assert client.delete(f"{members_url}{annotator.pk}/").status_code == 204
    assert client.delete(f"{members_url}{annotator.pk}/").status_code == 404
    assert client_for(annotator).get(url).status_code == 404


def test_admins_make_list_and_revoke_links_through_the_api(client_for, project, make_member):
    admin = make_member(role="admin")
    client = client_for(admin)
    url = f"/api/v1/projects/{project.pk}/invitations/"
    made = client.post(url, {"role": "reviewer", "days": 2}, format="json")
    assert made.status_code == 201
    assert made.data["link"].startswith("http://testserver/join/")
    assert (made.data["role"], made.data["created_by"], made.data["uses"]) == (
        "reviewer",
        admin.username,
        0,
    )
    listed = client.get(url).data
    assert [row["id"] for row in listed] == [made.data["id"]] and "link" not in listed[0]
    assert client.post(url, {"role": "admin"}, format="json").status_code == 400
    assert client.post(url, {"days": 0}, format="json").data["detail"] == (
        "An invitation link lasts 1 to 30 days."
    )
    assert client.delete(f"{url}{made.data['id']}/").status_code == 204
    assert client.get(url).data == []
    assert client.delete(f"{url}{made.data['id']}/").status_code == 404


def test_outputs_export_as_completions_lines_that_another_project_imports_unchanged(
    client_for, make_user, project
):
    staff = client_for(make_user(is_staff=True))
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi é"}]
    lines = [
        {"prompt": "What is 2 + 2?", "completion": "4", "model": "small", "token_count": 1},
        {"prompt": "What is 2 + 2?", "completion": "Four.", "model": "large"},
        {"prompt": chat, "completion": "Hello!", "generation_settings": {"temperature": 0.7}},
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    url = f"/api/v1/projects/{project.pk}/imports/?import_format=completions"
    assert staff.post(url, data=body, content_type="application/jsonl").status_code == 201

    exported = staff.get(f"/api/v1/projects/{project.pk}/exports/outputs/?format=jsonl")
    assert exported.status_code == 200
    text = b"".join(exported.streaming_content).decode()
    rows = [json.loads(line) for line in text.splitlines()]
    expected = [
        {"generation_settings": {}, "token_count": None, **lines[0]},
        {"generation_settings": {}, "token_count": None, **lines[1]},
        {"model": None, "token_count": None, **lines[2]},
    ]
    assert rows == expected
    snapshot = ExportSnapshot.objects.get(pk=exported["X-Export-Snapshot"])
    assert (snapshot.kind, snapshot.row_count) == ("outputs", 3)
    assert snapshot.content_hash == hashlib.sha256(text.encode()).hexdigest()

    small = ModelVersion.objects.get(project=project, name="small")
    only = staff.get(f"/api/v1/projects/{project.pk}/exports/outputs/?model_version={small.pk}")
    assert [
        json.loads(line)["completion"] for line in b"".join(only.streaming_content).splitlines()
    ] == ["4"]

    copy = services.create_project(name="Copy")
    again = staff.post(
        f"/api/v1/projects/{copy.pk}/imports/?import_format=completions",
        data=text,
        content_type="application/jsonl",
    )
    assert again.status_code == 201, again.data
    back = staff.get(f"/api/v1/projects/{copy.pk}/exports/outputs/")
    assert [json.loads(line) for line in b"".join(back.streaming_content).splitlines()] == expected

    parquet = staff.get(f"/api/v1/projects/{project.pk}/exports/outputs/?format=parquet")
    parquet_bytes = b"".join(parquet.streaming_content)
    table = pq.read_table(io.BytesIO(parquet_bytes))
    assert table.column("prompt").to_pylist() == ["What is 2 + 2?", "What is 2 + 2?", None]
    assert table.column("messages").to_pylist()[2] == chat
    assert json.loads(table.column("generation_settings").to_pylist()[2]) == {"temperature": 0.7}
    # The Parquet file imports as it is too.
    parquet_copy = services.create_project(name="Parquet copy")
    again = staff.post(
        f"/api/v1/projects/{parquet_copy.pk}/imports/",
        data=parquet_bytes,
        content_type="application/vnd.apache.parquet",
    )
    assert again.status_code == 201, again.data
    assert again.data["format"] == "completions"
    back = staff.get(f"/api/v1/projects/{parquet_copy.pk}/exports/outputs/")
    assert [json.loads(line) for line in b"".join(back.streaming_content).splitlines()] == expected


def test_ids_no_row_can_have_are_refused_not_looked_up(client_for, make_user, project):
    # SQLite (the demo's database) raises on integers past 64 bits instead of finding no row.
    client = client_for(make_user(is_staff=True))
    huge = 2**64
    for url in (
        f"/api/v1/judgments/?project={huge}",
        "/api/v1/judgments/?annotator=1.5",
        f"/api/v1/projects/{project.pk}/exports/pairs/?round={huge}",
        f"/api/v1/projects/{project.pk}/exports/judgments/?annotator=1,{huge}",
        f"/api/v1/projects/{project.pk}/exports/outputs/?model_version=0",
    ):
        response = client.get(url)
        assert response.status_code == 400, url
    refused = client.get(f"/api/v1/judgments/?project={huge}").json()
    assert "project" in str(refused)
    # A filter of the rounds and jobs lists that names no project matches nothing.
    assert client.get(f"/api/v1/rounds/?project={huge}").json()["results"] == []
    assert client.get("/api/v1/jobs/?project=²").json()["results"] == []


def test_a_reviewer_makes_an_unjudged_task_gold_with_its_answer_and_it_checks_annotators(
    client_for, project, make_member, make_task, gold_coin
):
    seeded, work = make_task(), make_task()
    reviewer = client_for(make_member(role="reviewer"))
    url = f"/api/v1/projects/{project.pk}/tasks/{seeded.pk}/gold/"
    made = reviewer.put(url, {"choice": "a", "note": "known answer"}, format="json")
    assert made.status_code == 200, made.data
    assert made.data == {
        "id": seeded.pk,
        "mode": "pairwise",
        "status": "complete",  # served from now on only as a check
        "is_gold": True,
        "gold_answer": {"choice": "a"},
    }
    assert seeded.adjudication.note == "known answer"

    gold_coin.value = 0.0
    annotator = make_member(username="checked")
    client = client_for(annotator)
    lease = client.post(f"/api/v1/projects/{project.pk}/next-task/")
    assert lease.data["task_id"] == seeded.pk
    judged = client.post(
        "/api/v1/judgments/",
        {"task": seeded.pk, "kind": "pairwise", "choice": "b", "idempotency_key": "k1"},
        format="json",
    )
    assert judged.status_code == 201
    assert client.post(f"/api/v1/projects/{project.pk}/next-task/").data["task_id"] == work.pk
    stats = reviewer.get(f"/api/v1/projects/{project.pk}/agreement/").data["annotators"]
    (checked,) = [row for row in stats if row["annotator"] == "checked"]
    assert (checked["gold_accuracy"], checked["gold_judged"]) == (0.0, 1)

    unmarked = reviewer.delete(url)
    assert unmarked.status_code == 200
    assert (unmarked.data["is_gold"], unmarked.data["gold_answer"]) == (False, None)


def test_a_gold_answer_is_one_valid_answer_and_a_refusal_keeps_nothing(
    client_for, project, make_member, make_task, make_user
):
    ranking = make_task(n=3, mode="ranking")
    reviewer = client_for(make_member(role="reviewer"))

    def put(task, body):
        return reviewer.put(
            f"/api/v1/projects/{project.pk}/tasks/{task.pk}/gold/", body, format="json"
        )

    for body in ({}, {"choice": "a", "ranking": [[1], [2]]}, {"note": "no answer"}):
        refused = put(ranking, body)
        assert refused.status_code == 400
        assert "one of judgment, choice or ranking" in str(refused.data)
    assert put(ranking, {"choice": "a"}).status_code == 400  # a ranking task takes a ranking
    items = list(ranking.items.order_by("position").values_list("completion_id", flat=True))
    assert put(ranking, {"ranking": [[items[0]], [999_999]]}).status_code == 400
    tied = put(ranking, {"ranking": [items]})  # all tied: no answer to it would score
    assert tied.status_code == 400 and "at least two groups" in tied.data["detail"]
    assert not hasattr(AnnotationTask.objects.get(pk=ranking.pk), "adjudication")
    made = put(ranking, {"ranking": [[items[2]], items[:2]]})
    assert made.data["gold_answer"] == {"ranking": [[items[2]], items[:2]]}

    rating = make_task(n=2, mode="rating")
    refused = put(
        rating, {"ranking": [[c] for c in rating.items.values_list("completion_id", flat=True)]}
    )
    assert refused.status_code == 400 and "rating" in refused.data["detail"]
    assert not hasattr(AnnotationTask.objects.get(pk=rating.pk), "adjudication")

    # A round's task cannot be gold: the answer it would have been decided with is not kept.
    version = make_version(project)
    prompt_set, _ = make_prompt_set(project)
    in_round = make_task(alignment_round_id=make_round(project, version, prompt_set).pk)
    refused = put(in_round, {"choice": "a"})
    assert refused.status_code == 400 and "round" in refused.data["detail"]
    in_round.refresh_from_db()
    assert not in_round.is_gold and not hasattr(in_round, "adjudication")

    # A task of another project is not found here, even to someone who reviews both.
    elsewhere = make_task(project_=services.create_project(name="Elsewhere"))
    services.set_gold_answer(
        reviewer_id=make_user(is_staff=True).pk, task_id=elsewhere.pk, choice="a"
    )
    staff = client_for(make_user(is_staff=True))
    assert (
        staff.put(
            f"/api/v1/projects/{project.pk}/tasks/{elsewhere.pk}/gold/",
            {"choice": "b"},
            format="json",
        ).status_code
        == 404
    )
    assert (
        staff.delete(f"/api/v1/projects/{project.pk}/tasks/{elsewhere.pk}/gold/").status_code == 404
    )
    elsewhere.refresh_from_db()
    assert (elsewhere.is_gold, elsewhere.gold_answer) == (True, {"choice": "a"})


def test_a_gold_answer_can_accept_one_of_the_tasks_judgments(
    client_for, project, make_member, make_task
):
    task = make_task()
    annotator = make_member()
    services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
    judgment = services.submit_judgment(
        annotator_id=annotator.pk,
        task_id=task.pk,
        data=services.JudgmentInput(kind="pairwise", choice="b", idempotency_key="k"),
    )
    reviewer = client_for(make_member(role="reviewer"))
    url = f"/api/v1/projects/{project.pk}/tasks/{task.pk}/gold/"
    other = make_task()
    assert reviewer.put(url, {"judgment": judgment.pk + 1000}, format="json").status_code == 400
    made = reviewer.put(url, {"judgment": judgment.pk}, format="json")
    assert (made.data["is_gold"], made.data["gold_answer"]) == (True, {"choice": "b"})
    assert task.adjudication.accepted_judgment_id == judgment.pk
    assert not AnnotationTask.objects.get(pk=other.pk).is_gold
