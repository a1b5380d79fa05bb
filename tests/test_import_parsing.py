"""The block-at-a-time import reads files exactly as the line-at-a-time reader it
replaced: same rows, values, reasons, counts and progress (bytes included), whatever
the block boundaries. `reference_rows` below is that earlier reader, kept as the spec."""

from __future__ import annotations

import csv
import io
import random

import pytest

from campaigns.importing import (
    ImportFileError,
    import_targets,
    iter_ids,
    parsing,
    validate_target_id,
)
from campaigns.models import AuditEvent, Target, TargetList

EMPTY = "target ID is empty"


def reference_rows(data: bytes, column: str | None):
    """(row, value, reason, bytes read when the row was yielded), line by line."""
    stream = io.BytesIO(data)
    limit = parsing.MAX_LINE_BYTES

    def physical_lines():
        first = True
        while line := stream.readline(limit):
            too_long = False
            if len(line) == limit and not line.endswith(b"\n"):
                too_long = True
                rest = line
                while rest and not rest.endswith(b"\n"):
                    rest = stream.readline(limit)
            if first:
                if line.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise ImportFileError("UTF-16")
                line = line.removeprefix(b"\xef\xbb\xbf")
                first = False
            yield line.rstrip(b"\r\n"), too_long

    def decode(raw, too_long):
        if too_long:
            return raw[:400].decode("utf-8", "replace"), f"row is longer than {limit // 1024} KiB"
        if b"\x00" in raw:
            return raw.replace(b"\x00", b"").decode("utf-8", "replace"), "row contains NUL bytes"
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError:
            return raw.decode(
                "utf-8", "replace"
            ), "row is not valid UTF-8 text (save the file as UTF-8)"

    def cells(text, delimiter):
        if '"' not in text:
            return text.split(delimiter)
        return next(csv.reader([text], delimiter=delimiter), [])

    lines = physical_lines()
    first = next(lines, None)
    if column is None:
        pending = [first] if first else []
        first_row = 1

        def pick(text):
            return text.strip(), None
    else:
        if first is None:
            raise ImportFileError("empty")
        text, reason = decode(*first)
        if reason:
            raise ImportFileError("header")
        delimiter = max(",;\t", key=text.count)
        names = [name.strip() for name in cells(text, delimiter)]
        index = [name.casefold() for name in names].index(column.casefold())
        pending, first_row = [], 2

        def pick(text):
            if not text.replace(delimiter, "").strip():
                return "", None
            found = cells(text, delimiter)
            if index >= len(found):
                return text, f"row has no “{names[index]}” column"
            value = found[index].strip()
            return (value, None) if value else (text, EMPTY)

    def numbered():
        yield from pending
        yield from lines

    blank_rows = 0
    for row, (raw, too_long) in enumerate(numbered(), start=first_row):
        text, reason = decode(raw, too_long)
        if reason is None:
            value, reason = pick(text)
            if value == "" and reason is None:
                blank_rows += 1
                continue
        else:
            value = text
        for blank_row in range(row - blank_rows, row):
            yield blank_row, "", EMPTY, stream.tell()
        blank_rows = 0
        yield row, value, reason, stream.tell()


def reference_import(data, column, delivery_type, chunk_size, existing):
    """What import_targets must report, worked out without a database."""
    rows = list(reference_rows(data, column))
    in_list = set(existing)
    counts = {"rows_read": 0, "added": 0, "duplicates_in_file": 0, "already_in_list": 0}
    errors, progress = [], []
    for row, value, reason, bytes_read in rows:
        counts["rows_read"] += 1
        reason = reason or validate_target_id(value, delivery_type)
        if reason:
            errors.append((row, reason, value[:100]))
        elif value in existing:
            counts["already_in_list"] += 1
        elif value in in_list:
            counts["duplicates_in_file"] += 1
        else:
            in_list.add(value)
            counts["added"] += 1
        if counts["rows_read"] % chunk_size == 0:
            progress.append((counts["rows_read"], bytes_read))
    if counts["rows_read"] % chunk_size:
        progress.append((counts["rows_read"], len(data)))
    return counts, errors, progress


PIECES = [
    b"u-1",
    b"u-2",
    b"u-3",
    b"abc",
    b"dev:01_a.b-c",
    b"\xe5\xbc\xa0\xe4\xb8\x89",
    b"",
    b"  ",
    b"\t",
    b" u-1 ",
    b"u-2\r",
    b"\r",
    b"a b",
    b"x,y",
    b"p;q",
    b'"q,1"',
    b'"',
    b"o'neil",
    b"nul\x00x",
    b"\xff\xfebad",
    b"\xe5\xbc",
    b"0a1B",
    b"a" * 201,
    b"b" * 30,
    b"c" * 70,
    b"d" * 2000,
    b"\xe5\xbc\xa0" * 30,
    b"u-1,u-2",
    b";;",
    b",",
    b"\x01z",
]


def random_file(rng: random.Random, column: str | None) -> bytes:
    lines = [rng.choice(PIECES) for _ in range(rng.randrange(0, 60))]
    if rng.random() < 0.3:  # long runs of plain rows, for the quick path
        lines += [b"id-%d" % rng.randrange(40) for _ in range(rng.randrange(200))]
        rng.shuffle(lines)
    if column is not None:
        header = rng.choice([b"user_id", b"name,user_id", b"User_ID;x", b"a\tuser_id\tb"])
        lines.insert(0, header)
    data = b"\n".join(lines)
    if rng.random() < 0.5:
        data += rng.choice([b"\n", b"\r\n", b"\n\n\n", b"\n \n"])
    if rng.random() < 0.2:
        data = b"\xef\xbb\xbf" + data
    return data


