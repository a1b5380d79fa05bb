"""Importing target IDs into a TargetList from an uploaded CSV/TXT file or pasted text.

The import streams: the file is read one physical line at a time (a bad line is reported
with its row number and the import goes on) and written in chunks. Each chunk is one
transaction that also adds to the list's `target_count`, so a crash part-way leaves the
count matching the rows and re-running the same file finishes the job.

Duplicates are found by the database, not by a Python set of everything seen (a million
IDs would cost ~100 MB): each chunk is inserted with conflicts on the list's
(target_list, target_id) unique constraint ignored, and the rows it created are read
back, so `target_count` grows by exactly what was inserted. Chunk writes lock the
TargetList row (SQLite's IMMEDIATE transactions serialise writers anyway); any other code
that adds Targets to a list must take the same lock and keep the count.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import audit
from campaigns.models import DeliveryType, Target, TargetList

DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # a 64 MB file of a million IDs fits
MAX_KEPT_ERRORS = 10_000  # further invalid rows are only counted
REPORT_VALUE_CHARS = 100
MAX_LINE_BYTES = 64 * 1024  # longer physical lines are reported, never held in memory
_LOOKUP_BATCH = 50
TARGET_ID_MAX_LENGTH: int = Target._meta.get_field("target_id").max_length

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ASCII_ID = re.compile(r"[A-Za-z0-9_.:\-]+")
_ALLOWED = {
    DeliveryType.ANDROID_DEVICE: _ASCII_ID,
    DeliveryType.IOS_DEVICE: _ASCII_ID,
    DeliveryType.USER_ID: re.compile(r"[^\s,\"']+"),  # plus str.isprintable()
    DeliveryType.LIVE_ACTIVITY_TOKEN: re.compile(r"[0-9A-Fa-f]+"),
    DeliveryType.LIVE_ACTIVITY_ID: _ASCII_ID,
    DeliveryType.HARMONYOS_DEVICE: _ASCII_ID,
}

Row = tuple[int, str, str | None]
Progress = Callable[[int, int], object]


class ImportFileError(ValueError):
    """The file as a whole cannot be imported: too big, not UTF-8 text, no such column."""


def max_upload_bytes() -> int:
    """The upload limit: settings.TARGET_UPLOAD_MAX_BYTES, read when called."""
    return int(getattr(settings, "TARGET_UPLOAD_MAX_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


def _megabytes(size: int) -> str:
    # Rounded up to 0.1 MB, so a file just over the limit never reads as equal to it.
    return f"{math.ceil(size * 10 / 1024 / 1024) / 10:.1f}".removesuffix(".0")


def check_upload_size(size: int) -> None:
    """Refuse an upload larger than `max_upload_bytes()` before anything is read."""
    limit = max_upload_bytes()
    if size > limit:
        raise ImportFileError(
            _("The file is %(size)s MB; the limit is %(limit)s MB.")
            % {"size": _megabytes(size), "limit": _megabytes(limit)}
        )


def validate_target_id(value: str, delivery_type: int) -> str | None:
    """Return why `value` cannot be a target ID of `delivery_type`, or None if it can.

    mPaaS does not publish exact formats, so the rules are permissive but safe:

    - every type: not empty; at most 200 characters (Target.target_id); no whitespace;
      no control or invisible characters (only printable ones); no comma or quote
      (`,` `"` `'`), which would split or corrupt CSV files and pasted lists;
    - 3 user ID: any other printable Unicode (letters including CJK, digits, `-_.@:+`);
    - 1 Android, 2 iOS, 7 HarmonyOS device IDs/tokens and 6 live-activity IDs: ASCII
      letters, digits and `- _ . :` only;
    - 5 iOS live-activity push token: hexadecimal digits only (APNs tokens are hex).
    """
    if not value:
        return _("target ID is empty")
    if len(value) > TARGET_ID_MAX_LENGTH:
        return _("target ID is longer than %(max)d characters") % {"max": TARGET_ID_MAX_LENGTH}
    try:
        allowed = _ALLOWED[delivery_type]
    except KeyError:
        raise ValueError(f"unknown delivery type {delivery_type!r}") from None
    if allowed.fullmatch(value) and value.isprintable():
        return None
    # Rejected: name the first rule broken.
    if any(char.isspace() for char in value):
        return _("target ID contains whitespace")
    if not value.isprintable():
        return _("target ID contains control or invisible characters")
    if any(char in ",\"'" for char in value):
        return _("target ID contains a comma or quote")
    if delivery_type == DeliveryType.LIVE_ACTIVITY_TOKEN:
        return _("an iOS live-activity push token may only contain hexadecimal digits")
    return _(
        "target ID for “%(type)s” may only contain ASCII letters, digits, hyphens, "
        "underscores, dots and colons"
    ) % {"type": DeliveryType(delivery_type).label}


def safe_csv_value(value: str) -> str:
    """Truncate a value to 100 characters and neutralise spreadsheet formulas: a cell
    starting with `= + - @`, tab or CR gets a leading `'` so it is shown as text."""
    value = value[:REPORT_VALUE_CHARS]
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


@dataclass
class ImportResult:
    """What one import did. rows_read == added + duplicates_in_file + already_in_list
    + invalid. A row that adds nothing counts as "already in list" when its ID was in
    the list before this import began, else as "duplicate in file"."""

    rows_read: int = 0
    added: int = 0
    duplicates_in_file: int = 0
    already_in_list: int = 0
    invalid: int = 0
    # (row, reason, value): the first MAX_KEPT_ERRORS invalid rows, values truncated.
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    def add_error(self, row: int, reason: str, value: str) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append((row, reason, value[:REPORT_VALUE_CHARS]))

    def error_messages(self, limit: int = 20) -> list[str]:
        """The first `limit` errors as sentences: "Row 7: target ID is empty."."""
        return [
            _("Row %(row)d: %(reason)s.") % {"row": row, "reason": reason}
            for row, reason, _value in self.errors[:limit]
        ]

    def iter_error_report(self) -> Iterator[str]:
        """The error report as CSV text, a row at a time (for a StreamingHttpResponse).
        Starts with a BOM so Excel reads the UTF-8 (and CJK values) correctly."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)

        def take() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text

        writer.writerow([_("row"), _("reason"), _("value")])
        yield "\ufeff" + take()
        for row, reason, value in self.errors:
            writer.writerow([row, reason, safe_csv_value(value)])
            yield take()
        if self.invalid > len(self.errors):
            more = self.invalid - len(self.errors)
            writer.writerow(["", _("%(count)d more invalid rows are not listed") % {"count": more}])
            yield take()

    def error_report_csv(self) -> str:
        return "".join(self.iter_error_report())


