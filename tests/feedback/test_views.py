"""The project pages in feedback/views.py besides the leaderboard and agreement (tested with their
reads in test_insights.py): preference data, and imports and tasks."""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from feedback import services
from feedback.models import (
    AnnotationTask,
    Completion,
    ExportSnapshot,
    ImportBatch,
    PreferencePair,
    Project,
)

pytestmark = pytest.mark.django_db


def test_the_data_page_derives_pairs_for_admins_and_links_their_downloads(
    project, make_member, make_task
):
    annotator = make_member(role="annotator")
    for _ in range(2):
        task = make_task()
        services.next_task_for(annotator_id=annotator.pk, project_id=project.pk)
        services.submit_judgment(
            annotator_id=annotator.pk,
            task_id=task.pk,
            data=services.JudgmentInput(kind="pairwise", choice="a", idempotency_key=f"k{task.pk}"),
        )
    url = f"/insights/projects/{project.pk}/data/"
    client = Client()
    client.force_login(annotator)
    assert client.get(url).status_code == 403

    client.force_login(make_member(role="reviewer"))
    page = client.get(url).content.decode()
    assert "No pairs yet." in page and "Derive pairs" not in page
    assert client.post(url, {"name": "mine"}).status_code == 403
    assert not PreferencePair.objects.exists()

    client.force_login(make_member(role="admin"))
    form = {"name": "strict", "ranking_pairs": "adjacent", "aggregate": "majority"}
    form |= {"ties": "keep", "both_bad": "drop"}
    derived = client.post(url, form, follow=True)
    assert derived.redirect_chain == [(url, 302)]
    page = derived.content.decode()
    assert "Policy “strict”: 2 pairs (0 ties) from 2 judgments; 0 earlier pairs replaced." in page
    assert PreferencePair.objects.filter(project=project, policy="strict").count() == 2
    download = re.search(r'href="([^"]+format=jsonl&amp;policy=strict)"', page).group(1)
    lines = b"".join(client.get(download.replace("&amp;", "&")).streaming_content).splitlines()
    assert [sorted(json.loads(line)) for line in lines] == [["chosen", "prompt", "rejected"]] * 2
    # The snapshot the download recorded, with its file to fetch again.
    page = client.get(url).content.decode()
    assert "jsonl; policies: strict" in page
    snapshot = ExportSnapshot.objects.get()
    file = re.search(rf'href="(/api/v1/exports/{snapshot.pk}/file/)" download>JSONL', page)
    assert b"".join(client.get(file.group(1)).streaming_content).splitlines() == lines
    b"".join(client.get(download.replace("&amp;", "&") + "&margin=true").streaming_content)
    assert "jsonl; margin; policies: strict" in client.get(url).content.decode()

    refused = client.post(url, form | {"name": "import"})
    assert refused.status_code == 422 and "kept for imported pairs" in refused.content.decode()
    bad = client.post(url, form | {"ties": "sometimes"})
    assert bad.status_code == 422 and "Ties: Select a valid choice." in bad.content.decode()
    assert set(PreferencePair.objects.values_list("policy", flat=True)) == {"strict"}


def jsonl_upload(name: str, records: list) -> SimpleUploadedFile:
    body = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records)
    return SimpleUploadedFile(name, body.encode(), content_type="application/jsonl")


