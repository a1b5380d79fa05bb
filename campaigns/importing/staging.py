"""Holding an import's valid rows apart, to write them to the list sorted by target ID.

An import reads the whole file first and stages each valid row here: a private
temporary SQLite database (`sqlite3.connect("")`: a file SQLite unlinks as it opens it,
so nothing is left behind even when the worker is killed; it lives in SQLITE_TMPDIR,
TMPDIR or /var/tmp, about 30 bytes a row). Rows are appended in file order, which costs
the same per row however long the file is. The writer then reads them back grouped by
target ID, in ID order, with how often each occurred (and, for a file with value
columns, the values of its last occurrence).

Why: the list's unique (target_list, target_id) index is the import's main cost. Fed in
file order it takes random inserts, and on SQLite every chunk's commit then writes back
pages spread over the whole index, so a 10 M-row import cost 21 × a 1 M-row one. Fed in
ID order the inserts append (or merge into the list's existing IDs), and the cost per row
stays flat. The price: a list's new targets are numbered, and so sent, in ID order
rather than file order. Sorting happens inside SQLite's own external sorter, so the
worker's memory stays flat too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator


class Staging:
    """One import's valid rows. Use as a context manager; `close()` drops the file."""

    def __init__(self, *, value_names: list[str] | None = None) -> None:
        # A file with value columns: their names, in file order. Each row's values are
        # staged as a JSON array in that order (null for a cell the row lacks), not as an
        # object repeating the names, which took twice the disk.
        self.value_names = value_names
        self.rows = 0  # valid rows staged
        self.rows_grouped = 0  # of those, the rows of the groups read back so far
        self._db = sqlite3.connect("", isolation_level=None)
        # Throwaway data: no journal, no syncs (a crash loses the import, not the list).
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE staged (target_id TEXT NOT NULL"
            + (", row_values TEXT NOT NULL" if value_names is not None else "")
            + ")"
        )
        self._db.execute("BEGIN")

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def add(self, target_ids: Iterable[str]) -> None:
        """Stage valid target IDs, in file order."""
        before = self._db.total_changes
        self._db.executemany(
            "INSERT INTO staged (target_id) VALUES (?)", ((t,) for t in target_ids)
        )
        self.rows += self._db.total_changes - before

    def add_with_values(self, rows: Iterable[tuple[str, dict[str, str]]]) -> None:
        """Stage (target ID, {column name: value}), in file order."""
        names = self.value_names or []
        before = self._db.total_changes
        self._db.executemany(
            "INSERT INTO staged (target_id, row_values) VALUES (?, ?)",
            (
                (t, json.dumps([values.get(name) for name in names], ensure_ascii=False))
                for t, values in rows
            ),
        )
        self.rows += self._db.total_changes - before

    def groups(self, size: int) -> Iterator[dict[str, int]]:
        """Each distinct ID with how often it was staged, in ID order, `size` IDs a dict."""
        cursor = self._db.execute(
            "SELECT target_id, count(*) FROM staged GROUP BY target_id ORDER BY target_id"
        )
        while rows := cursor.fetchmany(size):
            groups = dict(rows)
            self.rows_grouped += sum(groups.values())
            yield groups

    def groups_with_values(
        self, size: int
    ) -> Iterator[tuple[dict[str, dict[str, str]], dict[str, int]]]:
        """({ID: values of its last row}, {ID: rows}) in ID order, `size` IDs at a time.
        (SQLite takes a bare column of a max() aggregate from the row holding the max.)"""
        cursor = self._db.execute(
            "SELECT target_id, count(*), max(rowid), row_values FROM staged "
            "GROUP BY target_id ORDER BY target_id"
        )
        names = self.value_names or []
        while rows := cursor.fetchmany(size):
            values = {
                target_id: {
                    name: value
                    for name, value in zip(names, json.loads(text), strict=True)
                    if value is not None
                }
                for target_id, _n, _last, text in rows
            }
            seen = {target_id: n for target_id, n, _last, _text in rows}
            self.rows_grouped += sum(seen.values())
            yield values, seen
