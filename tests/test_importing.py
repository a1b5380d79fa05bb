"""Importing target IDs: streamed, deduplicated, with a per-row error report."""

from __future__ import annotations

import csv
import io
import threading

import pytest
from django.db import connection, connections, transaction
from django.db.models import F

from campaigns.importing import (
    ImportFileError,
    check_upload_size,
    import_targets,
    import_text,
    iter_ids,
    safe_csv_value,
    validate_target_id,
    writing,
)
from campaigns.models import AuditEvent, Target, TargetList

pytestmark = pytest.mark.django_db

ASCII_RULE = (
    "target ID for “{}” may only contain ASCII letters, digits, hyphens, underscores, "
    "dots and colons"
)
HEX_RULE = "an iOS live-activity push token may only contain hexadecimal digits"
NOT_UTF8 = "row is not valid UTF-8 text (save the file as UTF-8)"


def make_list(name: str = "Imported", delivery_type: int = 3) -> TargetList:
    return TargetList.objects.create(name=name, delivery_type=delivery_type)


def ids_in(target_list: TargetList) -> list[str]:
    return sorted(target_list.targets.values_list("target_id", flat=True))


def counts(result) -> tuple[int, int, int, int, int]:
    return (
        result.rows_read,
        result.added,
        result.duplicates_in_file,
        result.already_in_list,
        result.invalid,
    )


def run(target_list: TargetList, data: bytes, **kwargs):
    return import_targets(target_list, io.BytesIO(data), **kwargs)


def test_plain_text_counts_duplicates_blank_and_bad_rows():
    target_list = make_list()
    data = b"alice\nbob\nalice\n\n  carol  \nbad id\n\n\n"
    result = run(target_list, data)
    assert counts(result) == (6, 3, 1, 0, 2)
    assert result.errors == [
        (4, "target ID is empty", ""),
        (6, "target ID contains whitespace", "bad id"),
    ]
    assert result.error_messages() == [
        "Row 4: target ID is empty.",
        "Row 6: target ID contains whitespace.",
    ]
    assert ids_in(target_list) == ["alice", "bob", "carol"]
    assert target_list.target_count == 3
    assert TargetList.objects.get(pk=target_list.pk).target_count == 3


def test_csv_column_is_chosen_by_header_name():
    target_list = make_list()
    data = (
        b"Name,User ID,Email\n"
        b"Ann,u-1,a@example.invalid\n"
        b'"Smith, J",u-2,j@example.invalid\n'
        b"Cy,,c@example.invalid\n"
        b"Dee\n"
        b"Eve, u-1 ,e@example.invalid\n"
        b",,\n"
    )
    result = run(target_list, data, column="  user id ")
    assert counts(result) == (5, 2, 1, 0, 2)
    assert result.errors == [
        (4, "target ID is empty", "Cy,,c@example.invalid"),
        (5, "row has no “User ID” column", "Dee"),
    ]
    assert ids_in(target_list) == ["u-1", "u-2"]


def test_csv_with_semicolons_and_bom_header():
    target_list = make_list(delivery_type=1)
    result = run(target_list, b"\xef\xbb\xbfid;note\r\ndev-1;x\r\ndev-2;y\r\n", column="ID")
    assert counts(result) == (2, 2, 0, 0, 0)
    assert ids_in(target_list) == ["dev-1", "dev-2"]


def test_missing_column_fails_before_any_row_is_written():
    target_list = make_list()
    with pytest.raises(ImportFileError) as excinfo:
        run(target_list, b"Name,User ID\nAnn,u-1\n", column="phone")
    assert str(excinfo.value) == (
        "The file has no column named “phone”. Columns found: “Name”, “User ID”."
    )
    assert Target.objects.count() == 0
    assert TargetList.objects.get(pk=target_list.pk).target_count == 0
    assert AuditEvent.objects.filter(action="target_list.import").count() == 0


def test_empty_file_with_column_is_a_file_error():
    with pytest.raises(ImportFileError, match="The file is empty"):
        iter_ids(io.BytesIO(b""), column="id")


def test_utf16_file_is_refused_before_reading_rows():
    target_list = make_list()
    with pytest.raises(ImportFileError, match="UTF-16"):
        run(target_list, "abc\ndef\n".encode("utf-16"))
    assert Target.objects.count() == 0


def test_latin1_row_is_reported_and_the_rest_imports():
    target_list = make_list()
    result = run(target_list, b"good-1\ncaf\xe9\ngood-2\n")
    assert counts(result) == (3, 2, 0, 0, 1)
    assert result.errors == [(2, NOT_UTF8, "caf\ufffd")]
    assert ids_in(target_list) == ["good-1", "good-2"]


def test_nul_bytes_are_reported():
    target_list = make_list()
    result = run(target_list, b"a1\nb\x002\nc3\n")
    assert result.errors == [(2, "row contains NUL bytes", "b2")]
    assert ids_in(target_list) == ["a1", "c3"]