def _physical_lines(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Yield (line without its ending, too_long). Memory is bounded by MAX_LINE_BYTES:
    the rest of an over-long line is read and dropped."""
    first = True
    while line := stream.readline(MAX_LINE_BYTES):
        too_long = False
        if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
            too_long = True
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = stream.readline(MAX_LINE_BYTES)
        if first:
            if line.startswith(_UTF16_BOMS):
                raise ImportFileError(_("The file is UTF-16 text; save it as UTF-8 and retry."))
            line = line.removeprefix(_BOM)
            first = False
        yield line.rstrip(b"\r\n"), too_long


def _decode(raw: bytes, too_long: bool) -> tuple[str, str | None]:
    """(text, reason) for one physical line; text is lossy when reason is set."""
    if too_long:
        reason = _("row is longer than %(max)d KiB") % {"max": MAX_LINE_BYTES // 1024}
        return raw[:400].decode("utf-8", "replace"), reason
    if b"\x00" in raw:
        return raw.replace(b"\x00", b"").decode("utf-8", "replace"), _("row contains NUL bytes")
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        return text, _("row is not valid UTF-8 text (save the file as UTF-8)")


def _cells(text: str, delimiter: str) -> list[str]:
    if '"' not in text:
        return text.split(delimiter)
    # One physical line is one row: quoted fields spanning lines are not supported.
    return next(csv.reader([text], delimiter=delimiter), [])


def _rows(
    lines: Iterator[tuple[bytes, bool]],
    first_row: int,
    pick: Callable[[str], tuple[str, str | None]],
) -> Iterator[Row]:
    """Number the lines, decode them and pick the value with `pick(text) -> (value,
    reason)`. Blank rows are "empty" errors, except trailing ones at the end of file."""
    blank_rows = 0
    for row, (raw, too_long) in enumerate(lines, start=first_row):
        text, reason = _decode(raw, too_long)
        if reason is None:
            value, reason = pick(text)
            if value == "" and reason is None:
                blank_rows += 1
                continue
        else:
            value = text
        for blank_row in range(row - blank_rows, row):
            yield blank_row, "", _("target ID is empty")
        blank_rows = 0
        yield row, value, reason


def iter_ids(stream: BinaryIO, *, column: str | None = None) -> Iterator[Row]:
    """Yield (row number, value, reason) for every data row of a binary stream.

    reason is None for a readable value (still to be checked by validate_target_id),
    otherwise value is the offending text for the error report. Rows are physical
    lines counted from 1; a UTF-8 BOM is skipped. Without `column` each line is one ID,
    surrounding whitespace stripped. With `column` the first line is a header naming the
    columns (matched case-insensitively; `,` `;` or tab, whichever the header uses most)
    and data rows start at 2. File-level problems (empty file, unreadable header, no
    such column, UTF-16 text) raise ImportFileError here, before any row is yielded.
    """
    lines = _physical_lines(stream)
    first = next(lines, None)  # read now, so that file-level errors raise here
    if column is None:
        return _rows(chain([first] if first else [], lines), 1, lambda text: (text.strip(), None))
    if first is None:
        raise ImportFileError(_("The file is empty: expected a header row naming the columns."))
    text, reason = _decode(*first)
    if reason is not None:
        raise ImportFileError(_("The header row cannot be read: %(reason)s.") % {"reason": reason})
    delimiter = max(",;\t", key=text.count)
    names = [name.strip() for name in _cells(text, delimiter)]
    wanted = column.strip().casefold()
    try:
        index = [name.casefold() for name in names].index(wanted)
    except ValueError:
        found = ", ".join(f"“{name}”" for name in names[:20] if name)
        raise ImportFileError(
            _("The file has no column named “%(column)s”. Columns found: %(found)s.")
            % {"column": column.strip(), "found": found or "-"}
        ) from None
    missing = _("row has no “%(column)s” column") % {"column": names[index]}
    empty = _("target ID is empty")

    def pick(text: str) -> tuple[str, str | None]:
        if not text.replace(delimiter, "").strip():
            return "", None  # a blank row, or only delimiters (spreadsheet padding)
        cells = _cells(text, delimiter)
        if index >= len(cells):
            return text, missing
        value = cells[index].strip()
        return (value, None) if value else (text, empty)

    return _rows(lines, 2, pick)


class _CountingReader:
    """Counts the bytes read through readline(), for progress reports."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.bytes_read = 0

    def readline(self, size: int = -1) -> bytes:
        line = self.stream.readline(size)
        self.bytes_read += len(line)
        return line


def _old_ids(list_id: int, target_ids: list[str], before: int) -> set[str]:
    """Which of `target_ids` were in the list before the import (Target.id <= before)."""
    # Small batches: PostgreSQL (15) plans `target_id IN (<hundreds of values>)` as a scan
    # of the whole list, which made re-importing into a big list quadratic; with ~50
    # values it probes the unique (target_list, target_id) index instead.
    found: set[str] = set()
    old = Target.objects.filter(target_list_id=list_id, id__lte=before)
    for start in range(0, len(target_ids), _LOOKUP_BATCH):
        batch = target_ids[start : start + _LOOKUP_BATCH]
        found.update(old.filter(target_id__in=batch).values_list("target_id", flat=True))
    return found


def _write_chunk(list_id: int, chunk: dict[str, int], before: int, result: ImportResult) -> None:
    """Insert one chunk and add what was inserted to target_count, in one transaction.

    `chunk` maps each valid ID to how often it occurred; `before` is the list's highest
    Target.id before the import began. The insert skips IDs already in the list (unique
    constraint), then reads back the rows it created: with the list row locked, this
    list's rows above the table's previous highest id are exactly this chunk's. Only
    the IDs that were skipped are looked up, and only if the list had rows before, to
    tell "already in list" from "duplicate in file".
    """
    with transaction.atomic():
        TargetList.objects.select_for_update().filter(pk=list_id).values_list("pk").get()
        mark = Target.objects.aggregate(m=Max("id"))["m"] or 0
        Target.objects.bulk_create(
            [Target(target_list_id=list_id, target_id=t) for t in chunk], ignore_conflicts=True
        )
        added = set(
            Target.objects.filter(target_list_id=list_id, id__gt=mark).values_list(
                "target_id", flat=True
            )
        )
        if added:
            TargetList.objects.filter(pk=list_id).update(
                target_count=F("target_count") + len(added), updated_at=timezone.now()
            )
    skipped = [t for t in chunk if t not in added] if len(added) < len(chunk) else []
    old = _old_ids(list_id, skipped, before) if skipped and before else set()
    result.added += len(added)
    for target_id, occurrences in chunk.items():
        if target_id in added:
            result.duplicates_in_file += occurrences - 1
        elif target_id in old:
            result.already_in_list += occurrences
        else:
            result.duplicates_in_file += occurrences


def import_targets(
    target_list: TargetList,
    stream: BinaryIO,
    *,
    column: str | None = None,
    chunk_size: int = 5000,
    progress: Progress | None = None,
    actor=None,
) -> ImportResult:
    """Import the IDs in `stream` (see iter_ids) into `target_list`.

    Valid new IDs are added, duplicates and invalid rows are counted, invalid rows are
    kept for the error report. Every `chunk_size` rows are written in their own
    transaction (so call this outside transaction.atomic) and `progress(rows_read,
    bytes_read)` is called. Raises ImportFileError before writing anything when the
    file as a whole is unusable. Each import, even one that fails part-way, is audited.
    """
    counter = _CountingReader(stream)
    rows = iter_ids(counter, column=column)
    delivery_type = target_list.delivery_type
    before = Target.objects.filter(target_list=target_list).aggregate(m=Max("id"))["m"] or 0
    result = ImportResult()
    chunk: dict[str, int] = {}
    in_chunk = 0

    def flush() -> None:
        nonlocal chunk, in_chunk
        if chunk:
            _write_chunk(target_list.pk, chunk, before, result)
        chunk, in_chunk = {}, 0
        if progress is not None:
            progress(result.rows_read, counter.bytes_read)

    try:
        for row, value, reason in rows:
            result.rows_read += 1
            in_chunk += 1
            if reason is None:
                reason = validate_target_id(value, delivery_type)
            if reason is None:
                chunk[value] = chunk.get(value, 0) + 1
            else:
                result.add_error(row, reason, value)
            if in_chunk >= chunk_size:
                flush()
        if in_chunk:
            flush()
    except Exception:
        _audit(target_list, actor, result, column, counter.bytes_read, interrupted=True)
        raise
    _audit(target_list, actor, result, column, counter.bytes_read, interrupted=False)
    target_list.refresh_from_db(fields=["target_count", "updated_at"])
    return result


def _audit(target_list, actor, result: ImportResult, column, bytes_read, *, interrupted) -> None:
    details = {
        "rows_read": result.rows_read,
        "added": result.added,
        "duplicates_in_file": result.duplicates_in_file,
        "already_in_list": result.already_in_list,
        "invalid": result.invalid,
        "column": column or "",
        "bytes": bytes_read,
        "interrupted": interrupted,
    }
    audit.record("target_list.import", obj=target_list, actor=actor, details=details)


def import_text(target_list: TargetList, text: str, *, actor=None) -> ImportResult:
    """Import pasted text: one ID per line, the same rules as a plain-text file."""
    # surrogatepass: a lone surrogate becomes a row reported as "not valid UTF-8".
    stream = io.BytesIO(text.encode("utf-8", "surrogatepass"))
    return import_targets(target_list, stream, actor=actor)
