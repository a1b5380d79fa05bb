"""Reading an uploaded CSV/TXT file (or pasted text) into rows of candidate target IDs.

The file is read a block at a time and split into physical lines: a bad line is reported
with its row number and the reading goes on; a block of plain rows is decoded and split
in one go. With a column name the first line is a header and one column is picked.
`iter_ids` yields the rows; the writer (`writing.py`) walks `_Parser.runs()` directly.
Nothing here touches the database or decides whether an ID is valid (`validation.py`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import BinaryIO

from django.utils.translation import gettext as _

MAX_LINE_BYTES = 64 * 1024  # longer physical lines are reported, not imported
_BLOCK_BYTES = 256 * 1024  # read at a time: the memory a block of lines takes is bounded

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

Row = tuple[int, str, str | None]


class ImportFileError(ValueError):
    """The file as a whole cannot be imported: too big, not UTF-8 text, no such column."""


def _first_line(stream: BinaryIO) -> tuple[bytes, bool, int] | None:
    """(line without its ending, too_long, bytes read) for the first line, read on its own:
    it decides UTF-16 and carries the BOM. The rest of an over-long line is dropped."""
    line = stream.readline(MAX_LINE_BYTES)
    if not line:
        return None
    size = len(line)
    too_long = size == MAX_LINE_BYTES and not line.endswith(b"\n")
    if too_long:
        rest = line
        while rest and not rest.endswith(b"\n"):
            rest = stream.readline(MAX_LINE_BYTES)
            size += len(rest)
    if line.startswith(_UTF16_BOMS):
        raise ImportFileError(_("The file is UTF-16 text; save it as UTF-8 and retry."))
    return line.removeprefix(_BOM).rstrip(b"\r\n"), too_long, size


def _blocks(stream: BinaryIO, start: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (block, start, end): whole physical lines joined by "\\n", without the last
    one's ending, and the byte offsets where they start and end. A line of
    MAX_LINE_BYTES or more is too long: when it does not fit in one read it comes alone,
    cut to MAX_LINE_BYTES (the rest is read and dropped), so memory stays bounded."""
    carry = b""
    while data := stream.read(_BLOCK_BYTES):
        data = carry + data if carry else data
        cut = data.rfind(b"\n")
        if cut >= 0:
            yield data[:cut], start, start + cut + 1
            start += cut + 1
        carry = data[cut + 1 :]
        if len(carry) >= MAX_LINE_BYTES:
            head, end, carry = carry[:MAX_LINE_BYTES], start + len(carry), b""
            while data := stream.read(_BLOCK_BYTES):
                cut = data.find(b"\n")
                if cut >= 0:
                    end, carry = end + cut + 1, data[cut + 1 :]
                    break
                end += len(data)
            yield head, start, end
            start = end
    if carry:
        yield carry, start, start + len(carry)


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


@dataclass
class _Run:
    """Consecutive rows read together: row `first_row + i` holds values[i], or, when i
    is in `reasons`, cannot be read and values[i] is the offending text. end_of(i) is
    how many bytes of the file had been read when that row was."""

    first_row: int
    values: list[str]
    reasons: dict[int, str]
    end_of: Callable[[int], int]
    texts: list[str] | None = None  # each row's whole decoded line (with `keep_lines`)


class _LineEnds:
    """end_of() for a block read in one go; worked out only when asked (at a chunk end)."""

    def __init__(self, block: bytes, start: int, end: int) -> None:
        self.block, self.start, self.end = block, start, end
        self.sums: list[int] | None = None

    def __call__(self, i: int) -> int:
        if self.sums is None:
            self.sums = list(accumulate(map(len, self.block.split(b"\n"))))
        return self.end if i == len(self.sums) - 1 else self.start + self.sums[i] + i + 1