def test_utf8_bom_is_not_part_of_the_first_id():
    target_list = make_list(delivery_type=1)
    result = run(target_list, b"\xef\xbb\xbfdevice-1\r\ndevice-2\r\n")
    assert counts(result) == (2, 2, 0, 0, 0)
    assert ids_in(target_list) == ["device-1", "device-2"]


def test_too_long_ids_and_lines():
    target_list = make_list()
    data = b"a" * 200 + b"\n" + b"b" * 201 + b"\n" + b"c" * 100_000 + b"\nlast\n"
    result = run(target_list, data)
    assert counts(result) == (4, 2, 0, 0, 2)
    assert result.errors == [
        (2, "target ID is longer than 200 characters", "b" * 100),
        (3, "row is longer than 64 KiB", "c" * 100),
    ]
    assert ids_in(target_list) == ["a" * 200, "last"]


@pytest.mark.parametrize(
    ("value", "delivery_type", "reason"),
    [
        ("张三", 3, None),
        ("user.name@example.com", 3, None),
        ("+86-138:0013_8000", 3, None),
        ("0a1B2cDEF9", 5, None),
        ("0a1b-2c", 5, HEX_RULE),
        ("xyz", 5, HEX_RULE),
        ("dev:01_a.b-c", 1, None),
        ("张三", 1, ASCII_RULE.format("Android device")),
        ("tok@1", 2, ASCII_RULE.format("iOS device")),
        ("act/1", 6, ASCII_RULE.format("Live-activity ID")),
        ("hm+1", 7, ASCII_RULE.format("HarmonyOS device")),
        ("", 3, "target ID is empty"),
        ("a" * 201, 1, "target ID is longer than 200 characters"),
        ("a b", 3, "target ID contains whitespace"),
        ("a\u3000b", 3, "target ID contains whitespace"),
        ("a\u200bb", 3, "target ID contains control or invisible characters"),
        ("a\x01b", 1, "target ID contains control or invisible characters"),
        ("a,b", 3, "target ID contains a comma or quote"),
        ('a"b', 1, "target ID contains a comma or quote"),
        ("o'neil", 3, "target ID contains a comma or quote"),
    ],
)
def test_validate_target_id(value, delivery_type, reason):
    assert validate_target_id(value, delivery_type) == reason


def test_validate_target_id_rejects_unknown_delivery_type():
    with pytest.raises(ValueError, match="unknown delivery type 4"):
        validate_target_id("abc", 4)


def test_delivery_type_rules_apply_during_import():
    tokens = make_list("Tokens", delivery_type=5)
    result = run(tokens, "deadBEEF\n张三\n".encode())
    assert counts(result) == (2, 1, 0, 0, 1)
    assert result.errors == [(2, HEX_RULE, "张三")]
    users = make_list("Users", delivery_type=3)
    assert run(users, "deadBEEF\n张三\n".encode()).added == 2
    assert ids_in(users) == ["deadBEEF", "张三"]


def test_reimporting_the_same_file_adds_nothing():
    target_list = make_list()
    # 120 distinct IDs, one of them twice: more than one lookup batch of existing IDs.
    data = b"".join(b"x%03d\n" % n for n in range(120)) + b"x007\n"
    first = run(target_list, data, chunk_size=100)
    second = run(target_list, data, chunk_size=100)
    assert counts(first) == (121, 120, 1, 0, 0)
    assert counts(second) == (121, 0, 0, 121, 0)
    assert TargetList.objects.get(pk=target_list.pk).target_count == 120
    assert Target.objects.filter(target_list=target_list).count() == 120


def test_duplicates_across_chunks_are_told_apart_from_existing_ids(target_list):
    # The fixture list holds user-000 … user-024.
    data = b"a\nuser-001\nb\na\nuser-001\nc\nb\n"
    result = run(target_list, data, chunk_size=2)
    assert counts(result) == (7, 3, 2, 2, 0)
    assert TargetList.objects.get(pk=target_list.pk).target_count == 28
    assert target_list.targets.count() == 28


def test_other_lists_do_not_count_as_duplicates():
    first, second = make_list("First"), make_list("Second")
    run(first, b"shared\nonly-first\n")
    result = run(second, b"shared\n")
    assert counts(result) == (1, 1, 0, 0, 0)
    assert (first.target_count, second.target_count) == (2, 1)


def test_import_text_handles_pasted_lines(marketer):
    target_list = make_list()
    result = import_text(target_list, "u1\r\nu2\r\n u1 \r\n", actor=marketer)
    assert counts(result) == (3, 2, 1, 0, 0)
    assert target_list.target_count == 2
    event = AuditEvent.objects.get(action="target_list.import")
    assert event.actor_username == "mark"
    assert event.object_id == str(target_list.pk)
    assert event.details == {
        "rows_read": 3,
        "added": 2,
        "duplicates_in_file": 1,
        "already_in_list": 0,
        "invalid": 0,
        "column": "",
        "bytes": 14,
        "interrupted": False,
    }


