"""Writing an import into a TargetList: the upload limit, the chunked writes, the result.

The rows from `parsing.py` are checked (`validation.py`) and the valid ones staged
(`staging.py`) until the whole file is read; then the distinct IDs are written in ID
order, in chunks. Each chunk is one transaction that also adds to the list's
`target_count`, so a crash part-way leaves the count matching the rows and re-running
the same file finishes the job.

Duplicates in the file are counted as the staged rows are grouped; IDs already in the
list are found by the database, not by a Python set of everything there (a million IDs
would cost ~100 MB): each chunk is inserted with conflicts on the list's (target_list,
target_id) unique constraint ignored, and when some were, the rows it created are read
back, so `target_count` grows by exactly what was inserted. Chunk writes lock the
TargetList row (SQLite's IMMEDIATE transactions serialise writers anyway); any other
code that adds Targets to a list must take the same lock and keep the count.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import audit
from campaigns.csvio import csv_lines, neutralise
from campaigns.importing.parsing import ImportFileError, _Parser, _Run
from campaigns.importing.staging import Staging
from campaigns.importing.validation import _all_valid, validate_target_id
from campaigns.models import Target, TargetList

DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # a 64 MB file of a million IDs fits
MAX_KEPT_ERRORS = 10_000  # further invalid rows are only counted
REPORT_VALUE_CHARS = 100
_LOOKUP_BATCH = 50


Progress = Callable[[int, int], object]


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


def safe_csv_value(value: str) -> str:
    """Truncate a value to 100 characters and neutralise spreadsheet formulas: a cell
    starting with `= + - @`, tab or CR gets a leading `'` so it is shown as text."""
    return neutralise(value[:REPORT_VALUE_CHARS])


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
        """The error report as CSV text, a row at a time (for a StreamingHttpResponse),
        through csvio: a BOM so Excel reads the UTF-8 (and CJK values), and every cell
        neutralised (values are also cut to REPORT_VALUE_CHARS)."""
        rows = [(row, reason, value[:REPORT_VALUE_CHARS]) for row, reason, value in self.errors]
        if self.invalid > len(self.errors):
            more = self.invalid - len(self.errors)
            rows.append(("", _("%(count)d more invalid rows are not listed") % {"count": more}))
        return csv_lines([_("row"), _("reason"), _("value")], rows)

    def error_report_csv(self) -> str:
        return "".join(self.iter_error_report())


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


def _insert_new(list_id: int, target_ids: Iterable[str], *, skip_existing: bool) -> int:
    """Insert `target_ids` into the list and return how many rows were inserted. With
    skip_existing, IDs already in the list are skipped (the unique constraint); without
    it (PostgreSQL only) such an ID fails the insert, which saves ON CONFLICT's second
    probe of the unique index per row. Raw SQL: building a Target per ID and compiling
    bulk_create's INSERT cost several times the database's own work."""
    table = Target._meta.db_table
    conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement, one parameter: valid IDs hold no whitespace, so "\\n"
            # separates them safely.
            cursor.execute(
                f"INSERT INTO {table} (target_list_id, target_id) "
                f"SELECT %s, unnest(string_to_array(%s, E'\\n')){conflict}",
                [list_id, "\n".join(target_ids)],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {table} (target_list_id, target_id) VALUES (%s, %s){conflict}",
                list(zip(repeat(list_id), target_ids)),
            )
        return cursor.rowcount


def _write_chunk(
    list_id: int, chunk: dict[str, int], before: int, result: ImportResult, *, plain: bool
) -> bool:
    """Insert one chunk and add what was inserted to target_count, in one transaction.

    `chunk` maps each valid ID to how often it occurred; `before` is the list's highest
    Target.id before the import began. The insert skips IDs already in the list (unique
    constraint). When it skipped some, the rows it created are read back: with the list
    row locked, this list's rows above the table's previous highest id are exactly this
    chunk's. Only the IDs that were skipped are looked up, and only if the list had
    rows before, to tell "already in list" from "duplicate in file".

    With `plain` the insert expects every ID to be new; if one is not, nothing is
    written and False is returned, for the caller to write the chunk again without it.
    """
    try:
        with transaction.atomic():
            TargetList.objects.select_for_update().filter(pk=list_id).values_list("pk").get()
            mark = Target.objects.aggregate(m=Max("id"))["m"] or 0
            inserted = _insert_new(list_id, chunk, skip_existing=not plain)
            if inserted == len(chunk):
                added = chunk.keys()
            else:
                added = set(
                    Target.objects.filter(target_list_id=list_id, id__gt=mark).values_list(
                        "target_id", flat=True
                    )
                )
            if added:
                TargetList.objects.filter(pk=list_id).update(
                    target_count=F("target_count") + len(added), updated_at=timezone.now()
                )
    except IntegrityError as exc:
        # 23505 unique_violation: an ID of the chunk is already in the list.
        if plain and getattr(exc.__cause__, "sqlstate", None) == "23505":
            return False
        raise
    result.added += len(added)
    if len(added) == len(chunk):
        result.duplicates_in_file += sum(chunk.values()) - len(chunk)
        return True
    skipped = [t for t in chunk if t not in added]
    old = _old_ids(list_id, skipped, before) if before else set()
    for target_id, occurrences in chunk.items():
        if target_id in added:
            result.duplicates_in_file += occurrences - 1
        elif target_id in old:
            result.already_in_list += occurrences
        else:
            result.duplicates_in_file += occurrences
    return True


def _count_rows(
    run: _Run, start: int, stop: int, delivery_type: int, valid: list[str], result: ImportResult
) -> None:
    """Add rows start..stop-1 of `run` to `valid` (valid ones) or to the errors."""
    values = run.values[start:stop]
    if not run.reasons and _all_valid(values, delivery_type):
        valid.extend(values)
        return
    for i, value in enumerate(values, start=start):
        reason = run.reasons.get(i)
        if reason is None:
            reason = validate_target_id(value, delivery_type)
        if reason is None:
            valid.append(value)
        else:
            result.add_error(run.first_row + i, reason, value)


def import_targets(
    target_list: TargetList,
    stream: BinaryIO,
    *,
    column: str | None = None,
    chunk_size: int = 5000,
    progress: Progress | None = None,
    write_progress: Progress | None = None,
    actor=None,
) -> ImportResult:
    """Import the IDs in `stream` (see iter_ids) into `target_list`.

    Valid new IDs are added, duplicates and invalid rows are counted, invalid rows are
    kept for the error report. Two passes (see staging.py): the whole file is read and
    its valid rows staged, calling `progress(rows_read, bytes_read)` every `chunk_size`
    rows; then the distinct IDs are written in ID order, `chunk_size` IDs a transaction
    (so call this outside transaction.atomic), calling `write_progress(rows_written,
    valid_rows)`. Raises ImportFileError before writing anything when the file as a
    whole is unusable; a file that stops being readable part-way also writes nothing.
    Each import, even one that fails part-way, is audited.
    """
    parser = _Parser(stream, column)
    if len([name for name in parser.names if name]) > 1:
        from campaigns.importing.columns import import_with_values

        return import_with_values(
            target_list,
            parser,
            chunk_size=chunk_size,
            progress=progress,
            write_progress=write_progress,
            actor=actor,
        )
    delivery_type = target_list.delivery_type
    before = Target.objects.filter(target_list=target_list).aggregate(m=Max("id"))["m"] or 0
    result = ImportResult()
    last: tuple[_Run, int] | None = None  # the last row counted, None before and after

    def bytes_read() -> int:
        """The bytes of the file the rows counted so far take (all of it at the end)."""
        return parser.bytes_read if last is None else last[0].end_of(last[1])

    try:
        with Staging() as staged:
            valid: list[str] = []
            in_chunk = 0
            for run in parser.runs():
                start, size = 0, len(run.values)
                while start < size:
                    stop = min(size, start + chunk_size - in_chunk)
                    _count_rows(run, start, stop, delivery_type, valid, result)
                    result.rows_read += stop - start
                    in_chunk += stop - start
                    start, last = stop, (run, stop - 1)
                    if in_chunk >= chunk_size:
                        stage_chunk(staged.add, valid, progress, result.rows_read, bytes_read())
                        valid, in_chunk = [], 0
            last = None
            if in_chunk:
                stage_chunk(staged.add, valid, progress, result.rows_read, bytes_read())
            _write_staged(target_list.pk, staged, before, result, chunk_size, write_progress)
    except Exception:
        audit_import(target_list, actor, result, column, bytes_read(), interrupted=True)
        raise
    audit_import(target_list, actor, result, column, bytes_read(), interrupted=False)
    target_list.refresh_from_db(fields=["target_count", "updated_at"])
    return result


def _write_staged(
    list_id: int,
    staged: Staging,
    before: int,
    result: ImportResult,
    chunk_size: int,
    write_progress: Progress | None,
) -> None:
    """Write the staged IDs in ID order, `chunk_size` distinct IDs a transaction."""
    # On PostgreSQL chunks are first written as plain INSERTs, until one meets an ID
    # already in the list; from then on ON CONFLICT skips such IDs.
    plain = connection.vendor == "postgresql"
    for chunk in staged.groups(chunk_size):
        if not (plain and _write_chunk(list_id, chunk, before, result, plain=True)):
            plain = False
            _write_chunk(list_id, chunk, before, result, plain=False)
        if write_progress is not None:
            write_progress(staged.rows_grouped, staged.rows)


def stage_chunk(
    add: Callable[[list], None], valid: list, progress: Progress | None, rows: int, size: int
) -> None:
    """The first pass's step every chunk of rows read: stage the chunk's valid rows, then
    report `progress(rows_read, bytes_read)`."""
    add(valid)
    if progress is not None:
        progress(rows, size)


def audit_import(
    target_list, actor, result: ImportResult, column, bytes_read, *, interrupted
) -> None:
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
