"""Target-list pages: list, create, detail with search and keyset paging, delete, and
adding IDs by upload (in the request or through a job on the real queue) or paste."""

from __future__ import annotations

import csv
import io

import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import StopUpload
from django.db import connection
from django.test.client import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from campaigns.models import AuditEvent, Campaign, Credential, MessageTemplate, Target, TargetList
from campaigns.views.target_lists import MULTIPART_OVERHEAD, LimitedUploadHandler
from tests.pipeline_helpers import drain, make_list

pytestmark = pytest.mark.django_db

# 7 rows: 3 new IDs, one repeated in the file, one already in the list, a bad row, an
# empty row; plus a formula-looking bad value to check the CSV report is safe.
UPLOAD = b"alice\nbob\nalice\nuser-003\nbad id\n\ncarol\n=1+2 x\n"
UPLOAD_COUNTS = {
    "rows_read": 8,
    "added": 3,
    "duplicates_in_file": 1,
    "already_in_list": 1,
    "invalid": 3,
}


@pytest.fixture(autouse=True)
def _fast_passwords_and_own_dirs(settings, tmp_path):
    """Cheap password hashing, and VAR_DIR and upload temp files in this test's folder,
    so that "no file left behind" can be checked."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAR_DIR = tmp_path / "var"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "tmp")
    (tmp_path / "var").mkdir()
    (tmp_path / "tmp").mkdir()


@pytest.fixture
def queue(redis_conn):
    """The real `push` queue on a clean Redis database."""
    return django_rq.get_queue("push")


def upload(client, target_list, data: bytes, name: str = "ids.txt", **fields):
    url = reverse("target-list-upload", args=[target_list.pk])
    return client.post(url, {"file": SimpleUploadedFile(name, data), **fields}, follow=True)


def counts(status: dict) -> dict:
    return {name: status[name] for name in UPLOAD_COUNTS}


def files_under(path) -> list:
    return [p for p in path.rglob("*") if p.is_file()]


def test_pages_render_for_marketer_and_auditor(client, marketer, auditor, target_list):
    for user in (marketer, auditor):
        client.force_login(user)
        listing = client.get(reverse("target-list-list"))
        assert listing.status_code == 200
        assert "Twenty-five users" in listing.text and "User ID" in listing.text
        assert ">25<" in listing.text
        detail = client.get(reverse("target-list-detail", args=[target_list.pk]))
        assert detail.status_code == 200
        assert "user-000" in detail.text
    # auditors read; only marketing sees the forms that change a list
    assert "Upload and import" not in detail.text
    assert reverse("target-list-create") not in listing.text
    client.force_login(marketer)
    assert "Upload and import" in client.get(detail.request["PATH_INFO"]).text
    assert client.get(reverse("target-list-create")).status_code == 200
    assert client.get(reverse("target-list-delete", args=[target_list.pk])).status_code == 200


def test_auditor_gets_403_on_every_post(client, auditor, target_list):
    client.force_login(auditor)
    pk = target_list.pk
    posts = {
        reverse("target-list-create"): {"name": "x", "delivery_type": 3},
        reverse("target-list-delete", args=[pk]): {},
        reverse("target-list-upload", args=[pk]): {"file": SimpleUploadedFile("a.txt", b"zed")},
        reverse("target-list-paste", args=[pk]): {"text": "zed"},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    for url in (reverse("target-list-create"), reverse("target-list-delete", args=[pk])):
        assert client.get(url).status_code == 403, url
    assert list(TargetList.objects.values_list("name", "target_count")) == [
        ("Twenty-five users", 25)
    ]
    assert not AuditEvent.objects.exists()


def test_unknown_list_is_404(client, marketer):
    client.force_login(marketer)
    for name in ("target-list-detail", "target-list-delete", "target-list-errors"):
        assert client.get(reverse(name, args=[999])).status_code == 404, name
    assert client.post(reverse("target-list-paste", args=[999]), {"text": "a"}).status_code == 404
    assert upload(client, TargetList(pk=999), b"a").status_code == 404


def test_create_list_audits_and_opens_it(client, marketer):
    client.force_login(marketer)
    data = {"name": "VIPs", "delivery_type": 1, "description": "Top spenders"}
    response = client.post(reverse("target-list-create"), data, follow=True)
    target_list = TargetList.objects.get(name="VIPs")
    assert response.redirect_chain[-1][0] == reverse("target-list-detail", args=[target_list.pk])
    assert "Target list “VIPs” created." in response.text
    assert (target_list.delivery_type, target_list.created_by) == (1, marketer)
    event = AuditEvent.objects.get(action="target_list.create")
    assert (event.actor, event.details) == (marketer, {"delivery_type": 1})
    # names are unique
    response = client.post(reverse("target-list-create"), data)
    assert "name" in response.context["form"].errors
    assert TargetList.objects.count() == 1


def test_delete_refused_while_a_campaign_uses_the_list(client, marketer, target_list):
    credential = Credential(name="C", app_id="A1", workspace_id="w", access_key_id="k")
    credential.set_secret("s")
    credential.save()
    template = MessageTemplate.objects.create(app_id="A1", name="t", title="T", body="B")
    Campaign.objects.create(
        task_name="Uses it", credential=credential, template=template, target_list=target_list
    )
    client.force_login(marketer)
    page = client.get(reverse("target-list-delete", args=[target_list.pk]))
    assert "cannot be deleted while 1 campaign uses it" in page.text
    response = client.post(reverse("target-list-delete", args=[target_list.pk]), follow=True)
    assert "cannot be deleted while 1 campaign uses it" in response.text
    assert Target.objects.filter(target_list=target_list).count() == 25
    assert not AuditEvent.objects.filter(action="target_list.delete").exists()


def test_delete_unused_list_with_its_targets(client, marketer, target_list):
    client.force_login(marketer)
    response = client.post(reverse("target-list-delete", args=[target_list.pk]), follow=True)
    assert "Target list “Twenty-five users” deleted." in response.text
    assert not TargetList.objects.exists() and not Target.objects.exists()
    event = AuditEvent.objects.get(action="target_list.delete")
    assert (event.object_id, event.details) == (str(target_list.pk), {"targets": 25})


def test_upload_reports_exact_counts_and_error_rows(client, marketer, target_list, redis_conn):
    client.force_login(marketer)
    response = upload(client, target_list, UPLOAD)
    assert response.status_code == 200
    status = response.context["import_status"]
    assert counts(status) == UPLOAD_COUNTS
    assert status["errors"] == [
        [5, "target ID contains whitespace", "bad id"],
        [6, "target ID is empty", ""],
        [8, "target ID contains whitespace", "=1+2 x"],
    ]
    html = response.text
    assert 'data-count="added">3<' in html and 'data-count="invalid">3<' in html
    assert "<td>5</td><td>target ID contains whitespace</td>" in html
    assert "hx-trigger" not in html.split('id="import-status"')[1].split(">")[0]
    target_list.refresh_from_db()
    assert target_list.target_count == 28
    assert set(target_list.targets.values_list("target_id", flat=True)) >= {"alice", "bob", "carol"}
    event = AuditEvent.objects.get(action="target_list.import")
    assert (event.actor, event.details["added"], event.details["invalid"]) == (marketer, 3, 3)


def test_error_report_downloads_as_formula_safe_csv(client, marketer, target_list, redis_conn):
    client.force_login(marketer)
    upload(client, target_list, UPLOAD)
    response = client.get(reverse("target-list-errors", args=[target_list.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows == [
        ["row", "reason", "value"],
        ["5", "target ID contains whitespace", "bad id"],
        ["6", "target ID is empty", ""],
        ["8", "target ID contains whitespace", "'=1+2 x"],
    ]
    # an import without invalid rows replaces the report with none
    upload(client, target_list, b"dave\n")
    response = client.get(reverse("target-list-errors", args=[target_list.pk]), follow=True)
    assert "There is no error report" in response.text


def test_upload_csv_column_by_name(client, marketer, redis_conn):
    target_list = make_list(0, "csv")
    client.force_login(marketer)
    data = b"Name;User ID\nAnn;u1\nBob;u2\nCid;\n"
    status = upload(client, target_list, data, "ids.csv", column="user id").context["import_status"]
    assert (status["added"], status["invalid"]) == (2, 1)
    assert status["errors"] == [[4, "target ID is empty", "Cid;"]]
    assert sorted(target_list.targets.values_list("target_id", flat=True)) == ["u1", "u2"]


def test_upload_with_unknown_column_is_refused_and_changes_nothing(
    client, marketer, target_list, redis_conn
):
    client.force_login(marketer)
    response = upload(client, target_list, b"name,email\na,b\n", "x.csv", column="uid")
    assert response.status_code == 400
    assert "The file has no column named “uid”" in response.text
    target_list.refresh_from_db()
    assert target_list.target_count == 25
    assert not AuditEvent.objects.exists()


def test_a_header_row_without_a_column_name_offers_the_columns(
    client, marketer, target_list, redis_conn
):
    client.force_login(marketer)
    data = b"\xef\xbb\xbfname,user_id,email\nAnn,u1,a@x\nBob,u2,b@x\n"
    response = upload(client, target_list, data, "people.csv")
    assert response.status_code == 400
    form = response.context["upload_form"]
    [message] = form.errors["column"]
    assert "This file has a header row: choose the column" in message
    assert "“name”, “user_id”, “email”" in message
    assert 'value="user_id"' in response.text  # the likely column is filled in
    target_list.refresh_from_db()
    assert target_list.target_count == 25 and not AuditEvent.objects.exists()
    # with the column, the same file imports its two IDs
    status = upload(client, target_list, data, "people.csv", column="user_id").context[
        "import_status"
    ]
    assert (status["added"], status["invalid"]) == (2, 0)


def test_upload_without_a_file_shows_the_field_error(client, marketer, target_list):
    client.force_login(marketer)
    response = client.post(reverse("target-list-upload", args=[target_list.pk]), {})
    assert response.status_code == 400
    assert response.context["upload_form"].errors["file"] == ["This field is required."]


def test_paste_uses_the_same_rules(client, marketer, target_list, redis_conn):
    client.force_login(marketer)
    url = reverse("target-list-paste", args=[target_list.pk])
    response = client.post(url, {"text": "x1\r\nx2\r\nx1\r\nuser-001\r\nno good\r\n"}, follow=True)
    status = response.context["import_status"]
    assert counts(status) == {
        "rows_read": 5,
        "added": 2,
        "duplicates_in_file": 1,
        "already_in_list": 1,
        "invalid": 1,
    }
    assert status["errors"] == [[5, "target ID contains whitespace", "no good"]]
    assert AuditEvent.objects.get(action="target_list.import").actor == marketer
    assert client.post(url, {"text": ""}).status_code == 400


def test_oversized_upload_refused_from_content_length(
    client, marketer, target_list, settings, tmp_path
):
    settings.TARGET_UPLOAD_MAX_BYTES = 1024
    client.force_login(marketer)
    data = b"".join(b"id%06d\n" % n for n in range(20_000))  # 180 KB > 1 KB + overhead
    assert len(data) > 1024 + MULTIPART_OVERHEAD
    response = upload(client, target_list, data)
    assert "Upload refused: The file is 0.2 MB; the limit is 0.1 MB." in response.text
    target_list.refresh_from_db()
    assert target_list.target_count == 25 and Target.objects.count() == 25
    assert files_under(tmp_path) == []
    assert not AuditEvent.objects.exists()


def test_oversized_upload_stopped_by_the_upload_handler(
    client, marketer, target_list, settings, tmp_path
):
    """Content-Length within the slack for multipart overhead, file over the limit: the
    handler stops reading and the partial temporary file is gone."""
    settings.TARGET_UPLOAD_MAX_BYTES = 1024
    client.force_login(marketer)
    data = b"".join(b"id%06d\n" % n for n in range(1000))  # 9 KB
    response = upload(client, target_list, data)
    assert "Upload refused: The file is larger than the limit of 1.0\xa0KB." in response.text
    assert Target.objects.count() == 25
    assert files_under(tmp_path) == []


def test_upload_handler_stops_at_the_limit_and_deletes_its_file(settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    handler = LimitedUploadHandler(RequestFactory().post("/"), limit=10)
    handler.new_file("file", "a.txt", "text/plain", 100)
    assert handler.receive_data_chunk(b"123456", 0) is None
    assert len(files_under(tmp_path)) == 1
    with pytest.raises(StopUpload) as stopped:
        handler.receive_data_chunk(b"78901", 6)
    assert not stopped.value.connection_reset
    assert (handler.stopped, handler.received) == (True, 11)
    handler.file.close()  # what the multipart parser does on StopUpload
    assert files_under(tmp_path) == []


def test_large_upload_is_imported_by_a_job_with_progress(
    client, marketer, target_list, queue, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.TARGET_IMPORT_SYNC_BYTES = 16  # every upload in this test takes the job path
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):  # django-rq enqueues on commit
        response = upload(client, target_list, UPLOAD)
    assert "The file is being imported in the background." in response.text
    status = response.context["import_status"]
    assert (status["state"], status["total_bytes"], status["done"]) == ("queued", len(UPLOAD), 0)
    assert 'hx-trigger="every 1s"' in response.text
    [job] = queue.jobs
    assert job.func_name == "campaigns.jobs.import_targets_file"
    stored = tmp_path / "var" / "uploads" / status["key"]
    assert job.args == (target_list.pk, str(stored), None, marketer.pk, status["key"])
    assert stored.read_bytes() == UPLOAD
    assert Target.objects.count() == 25  # nothing imported in the request

    status_url = reverse("target-list-import-status", args=[target_list.pk, status["key"]])
    polling = client.get(status_url, HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in polling.text and "Waiting for a worker" in polling.text

    drain()
    done = client.get(status_url, HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in done.text  # polling stops
    assert counts(done.context["import_status"]) == UPLOAD_COUNTS
    assert 'data-count="added">3<' in done.text
    assert '<span id="target-count" hx-swap-oob="true">28</span>' in done.text
    assert not stored.exists()
    assert files_under(tmp_path) == []
    target_list.refresh_from_db()
    assert target_list.target_count == 28
    event = AuditEvent.objects.get(action="target_list.import")
    assert (event.actor, event.details["added"]) == (marketer, 3)
    report = client.get(reverse("target-list-errors", args=[target_list.pk]))
    assert b"bad id" in report.content


def test_import_status_shows_the_reading_pass_then_the_writing_pass(
    client, marketer, target_list, redis_conn
):
    from campaigns.views.target_lists import ImportStatus

    client.force_login(marketer)
    status = ImportStatus.begin(target_list.pk, source="big.csv", total_bytes=1000)
    url = reverse("target-list-import-status", args=[target_list.pk, status.key])
    status.progress(1500, 500)  # half the file read
    reading = client.get(url, HTTP_HX_REQUEST="true")
    assert reading.context["import_status"]["percent"] == ImportStatus.READ_SHARE // 2
    assert "1,500 rows read (500\xa0bytes of 1000\xa0bytes)." in reading.text
    assert "The rows are written once the whole file is read." in reading.text
    assert 'data-live-summary="Importing: 7%, 1500 rows read"' in reading.text
    status.progress(3000, 1000)
    status.writing(720, 2880)  # a quarter of the valid rows written
    writing = client.get(url, HTTP_HX_REQUEST="true")
    percent = ImportStatus.READ_SHARE + (100 - ImportStatus.READ_SHARE) // 4
    assert writing.context["import_status"]["percent"] == percent == 36
    assert "All 3,000 rows read. Writing the valid ones to the list, sorted by target ID: " in (
        writing.text
    )
    assert "720 of 2,880 done." in writing.text
    summary = 'data-live-summary="Importing: 36%, writing the valid rows (720 of 2880 done)"'
    assert summary in writing.text
    assert 'data-live-state="writing"' in writing.text
    assert 'hx-trigger="every 1s"' in writing.text
    with translation.override("zh-hans"):
        zh = client.get(url, HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "720" in zh.text and "Writing the valid ones" not in zh.text


def test_job_reports_a_file_level_error(
    client, marketer, target_list, queue, settings, django_capture_on_commit_callbacks
):
    settings.TARGET_IMPORT_SYNC_BYTES = 1
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, target_list, b"name,email\na,b\n", column="uid")
    status = response.context["import_status"]
    drain()
    status_url = reverse("target-list-import-status", args=[target_list.pk, status["key"]])
    done = client.get(status_url)
    assert "The import failed: The file has no column named “uid”" in done.text
    assert "hx-trigger" not in done.text
    assert Target.objects.count() == 25


def test_import_status_of_unknown_or_other_list_is_404(client, auditor, target_list, redis_conn):
    other = make_list(0, "other")
    client.force_login(auditor)
    for pk, key in ((target_list.pk, "0" * 32), (target_list.pk, "not-a-key")):
        assert client.get(reverse("target-list-import-status", args=[pk, key])).status_code == 404
    from campaigns.views.target_lists import ImportStatus

    status = ImportStatus.begin(other.pk, source="x")
    url = reverse("target-list-import-status", args=[target_list.pk, status.key])
    assert client.get(url).status_code == 404
    url = reverse("target-list-import-status", args=[other.pk, status.key])
    assert client.get(url).status_code == 200


def test_search_by_exact_id_or_prefix(client, auditor):
    target_list = make_list(120, "search")  # u0000000 ... u0000119
    client.force_login(auditor)
    url = reverse("target-list-detail", args=[target_list.pk])
    assert client.get(url, {"q": "u0000042"}).context["targets"] == ["u0000042"]
    found = client.get(url, {"q": "u000011"}).context["targets"]
    assert found == [f"u{n:07d}" for n in range(110, 120)]
    empty = client.get(url, {"q": "nobody"})
    assert empty.context["targets"] == [] and "No target ID is or starts with" in empty.text


def test_keyset_paging_50_at_a_time_without_counting(client, auditor):
    target_list = make_list(120, "paged")
    client.force_login(auditor)
    url = reverse("target-list-detail", args=[target_list.pk])
    seen = []
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
        while True:
            seen += response.context["targets"]
            if not response.context["next_url"]:
                break
            assert "after=" in response.context["next_url"]
            response = client.get(url + response.context["next_url"])
    assert seen == [f"u{n:07d}" for n in range(120)]
    assert [len(seen[i : i + 50]) for i in range(0, 120, 50)] == [50, 50, 20]
    assert not [
        q for q in queries if "COUNT(" in q["sql"].upper() and "campaigns_target" in q["sql"]
    ]
    assert "120" in response.text  # the count shown is target_count


def test_keyset_paging_keeps_the_search(client, auditor):
    target_list = make_list(0, "mixed")
    Target.objects.bulk_create(
        Target(target_list=target_list, target_id=f"{prefix}{n:03d}")
        for n in range(60)
        for prefix in ("a", "b")
    )
    client.force_login(auditor)
    url = reverse("target-list-detail", args=[target_list.pk])
    first = client.get(url, {"q": "b"})
    assert first.context["targets"] == [f"b{n:03d}" for n in range(50)]
    second = client.get(url + first.context["next_url"])
    assert second.context["targets"] == [f"b{n:03d}" for n in range(50, 60)]
    assert second.context["next_url"] is None