def test_admins_import_outputs_and_make_tasks_from_the_page(project, make_member):
    url = f"/insights/projects/{project.pk}/imports/"
    client = Client()
    client.force_login(make_member(role="reviewer"))
    page = client.get(url).content.decode()
    assert "Nothing imported yet." in page and "Import a file" not in page
    upload = jsonl_upload("x.jsonl", [{"prompt": "p", "completion": "c"}])
    assert client.post(url, {"action": "import", "file": upload}).status_code == 403
    assert client.post(url, {"action": "tasks", "mode": "pairwise"}).status_code == 403

    client.force_login(make_member(role="admin"))
    bad = jsonl_upload("bad.jsonl", [{"prompt": "ok", "completion": "fine"}, "not json"])
    refused = client.post(url, {"action": "import", "file": bad, "import_format": "auto"})
    assert refused.status_code == 422
    assert "line 2: not valid JSON" in refused.content.decode()
    assert not Completion.objects.exists() and not ImportBatch.objects.exists()

    records = [
        {"prompt": f"Question {q}?", "completion": f"{model} on {q}", "model": model}
        for q in range(2)
        for model in ("small", "large", "huge")
    ]
    upload = jsonl_upload("outputs.jsonl", records)
    imported = client.post(
        url, {"action": "import", "file": upload, "import_format": "completions"}, follow=True
    )
    assert imported.redirect_chain == [(url, 302)]
    assert (
        "Imported outputs.jsonl (completions, 6 lines): 3 model versions, 2 prompts, "
        "6 completions." in imported.content.decode()
    )
    # A spreadsheet's single row, checked first (nothing kept), then imported; in the singular.
    body = b"prompt,completion,model\nQuestion 9?,c,solo\n"
    checked = client.post(
        url,
        {
            "action": "import",
            "file": SimpleUploadedFile("one.csv", body),
            "import_format": "auto",
            "dry_run": "on",
        },
        follow=True,
    )
    assert (
        "Checked one.csv (completions, 1 line): all good; importing it would create 1 model "
        "version, 1 prompt, 1 completion. Nothing was kept." in checked.content.decode()
    )
    assert ImportBatch.objects.count() == 1
    sheet = SimpleUploadedFile("one.csv", body)
    imported = client.post(
        url, {"action": "import", "file": sheet, "import_format": "auto"}, follow=True
    )
    assert (
        "Imported one.csv (completions, 1 line): 1 model version, 1 prompt, 1 completion."
        in imported.content.decode()
    )
    small, large = (project.model_versions.get(name=n).pk for n in ("small", "large"))
    made = client.post(
        url,
        {"action": "tasks", "mode": "pairwise", "model_versions": [small, large]},
        follow=True,
    )
    assert "2 pairwise tasks created over 2 prompts" in made.content.decode()
    assert AnnotationTask.objects.filter(project=project).count() == 2
    everything = client.post(url, {"action": "tasks", "mode": "ranking", "judgments_wanted": 3})
    assert everything.status_code == 302
    ranked = AnnotationTask.objects.filter(mode="ranking")
    assert [(t.items.count(), t.judgments_wanted) for t in ranked] == [(3, 3), (3, 3)]
    page = client.get(url).content.decode()
    assert "outputs.jsonl" in page and re.search(r"<dt>Tasks</dt><dd>4</dd>", page)
    assert "<td>3 model versions, 2 prompts, 6 completions</td>" in page
    # Made by mistake: the untouched ranking tasks go, the pairwise ones stay.
    deleted = client.post(url, {"action": "delete_tasks", "mode": "ranking"}, follow=True)
    assert "2 untouched open tasks deleted." in deleted.content.decode()
    assert not AnnotationTask.objects.filter(mode="ranking").exists()
    assert AnnotationTask.objects.filter(mode="pairwise").count() == 2
    # Deleting an import: refused while tasks show its outputs; the one-line sheet's goes.
    outputs_batch, sheet_batch = ImportBatch.objects.order_by("pk")
    assert f'aria-label="Delete import #{sheet_batch.pk}"' in client.get(url).content.decode()
    refused = client.post(url, {"action": "delete_import", "batch": outputs_batch.pk})
    assert refused.status_code == 422
    assert "2 tasks show this import&#x27;s outputs; nothing was deleted." in (
        refused.content.decode()
    )
    deleted = client.post(url, {"action": "delete_import", "batch": sheet_batch.pk}, follow=True)
    assert "Import one.csv deleted: 1 prompt, 1 output, 1 model version." in (
        deleted.content.decode()
    )
    assert list(ImportBatch.objects.all()) == [outputs_batch]
    # Too large: refused from its Content-Length, before the upload is read or stored.
    huge = client.post(url, {"action": "import"}, CONTENT_LENGTH=str(2 << 30))
    assert huge.status_code == 413 and "The file is over 1024 MiB" in huge.content.decode()
    no_file = client.post(url, {"action": "import", "import_format": "auto"})
    assert (
        no_file.status_code == 422
        and "JSONL, CSV or Parquet file: This field is required." in no_file.content.decode()
    )


