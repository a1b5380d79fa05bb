"""Importing a CSV whose header names more columns than the target ID: every other column
is kept per target (`Target.values`), for per-person template values (PushMultiple).

Rows come from `parsing.py`'s reader line by line (the same decoding rules, row numbers
and errors as a one-column import), each with its whole line. When campaigns of the
list already map placeholders to columns, a column
they read that the file lacks refuses the whole file, and a row with an empty such value
is a per-row error: a per-person campaign never sends an empty value.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Max
from django.utils.translation import gettext as _

from campaigns.importing.parsing import ImportFileError, _cells, _Parser
from campaigns.importing.staging import Staging
from campaigns.importing.validation import validate_target_id
from campaigns.importing.writing import ImportResult, Progress, audit_import, stage_chunk
from campaigns.models import Campaign, Target, TargetList


def mapped_columns(target_list: TargetList) -> dict[str, list[str]]:
    """Columns that draft campaigns of the list read: column -> the placeholders."""
    needed: dict[str, list[str]] = {}
    drafts = Campaign.objects.filter(target_list=target_list, status=Campaign.Status.DRAFT)
    for columns in drafts.values_list("value_columns", flat=True):
        for placeholder, column in (columns or {}).items():
            needed.setdefault(column, []).append(placeholder)
    return needed


def import_with_values(
    target_list: TargetList,
    parser: _Parser,
    *,
    chunk_size: int = 5000,
    progress: Progress | None = None,
    write_progress: Progress | None = None,
    actor=None,
) -> ImportResult:
    """Import the rows after `parser`'s header: the ID column as targets, every other
    named column as the target's values (a target in the file twice keeps its last
    row's). A target already in the list gets the new values. Raises ImportFileError
    before writing anything when a mapped column is missing."""
    names = parser.names
    others = [(i, name) for i, name in enumerate(names) if i != parser.index and name]
    needed = mapped_columns(target_list)
    missing = sorted(set(needed) - {name for _i, name in others})
    if missing:
        raise ImportFileError(
            _(
                "The file has no column “%(column)s”, which a draft campaign of this list "
                "reads for its placeholder “%(placeholder)s”. Nothing was imported."
            )
            % {"column": missing[0], "placeholder": ", ".join(needed[missing[0]])}
        )
    before = Target.objects.filter(target_list=target_list).aggregate(m=Max("id"))["m"] or 0
    result = ImportResult()
    parser.keep_lines = True
    last = None  # (run, index) of the last row counted

    def bytes_read() -> int:
        return parser.bytes_read if last is None else last[0].end_of(last[1])

    def _count(run, i: int, target: str, valid: list) -> None:
        result.rows_read += 1
        row = run.first_row + i
        reason = run.reasons.get(i)
        if reason is None:
            reason = validate_target_id(target, target_list.delivery_type)
        if reason is not None:
            result.add_error(row, reason, target)
            return
        cells = _cells(run.texts[i], parser.delimiter)
        values = {name: cells[n].strip() for n, name in others if n < len(cells)}
        empty = [name for name in needed if not values.get(name)]
        if empty:
            reason = _("no value in column “%(column)s”") % {"column": empty[0]}
            result.add_error(row, reason, run.texts[i])
            return
        valid.append((target, values))

    try:
        # Stage the whole file, then write in ID order (staging.py says why).
        with Staging(value_names=[name for _i, name in others]) as staged:
            valid: list[tuple[str, dict[str, str]]] = []
            in_chunk, add = 0, staged.add_with_values
            for run in parser.runs():
                for i, target in enumerate(run.values):
                    _count(run, i, target, valid)
                    in_chunk += 1
                    last = (run, i)
                    if in_chunk >= chunk_size:
                        stage_chunk(add, valid, progress, result.rows_read, bytes_read())
                        valid, in_chunk = [], 0
            last = None
            if in_chunk:
                stage_chunk(add, valid, progress, result.rows_read, bytes_read())
            for chunk, seen in staged.groups_with_values(chunk_size):
                _write(target_list, chunk, seen, before, result)
                if write_progress is not None:
                    write_progress(staged.rows_grouped, staged.rows)
        _remember_columns(target_list, [name for _i, name in others])
    except Exception:
        audit_import(
            target_list, actor, result, names[parser.index], bytes_read(), interrupted=True
        )
        raise
    audit_import(target_list, actor, result, names[parser.index], bytes_read(), interrupted=False)
    target_list.refresh_from_db(fields=["target_count", "updated_at", "value_columns"])
    return result


def _write(
    target_list: TargetList,
    chunk: dict[str, dict[str, str]],
    seen: dict[str, int],
    before,
    result,
) -> None:
    """Insert new targets with their values and give existing ones the new values, and
    add what was inserted to target_count, in one transaction."""
    ids = list(chunk)
    with transaction.atomic():
        # The list's lock, as every writer of its targets takes (writing.py): without it a
        # concurrent import could add an ID between the look-up and the insert, which
        # would then count it as added.
        TargetList.objects.select_for_update().filter(pk=target_list.pk).values_list("pk").get()
        existing: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            existing.update(
                Target.objects.filter(
                    target_list=target_list, target_id__in=ids[start : start + 500]
                ).values_list("target_id", "id")
            )
        Target.objects.bulk_create(
            [Target(target_list=target_list, target_id=t, values=chunk[t]) for t in ids],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["target_list", "target_id"],
            update_fields=["values"],
        )
        added = len(ids) - len(existing)
        TargetList.objects.filter(pk=target_list.pk).update(target_count=F("target_count") + added)
    result.added += added
    for target_id, rows in seen.items():
        pk = existing.get(target_id)
        if pk is not None and pk <= before:
            result.already_in_list += rows
        elif pk is not None:
            result.duplicates_in_file += rows
        else:
            result.duplicates_in_file += rows - 1


def _remember_columns(target_list: TargetList, names: list[str]) -> None:
    known = list(TargetList.objects.values_list("value_columns", flat=True).get(pk=target_list.pk))
    known += [name for name in names if name not in known]
    TargetList.objects.filter(pk=target_list.pk).update(value_columns=known)