def test_error_report_csv_neutralises_formulas_and_truncates():
    target_list = make_list(delivery_type=5)
    data = b"=cmd\n+1\n-2\n@x\n\x00\tz\ncafe\n" + b"g" * 150 + b"\n"
    result = run(target_list, data)
    assert result.added == 1
    report = result.error_report_csv()
    assert report.startswith("\ufeffrow,reason,value\r\n")
    rows = list(csv.reader(io.StringIO(report.removeprefix("\ufeff"))))
    assert rows == [
        ["row", "reason", "value"],
        ["1", HEX_RULE, "'=cmd"],
        ["2", HEX_RULE, "'+1"],
        ["3", HEX_RULE, "'-2"],
        ["4", HEX_RULE, "'@x"],
        ["5", "row contains NUL bytes", "'\tz"],
        ["7", HEX_RULE, "g" * 100],
    ]


def test_safe_csv_value():
    assert safe_csv_value("\rx") == "'\rx"
    assert safe_csv_value("\tx") == "'\tx"
    assert safe_csv_value("plain=1") == "plain=1"
    assert safe_csv_value("=" + "a" * 200) == "'=" + "a" * 99


def test_errors_beyond_the_cap_are_counted_not_kept(monkeypatch):
    monkeypatch.setattr(writing, "MAX_KEPT_ERRORS", 2)
    target_list = make_list(delivery_type=1)
    result = run(target_list, b"a b\nc d\ne f\ng h\nh,i\nok\n")
    assert counts(result) == (6, 1, 0, 0, 5)
    assert [row for row, _reason, _value in result.errors] == [1, 2]
    last = list(csv.reader(io.StringIO(result.error_report_csv())))[-1]
    assert last == ["", "3 more invalid rows are not listed"]


def test_progress_is_reported_every_chunk():
    target_list = make_list()
    calls = []
    data = b"".join(b"id-%02d\n" % n for n in range(12))
    run(target_list, data, chunk_size=5, progress=lambda rows, size: calls.append((rows, size)))
    assert calls == [(5, 30), (10, 60), (12, 72)]


def test_rows_are_staged_then_written_in_id_order_with_progress_for_each_pass():
    target_list = make_list()
    Target.objects.create(target_list=target_list, target_id="m-old")
    TargetList.objects.filter(pk=target_list.pk).update(target_count=1)
    reading, writing_calls = [], []
    # 12 rows, 9 valid distinct IDs in no order, one of them twice, one already listed.
    data = b"q\nc\nbad id\nx\na\nm-old\nc\nz\nb\ny\n\nd\n"
    result = run(
        target_list,
        data,
        chunk_size=4,
        progress=lambda rows, size: reading.append((rows, size)),
        write_progress=lambda done, total: writing_calls.append((done, total)),
    )
    assert counts(result) == (12, 8, 1, 1, 2)
    assert reading == [(4, 13), (8, 25), (12, 32)]
    # 10 valid rows; chunks of 4 distinct IDs: a b c(x2) d | m-old q x y | z
    assert writing_calls == [(5, 10), (9, 10), (10, 10)]
    # New targets are numbered in ID order, after the ones the list had.
    in_pk_order = list(target_list.targets.order_by("pk").values_list("target_id", flat=True))
    assert in_pk_order == ["m-old", "a", "b", "c", "d", "q", "x", "y", "z"]
    assert TargetList.objects.get(pk=target_list.pk).target_count == 9


def test_a_file_with_values_is_written_in_id_order_and_a_repeated_id_keeps_its_last_row():
    target_list = make_list()
    old = Target.objects.create(target_list=target_list, target_id="k", values={"code": "K0"})
    TargetList.objects.filter(pk=target_list.pk).update(target_count=1)
    # b's last row is neither its first nor its greatest value.
    data = b"user_id,code\nz,Z1\nb,B3\nk,K1\n,E\nb,B1\na,A1\nb,B2\n"
    writing_calls = []
    result = run(
        target_list,
        data,
        column="user_id",
        chunk_size=2,
        write_progress=lambda done, total: writing_calls.append((done, total)),
    )
    assert counts(result) == (7, 3, 2, 1, 1)
    assert writing_calls == [(4, 6), (6, 6)]  # a b(x3) | k z
    rows = target_list.targets.order_by("pk").values_list("target_id", "values")
    assert list(rows) == [
        ("k", {"code": "K1"}),  # already listed: takes the file's values, keeps its number
        ("a", {"code": "A1"}),
        ("b", {"code": "B2"}),
        ("z", {"code": "Z1"}),
    ]
    assert Target.objects.get(target_id="k").pk == old.pk
    assert TargetList.objects.get(pk=target_list.pk).target_count == 4