def test_admins_manage_members_and_settings_on_the_settings_page(project, make_member, make_user):
    url = f"/insights/projects/{project.pk}/settings/"
    client = Client()
    client.force_login(make_member(role="reviewer"))
    assert client.get(url).status_code == 403
    assert url not in client.get(f"/insights/projects/{project.pk}/leaderboard/").content.decode()

    admin = make_member(role="admin")
    client.force_login(admin)
    assert url in client.get(f"/insights/projects/{project.pk}/leaderboard/").content.decode()
    newcomer = make_user("newcomer")
    added = client.post(url, {"action": "member", "username": " newcomer ", "role": "reviewer"})
    assert added.status_code == 302
    assert project.memberships.get(user=newcomer).role == "reviewer"
    annotator = make_user("annie")
    said = client.post(
        url, {"action": "member", "username": "annie", "role": "annotator"}, follow=True
    )
    assert "annie is now an annotator here." in said.content.decode()
    assert project.memberships.get(user=annotator).role == "annotator"
    unknown = client.post(url, {"action": "member", "username": "ghost", "role": "annotator"})
    assert unknown.status_code == 422 and "No active user is called" in unknown.content.decode()

    demoted = client.post(
        url, {"action": "role", "user_id": admin.pk, "role": "annotator"}, follow=True
    )
    assert "last admin" in demoted.content.decode()
    client.post(url, {"action": "role", "user_id": newcomer.pk, "role": "admin"})
    removed = client.post(url, {"action": "remove", "user_id": newcomer.pk}, follow=True)
    assert "Member removed" in removed.content.decode()
    assert not project.memberships.filter(user=newcomer).exists()
    assert client.post(url, {"action": "remove", "user_id": "x"}).status_code == 302

    saved = client.post(
        url,
        {"action": "settings", "guidelines": "Prefer *short* answers.", "modes": ["pairwise"]}
        | {"overlap": 2, "gold_percent": 5},
        follow=True,
    )
    assert "Settings saved." in saved.content.decode()
    project.refresh_from_db()
    settings = (project.guidelines, project.enabled_modes, project.overlap, project.gold_percent)
    assert settings == ("Prefer *short* answers.", ["pairwise"], 2, 5)
    refused = client.post(url, {"action": "settings", "modes": ["pairwise"], "overlap": 2})
    assert "Gold checks (%): This field is required." in refused.content.decode()
    none = client.post(url, {"action": "settings", "guidelines": "", "overlap": 1})
    assert none.status_code == 422
    assert "Judgments: Enable at least one kind of judgment." in none.content.decode()


def test_staff_start_a_project_and_become_its_admin(make_user):
    url = "/insights/projects/new/"
    client = Client()
    client.force_login(make_user())
    assert client.get(url).status_code == 403
    assert url not in client.get("/").content.decode()

    staff = make_user(is_staff=True)
    services.create_project(name="Someone else's")
    client.force_login(staff)
    home = client.get("/").content.decode()
    assert url in home
    assert '<span class="badge">Staff</span>' in home  # not a member, sees it as staff
    form = {"name": "  Summaries ", "modes": ["pairwise", "rating"], "overlap": 3}
    form |= {"gold_percent": 20}
    created = client.post(url, form | {"guidelines": "Short is good."}, follow=True)
    project = Project.objects.get(name="Summaries")
    assert created.redirect_chain == [(f"/insights/projects/{project.pk}/imports/", 302)]
    assert "Summaries is ready." in created.content.decode()
    assert (project.enabled_modes, project.overlap, project.guidelines) == (
        ["pairwise", "rating"],
        3,
        "Short is good.",
    )
    assert project.gold_percent == 20
    assert dict(project.memberships.values_list("user_id", "role")) == {staff.pk: "admin"}

    again = client.post(url, form)
    assert again.status_code == 422 and "exists already" in again.content.decode()
    nothing = client.post(url, {"name": "Empty", "overlap": 1, "gold_percent": 10})
    assert nothing.status_code == 422 and "Enable at least one" in nothing.content.decode()
    assert Project.objects.count() == 2


def test_admins_make_prompt_sets_from_an_import_on_the_imports_page(project, make_member):
    url = f"/insights/projects/{project.pk}/imports/"
    client = Client()
    client.force_login(make_member(role="admin"))
    upload = jsonl_upload("prompts.jsonl", [{"prompt": f"Q{n}?"} for n in range(4)])
    client.post(url, {"action": "import", "file": upload, "import_format": "prompts"})
    batch = ImportBatch.objects.get()
    services.create_prompt(project_id=project.pk, text="typed in")
    made = client.post(
        url,
        {"action": "prompt_set", "name": "Imported", "source": str(batch.pk), "split": "train"},
        follow=True,
    )
    assert "Prompt set “Imported”: 4 prompts." in made.content.decode()
    assert project.prompt_sets.get(name="Imported").prompts.count() == 4
    clash = client.post(url, {"action": "prompt_set", "name": "Imported", "source": ""})
    assert clash.status_code == 422 and "exists already" in clash.content.decode()
    # The launch page, which needs a prompt set, says where to make one.
    client.force_login(make_member(role="admin"))
    launch = client.get(f"/training/projects/{project.pk}/rounds/new/").content.decode()
    assert url in launch


