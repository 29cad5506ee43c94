"""Snapshots as files: POST an export to keep it, then fetch exactly those bytes by the snapshot's
id, whole, by byte range or not at all when the client has them; and the datasets library
loading them over HTTP as a pipeline would."""

import hashlib
import io
import json
from pathlib import Path
from urllib.request import Request, urlopen

import pyarrow.parquet as pq
import pytest

from feedback.api.file_responses import requested_range
from feedback.models import ExportSnapshot, PreferencePair
from feedback.services.exports import ExportRequest, start_export
from feedback.services.imports import import_jsonl
from feedback.services.tokens import issue_token

pytestmark = pytest.mark.django_db

ROWS = [
    {"prompt": f"Question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}
    for i in range(40)
]


@pytest.fixture
def imported(project):
    import_jsonl(
        project_id=project.pk, user_id=None, lines=[json.dumps(r) for r in ROWS], format="trl"
    )


@pytest.fixture
def reviewer(make_member):
    return make_member(role="reviewer")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_kept_export_downloads_again_byte_for_byte(client_for, reviewer, project, imported):
    client = client_for(reviewer)
    export = f"/api/v1/projects/{project.pk}/exports/pairs/"
    streamed = body(client.get(export))
    made = client.post(f"{export}?margin=false")
    assert made.status_code == 201, made.data
    snapshot = made.data
    assert snapshot["status"] == "complete" and snapshot["row_count"] == len(ROWS)
    assert snapshot["file"] == f"http://testserver/api/v1/exports/{snapshot['id']}/file/"
    assert snapshot["byte_size"] == len(streamed)
    kept_parquet = client.post(f"{export}?format=parquet")
    assert kept_parquet["Content-Type"] == "application/json"
    assert kept_parquet.json()["format"] == "parquet"
    assert snapshot["content_hash"] == hashlib.sha256(streamed).hexdigest()
    kept = Path(ExportSnapshot.objects.get(pk=snapshot["id"]).path)
    assert kept.read_bytes() == streamed
    assert kept.stat().st_mode & 0o777 == 0o644  # a worker running as another user reads it

    # Rows added later stay out: the snapshot is pinned, and its file is the same bytes.
    import_jsonl(
        project_id=project.pk,
        user_id=None,
        format="trl",
        lines=[json.dumps({"prompt": "late", "chosen": "x", "rejected": "y"})],
    )
    whole = client.get(snapshot["file"])
    assert whole.status_code == 200
    assert (data := body(whole)) == streamed
    assert whole["Content-Length"] == str(len(streamed))
    assert whole["ETag"] == f'"{snapshot["content_hash"]}"'
    assert whole["Accept-Ranges"] == "bytes"
    assert whole["Content-Type"] == "application/jsonl"
    assert f"arbiter-pairs-{snapshot['id']}.jsonl" in whole["Content-Disposition"]
    assert [json.loads(line) for line in data.splitlines()] == ROWS
    assert ExportSnapshot.objects.count() == 3  # the streamed download and the kept ones

    head = client.head(snapshot["file"])
    assert head.status_code == 200 and body(head) == b""
    assert head["Content-Length"] == str(len(streamed))


def test_byte_ranges_and_validators(client_for, reviewer, project, imported):
    client = client_for(reviewer)
    snapshot = client.post(f"/api/v1/projects/{project.pk}/exports/pairs/").data
    url, etag = snapshot["file"], f'"{snapshot["content_hash"]}"'
    data = body(client.get(url))
    size = len(data)

    part = client.get(url, HTTP_RANGE="bytes=10-29")
    assert part.status_code == 206 and body(part) == data[10:30]
    assert part["Content-Range"] == f"bytes 10-29/{size}" and part["Content-Length"] == "20"
    tail = client.get(url, HTTP_RANGE="bytes=-15")
    assert tail.status_code == 206 and body(tail) == data[-15:]
    rest = client.get(url, HTTP_RANGE=f"bytes={size - 5}-{size + 100}")
    assert (
        body(rest) == data[-5:] and rest["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"
    )
    past = client.get(url, HTTP_RANGE=f"bytes={size}-")
    assert past.status_code == 416 and past["Content-Range"] == f"bytes */{size}"
    # Several ranges, or a range of another version of the file: the whole file instead.
    assert body(client.get(url, HTTP_RANGE="bytes=0-1,5-6")) == data
    stale = client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"another"')
    assert stale.status_code == 200 and body(stale) == data
    fresh = client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag)
    assert fresh.status_code == 206 and body(fresh) == data[:10]
    cached = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert cached.status_code == 304 and body(cached) == b""
    for held in ("*", f'"other", W/{etag}'):
        assert client.get(url, HTTP_IF_NONE_MATCH=held).status_code == 304
    assert client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_a_streamed_snapshot_is_exported_again_checked_and_kept(
    client_for, reviewer, project, imported
):
    client = client_for(reviewer)
    streamed = client.get(f"/api/v1/projects/{project.pk}/exports/pairs/?format=parquet")
    data = body(streamed)
    snapshot = ExportSnapshot.objects.get(pk=streamed["X-Export-Snapshot"])
    assert snapshot.path == "" and snapshot.byte_size == len(data)

    served = client.get(f"/api/v1/exports/{snapshot.pk}/file/")
    assert served.status_code == 200 and body(served) == data
    assert served["Content-Type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(data)).num_rows == len(ROWS)
    snapshot.refresh_from_db()
    assert snapshot.path.endswith(f"snapshot-{snapshot.pk}.parquet")

    # Once the rows under its ceiling change, the snapshot cannot be had again.
    other = client.get(f"/api/v1/projects/{project.pk}/exports/pairs/")
    body(other)
    PreferencePair.objects.filter(prompt__text="Question 3?").delete()
    refused = client.get(f"/api/v1/exports/{other['X-Export-Snapshot']}/file/")
    assert refused.status_code == 409 and "changed" in refused.json()["detail"]
    assert ExportSnapshot.objects.get(pk=other["X-Export-Snapshot"]).path == ""


def test_who_may_fetch_a_snapshot(client_for, make_member, make_user, project, imported):
    admin = make_member(role="admin")
    snapshot = client_for(admin).post(f"/api/v1/projects/{project.pk}/exports/pairs/").data
    url = f"/api/v1/exports/{snapshot['id']}/file/"
    assert client_for(make_member(role="reviewer")).get(url).status_code == 200
    assert client_for(make_member(role="annotator")).get(url).status_code == 404
    assert client_for(make_user()).get(url).status_code == 404
    assert client_for(None).get(url).status_code == 401
    # Unfinished snapshots have no file.
    stream = start_export(ExportRequest(project_id=project.pk), user_id=admin.pk)
    unfinished = client_for(admin).get(f"/api/v1/exports/{stream.snapshot.pk}/file/")
    assert unfinished.status_code == 404
    assert client_for(admin).get(f"/api/v1/exports/{stream.snapshot.pk}/").data["file"] is None


def test_a_head_of_an_export_neither_exports_nor_records(client_for, reviewer, project, imported):
    client = client_for(reviewer)
    export = f"/api/v1/projects/{project.pk}/exports/pairs/"
    head = client.head(f"{export}?format=parquet")
    assert head.status_code == 200 and body(head) == b""
    assert head["Content-Type"] == "application/vnd.apache.parquet"
    # No length: the size of an export is not known before it runs (fsspec reads 0 as empty).
    assert not head.has_header("Content-Length")
    assert client.head(f"{export}?min_agreement=2").status_code == 400
    assert ExportSnapshot.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_datasets_loads_a_snapshot_over_http(live_server, project, reviewer, imported, tmp_path):
    """What a training pipeline does: keep an export, then hand its URL and a token to `datasets`
    (JSONL downloaded and cached by ETag; Parquet streamed by byte ranges)."""
    import datasets

    key = issue_token(user_id=reviewer.pk, name="pipeline").key
    headers = {"Authorization": f"Bearer {key}"}
    export = f"{live_server.url}/api/v1/projects/{project.pk}/exports/pairs/"

    def keep(url: str) -> dict:
        with urlopen(Request(url, method="POST", headers=headers), timeout=30) as response:
            return json.load(response)

    jsonl, parquet = keep(export), keep(f"{export}?format=parquet")
    # Each request on a connection of its own: the live server's thread for a kept-alive one
    # would hold a database connection past the test (fsspec keeps its HTTP session open).
    options = {"headers": headers | {"Connection": "close"}}

    loaded = datasets.load_dataset(
        "json",
        data_files=jsonl["file"],
        storage_options=options,
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    assert loaded.to_list() == ROWS
    streamed = datasets.load_dataset(
        "parquet",
        data_files=parquet["file"],
        # Blocks smaller than the file, so that reading it takes several ranges, as a real one
        # (fsspec's default block is 5 MB) does.
        storage_options=options | {"block_size": 512},
        split="train",
        streaming=True,
    )
    assert list(streamed) == ROWS
    # Fetching files recorded nothing new: the two snapshots are all there is.
    assert ExportSnapshot.objects.count() == 2


@pytest.mark.parametrize(
    "header,size,expected",
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=90-500", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=-0", 100, False),
        ("bytes=100-", 100, False),
        ("bytes=0-", 0, False),  # an empty file has no first byte
        ("bytes=9-0", 100, None),  # not a range: ignored, as RFC 9110 says
        ("bytes=0-1,5-6", 100, None),
        ("items=0-9", 100, None),
        ("bytes=-", 100, None),
    ],
)
def test_which_range_a_header_asks_for(header, size, expected):
    assert requested_range(header, size) == expected


def test_the_latest_kept_snapshot_of_a_kind_is_one_filtered_request(
    client_for, reviewer, project, imported
):
    client = client_for(reviewer)
    export = f"/api/v1/projects/{project.pk}/exports"
    pairs = [client.post(f"{export}/pairs/").data["id"] for _ in range(2)]
    body(client.get(f"{export}/judgments/"))
    listed = "/api/v1/exports/?page_size=1&status=complete&kind=pairs"
    latest = client.get(f"{listed}&project={project.pk}").data["results"]
    assert [s["id"] for s in latest] == [pairs[-1]]
    assert client.get(f"{listed}&project={project.pk + 1}").data["results"] == []
    judgments = client.get("/api/v1/exports/?kind=judgments").data["results"]
    assert [s["kind"] for s in judgments] == ["judgments"]
    assert client.get("/api/v1/exports/?project=0").status_code == 400