@pytest.fixture(params=[(5, 16), (17, 32), (64, 64), (300, 1024), (4096, 64 * 1024)])
def small_blocks(request, monkeypatch):
    block, line = request.param
    monkeypatch.setattr(parsing, "_BLOCK_BYTES", block)
    monkeypatch.setattr(parsing, "MAX_LINE_BYTES", line)


@pytest.mark.parametrize("column", [None, "user_id"])
def test_rows_match_the_line_by_line_reader(small_blocks, column):
    rng = random.Random(f"{parsing._BLOCK_BYTES}-{column}")
    for _ in range(300):
        data = random_file(rng, column)
        try:
            expected = [row[:3] for row in reference_rows(data, column)]
        except ImportFileError:
            with pytest.raises(ImportFileError):
                list(iter_ids(io.BytesIO(data), column=column))
            continue
        assert list(iter_ids(io.BytesIO(data), column=column)) == expected, data


@pytest.mark.django_db
@pytest.mark.parametrize("column", [None, "user_id"])
def test_import_matches_the_line_by_line_reader(small_blocks, column):
    rng = random.Random(f"import-{parsing._BLOCK_BYTES}-{column}")
    for n in range(25):
        data = random_file(rng, column)
        delivery_type = rng.choice([1, 3, 5])
        chunk_size = rng.choice([1, 3, 7, 50, 5000])
        existing = rng.sample(["u-1", "u-3", "abc", "id-1", "id-7"], rng.randrange(3))
        target_list = TargetList.objects.create(name=f"L{n}", delivery_type=delivery_type)
        Target.objects.bulk_create(Target(target_list=target_list, target_id=t) for t in existing)
        TargetList.objects.filter(pk=target_list.pk).update(target_count=len(existing))
        try:
            counts, errors, progress = reference_import(
                data, column, delivery_type, chunk_size, existing
            )
        except (ImportFileError, ValueError):
            continue
        calls = []
        result = import_targets(
            target_list,
            io.BytesIO(data),
            column=column,
            chunk_size=chunk_size,
            progress=lambda rows, size: calls.append((rows, size)),  # noqa: B023
        )
        assert {name: getattr(result, name) for name in counts} == counts, data
        assert result.errors == errors, data
        assert result.invalid == len(errors)
        assert calls == progress, data
        target_list.refresh_from_db()
        assert target_list.target_count == len(existing) + counts["added"]
        assert target_list.targets.count() == target_list.target_count


@pytest.mark.django_db
def test_a_big_file_with_scattered_problems(monkeypatch):
    monkeypatch.setattr(parsing, "_BLOCK_BYTES", 4096)
    lines = []
    for n in range(30_000):
        if n % 997 == 0:
            lines.append(b"")
        elif n % 1009 == 0:
            lines.append(b"bad id")
        elif n % 1013 == 0:
            lines.append(b"\xff")
        else:
            lines.append(b"id-%d" % (n % 20_000))
    data = b"\r\n".join(lines) + b"\r\n"
    target_list = TargetList.objects.create(name="Big", delivery_type=3)
    Target.objects.create(target_list=target_list, target_id="id-5")
    counts, errors, progress = reference_import(data, None, 3, 5000, ["id-5"])
    calls = []
    result = import_targets(
        target_list, io.BytesIO(data), progress=lambda rows, size: calls.append((rows, size))
    )
    assert (result.rows_read, result.added, result.already_in_list) == (
        counts["rows_read"],
        counts["added"],
        counts["already_in_list"],
    )
    assert result.duplicates_in_file == counts["duplicates_in_file"]
    assert result.errors == errors
    assert calls == progress
    assert Target.objects.filter(target_list=target_list).count() == 1 + counts["added"]


def test_memory_is_bounded_by_the_block_and_line_limits(monkeypatch):
    monkeypatch.setattr(parsing, "_BLOCK_BYTES", 16)
    monkeypatch.setattr(parsing, "MAX_LINE_BYTES", 32)
    data = b"a\n" + b"x" * 1000 + b"\nb\n" + b"y" * 40
    blocks = list(parsing._blocks(io.BytesIO(data), 0))
    assert max(len(block) for block, _start, _end in blocks) <= 16 + 32
    assert (b"x" * 32, 2, 1003) in blocks  # cut, with the offsets of the whole line
    assert blocks[-1] == (b"y" * 32, 1005, 1045)
    rows = list(iter_ids(io.BytesIO(data)))
    assert [(row, reason) for row, _value, reason in rows] == [
        (1, None),
        (2, "row is longer than 0 KiB"),
        (3, None),
        (4, "row is longer than 0 KiB"),
    ]


@pytest.mark.django_db
def test_audited_bytes_are_those_of_the_rows_counted(monkeypatch):
    monkeypatch.setattr(parsing, "_BLOCK_BYTES", 64)
    target_list = TargetList.objects.create(name="Audited", delivery_type=3)
    data = b"".join(b"id-%02d\n" % n for n in range(20)) + b"\n\n"

    def stop_at_ten(rows, size):
        if rows >= 10:
            raise RuntimeError("worker stopped")

    with pytest.raises(RuntimeError):
        import_targets(target_list, io.BytesIO(data), chunk_size=5, progress=stop_at_ten)
    import_targets(target_list, io.BytesIO(data), chunk_size=5)
    events = AuditEvent.objects.filter(action="target_list.import").order_by("id")
    assert [(e.details["bytes"], e.details["interrupted"]) for e in events] == [
        (60, True),
        (len(data), False),
    ]