def test_staff_make_an_account_for_a_newcomer_on_the_settings_page(project, make_member, make_user):
    url = f"/insights/projects/{project.pk}/settings/"
    body = {"action": "account", "account-username": "newbie", "account-role": "annotator"}
    client = Client()
    client.force_login(make_member(role="admin"))  # a project admin, not site staff
    assert "Make an account" not in client.get(url).content.decode()
    assert client.post(url, body).status_code == 403

    client.force_login(make_user(is_staff=True))
    made = client.post(url, body)
    assert made.status_code == 200 and "no-store" in made["Cache-Control"]
    password = re.search(r'id="new-password"[^>]*value="([^"]+)"', made.content.decode()).group(1)
    newbie = project.memberships.get(user__username="newbie")
    assert newbie.role == "annotator" and newbie.user.check_password(password)
    assert password not in client.get(url).content.decode()  # shown once

    for username, problem in (("newbie", "exists already"), ("no spaces", "letters, digits")):
        refused = client.post(url, body | {"account-username": username})
        assert refused.status_code == 422 and problem in refused.content.decode()
    assert project.memberships.filter(user__username="newbie").count() == 1


def test_every_project_page_shows_one_tab_bar_with_settings_for_admins_only(
    project, make_member, make_task
):
    task = make_task()
    pages = {
        f"/insights/projects/{project.pk}/leaderboard/": "Leaderboard",
        f"/insights/projects/{project.pk}/data/": "Preference data",
        f"/projects/{project.pk}/review/": "Review",
        f"/projects/{project.pk}/review/{task.pk}/": "Review",
        f"/training/projects/{project.pk}/rounds/": "Rounds",
        f"/training/projects/{project.pk}/rounds/new/": "Rounds",
        f"/training/projects/{project.pk}/models/": "Models",
        f"/training/projects/{project.pk}/compare/": "Side by side",
    }
    tab = re.compile(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>')
    client = Client()
    for role, settings_shown in (("reviewer", False), ("admin", True)):
        client.force_login(make_member(role=role))
        for url, current in pages.items():
            page = client.get(url)
            if url.endswith("/rounds/new/") and role == "reviewer":
                assert page.status_code == 403  # launching is for admins
                continue
            assert page.status_code == 200, url
            bar = page.content.decode().split('<span class="tabs">')[1].split("</span>")[0]
            tabs = tab.findall(bar)
            assert [label for _, mark, label in tabs if mark] == [current], url
            assert ("Settings" in [label for *_, label in tabs]) is settings_shown
            links = {label: href for href, _, label in tabs}
            assert links["Annotate"] == f"/projects/{project.pk}/work/"
            assert links["Imports"] == f"/insights/projects/{project.pk}/imports/"


def test_project_pages_give_each_id_once(project, make_member, make_task):
    # A label points at the first element with its id: two forms' "mode" fields on the Imports
    # page left the second unlabelled.
    task = make_task()
    make_task(mode="ranking")
    client = Client()
    client.force_login(make_member(role="admin", is_staff=True))  # staff start projects
    pk = project.pk
    urls = [
        "/",
        f"/projects/{pk}/work/",
        f"/projects/{pk}/prompts/",
        f"/projects/{pk}/prompts/{task.prompt_id}/",
        f"/projects/{pk}/review/",
        f"/projects/{pk}/review/{task.pk}/",
        *(
            f"/insights/projects/{pk}/{page}/"
            for page in ("leaderboard", "agreement", "data", "imports", "settings")
        ),
        "/insights/projects/new/",
        *(
            f"/training/projects/{pk}/{page}/"
            for page in ("rounds", "rounds/new", "models", "compare")
        ),
        "/account/api/",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        ids = re.findall(r'\sid="([^"]+)"', response.content.decode())
        assert sorted({i for i in ids if ids.count(i) > 1}) == [], url