def test_a_row_short_of_cells_keeps_only_the_values_it_has():
    target_list = make_list()
    data = "user_id,code,名字\na,A1,安\nb,B1\nc\n".encode()
    assert counts(run(target_list, data, column="user_id")) == (3, 3, 0, 0, 0)
    rows = target_list.targets.order_by("pk").values_list("target_id", "values")
    assert list(rows) == [("a", {"code": "A1", "名字": "安"}), ("b", {"code": "B1"}), ("c", {})]


def test_a_failure_while_reading_writes_nothing_and_is_audited():
    target_list = make_list()

    def progress(rows, size):
        if rows >= 10:
            raise RuntimeError("worker stopped")

    data = b"".join(b"id-%02d\n" % n for n in range(20))
    with pytest.raises(RuntimeError, match="worker stopped"):
        run(target_list, data, chunk_size=5, progress=progress)
    assert TargetList.objects.get(pk=target_list.pk).target_count == 0
    assert target_list.targets.count() == 0
    event = AuditEvent.objects.get(action="target_list.import")
    assert (event.details["rows_read"], event.details["added"]) == (10, 0)
    assert (event.details["bytes"], event.details["interrupted"]) == (60, True)


def test_a_failure_while_writing_leaves_count_and_rows_consistent_and_is_audited():
    target_list = make_list()

    def write_progress(done, total):
        if done >= 10:
            raise RuntimeError("worker stopped")

    data = b"".join(b"id-%02d\n" % n for n in reversed(range(20)))
    with pytest.raises(RuntimeError, match="worker stopped"):
        run(target_list, data, chunk_size=5, write_progress=write_progress)
    assert TargetList.objects.get(pk=target_list.pk).target_count == 10
    assert ids_in(target_list) == [f"id-{n:02d}" for n in range(10)]  # the lowest IDs first
    event = AuditEvent.objects.get(action="target_list.import")
    assert (event.details["rows_read"], event.details["added"]) == (20, 10)
    assert event.details["interrupted"] is True
    # Running the whole file again completes it.
    assert counts(run(target_list, data)) == (20, 10, 0, 10, 0)
    assert TargetList.objects.get(pk=target_list.pk).target_count == 20
    assert target_list.targets.count() == 20


def test_upload_size_limit(settings):
    check_upload_size(100 * 1024 * 1024)
    with pytest.raises(ImportFileError) as excinfo:
        check_upload_size(100 * 1024 * 1024 + 1)
    assert str(excinfo.value) == "The file is 100.1 MB; the limit is 100 MB."
    settings.TARGET_UPLOAD_MAX_BYTES = 1024 * 1024
    with pytest.raises(ImportFileError) as excinfo:
        check_upload_size(1536 * 1024)
    assert str(excinfo.value) == "The file is 1.5 MB; the limit is 1 MB."


def test_two_hundred_thousand_rows():
    target_list = make_list(delivery_type=1)
    lines = (b"device-%07d\n" % (n % 200_000) for n in range(210_000))
    result = run(target_list, b"".join(lines))
    assert counts(result) == (210_000, 200_000, 10_000, 0, 0)
    assert TargetList.objects.get(pk=target_list.pk).target_count == 200_000
    assert Target.objects.filter(target_list=target_list).count() == 200_000


@pytest.mark.django_db(transaction=True)
def test_a_file_with_values_waits_for_the_list_lock_of_a_concurrent_import():
    """Another writer holds the list's lock and has inserted an ID of this file, not yet
    committed. The import must wait for it and count that ID as added by the other, not
    by itself (PostgreSQL: SQLite serialises writers before this can happen)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's IMMEDIATE transactions serialise the two writers")
    target_list = make_list()
    locked, done = threading.Event(), threading.Event()

    def other_writer():
        try:
            with transaction.atomic():
                TargetList.objects.select_for_update().filter(pk=target_list.pk).get()
                Target.objects.create(target_list=target_list, target_id="b")
                TargetList.objects.filter(pk=target_list.pk).update(
                    target_count=F("target_count") + 1
                )
                locked.set()
                done.wait(1.0)  # the import below starts meanwhile and must wait
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert locked.wait(10)
    result = run(target_list, b"user_id,code\na,A\nb,B\n", column="user_id")
    done.set()
    thread.join()
    assert result.added == 1  # a; b was the other writer's
    assert result.added + result.duplicates_in_file + result.already_in_list == 2
    assert TargetList.objects.get(pk=target_list.pk).target_count == 2
    assert Target.objects.filter(target_list=target_list).count() == 2
    assert Target.objects.get(target_id="b").values == {"code": "B"}