class _Parser:
    """The rows of a file (see iter_ids), read a block at a time.

    A block whose lines are all plain rows (UTF-8, no NUL, not too long, not blank, the
    column present and no quotes) is decoded and split in one go; any other block is
    read line by line with the same rules. Either way blank rows wait until a non-blank
    row follows (trailing ones are not rows), and rows are numbered by physical line.
    """

    def __init__(self, stream: BinaryIO, column: str | None) -> None:
        self.stream = stream
        self.empty = _("target ID is empty")
        first = _first_line(stream)  # read now, so that file-level errors raise here
        self.bytes_read = first[2] if first else 0
        self.first = first[:2] if first and column is None else None
        self.next_row = 1 if column is None else 2
        self.blank_rows = 0
        self.index: int | None = None
        self.names: list[str] = []  # the header's column names (CSV with a header)
        self.keep_lines = False  # set to read line by line, keeping each row's text
        self.delimiter = self.missing = ""
        if column is not None:
            self._read_header(first, column)

    def _read_header(self, first: tuple[bytes, bool, int] | None, column: str) -> None:
        if first is None:
            raise ImportFileError(_("The file is empty: expected a header row naming the columns."))
        text, reason = _decode(*first[:2])
        if reason is not None:
            raise ImportFileError(
                _("The header row cannot be read: %(reason)s.") % {"reason": reason}
            )
        self.delimiter = delimiter = max(",;\t", key=text.count)
        names = [name.strip() for name in _cells(text, delimiter)]
        self.names = names
        wanted = column.strip().casefold()
        try:
            self.index = [name.casefold() for name in names].index(wanted)
        except ValueError:
            found = ", ".join(f"“{name}”" for name in names[:20] if name)
            raise ImportFileError(
                _("The file has no column named “%(column)s”. Columns found: %(found)s.")
                % {"column": column.strip(), "found": found or "-"}
            ) from None
        self.missing = _("row has no “%(column)s” column") % {"column": names[self.index]}

    def pick(self, text: str) -> tuple[str, str | None]:
        """(value, reason) of one decoded line; ("", None) for a blank row."""
        if self.index is None:
            return text.strip(), None
        if not text.replace(self.delimiter, "").strip():
            return "", None  # a blank row, or only delimiters (spreadsheet padding)
        cells = _cells(text, self.delimiter)
        if self.index >= len(cells):
            return text, self.missing
        value = cells[self.index].strip()
        return (value, None) if value else (text, self.empty)

    def runs(self) -> Iterator[_Run]:
        if self.first is not None:
            yield from self._line_by_line([(*self.first, self.bytes_read)])
        for block, start, end in _blocks(self.stream, self.bytes_read):
            self.bytes_read = end
            values = self._plain_values(block)
            if values is None:
                yield from self._line_by_line(_split_lines(block, start, end))
                continue
            if self.blank_rows:  # blank rows count once a non-blank row follows
                cut = block.find(b"\n")
                yield from self._line_by_line([], end if cut < 0 else start + cut + 1)
            yield _Run(self.next_row, values, {}, _LineEnds(block, start, end))
            self.next_row += len(values)

    def _plain_values(self, block: bytes) -> list[str] | None:
        """The values of a block's rows if every line is a plain row, else None."""
        if self.keep_lines or b"\x00" in block:
            return None
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        lines = text.split("\n")
        if max(map(len, lines)) >= MAX_LINE_BYTES // 4:  # a character is at most 4 bytes
            return None
        if self.index is None:
            values = [line.strip() for line in lines]
        elif '"' in text:
            return None
        elif self.delimiter not in text:
            if self.index:
                return None
            values = [line.strip() for line in lines]
        else:
            try:
                values = [line.split(self.delimiter)[self.index].strip() for line in lines]
            except IndexError:
                return None
        return values if all(values) else None

    def _line_by_line(
        self, lines: Iterable[tuple[bytes, bool, int]], flush_blanks_at: int | None = None
    ) -> Iterator[_Run]:
        """One run of the rows in `lines` (raw line, too_long, end offset), decoded and
        picked one at a time. With `flush_blanks_at`, emit the waiting blank rows as if
        a non-blank row ending there had been read."""
        first_row = self.next_row - self.blank_rows
        values: list[str] = []
        reasons: dict[int, str] = {}
        ends: list[int] = []
        texts: list[str] = []

        def take_blanks(end: int) -> None:
            for _blank in range(self.blank_rows):
                reasons[len(values)] = self.empty
                values.append("")
                ends.append(end)
                texts.append("")
            self.blank_rows = 0

        for raw, too_long, end in lines:
            self.next_row += 1
            text, reason = _decode(raw, too_long)
            if reason is None:
                value, reason = self.pick(text)
                if value == "" and reason is None:
                    self.blank_rows += 1
                    continue
            else:
                value = text
            take_blanks(end)
            if reason is not None:
                reasons[len(values)] = reason
            values.append(value)
            ends.append(end)
            texts.append(text)
        if flush_blanks_at is not None:
            take_blanks(flush_blanks_at)
        if values:
            yield _Run(first_row, values, reasons, ends.__getitem__, texts)


def _split_lines(block: bytes, start: int, end: int) -> Iterator[tuple[bytes, bool, int]]:
    """(raw line, too_long, end offset) for each line of a block from _blocks."""
    lines = block.split(b"\n")
    last = len(lines) - 1
    for n, line in enumerate(lines):
        start += len(line) + 1
        too_long = len(line) >= MAX_LINE_BYTES
        raw = line[:MAX_LINE_BYTES] if too_long else line
        yield raw.rstrip(b"\r\n"), too_long, end if n == last else start


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
    runs = _Parser(stream, column).runs()
    return (
        (run.first_row + i, value, run.reasons.get(i))
        for run in runs
        for i, value in enumerate(run.values)
    )
