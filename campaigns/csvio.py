"""CSV exports that a spreadsheet opens safely, streamed row by row.

Every exported cell goes through `neutralise()`: a value that a spreadsheet would read as
a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`,
so Excel and LibreOffice show it as text instead of evaluating it (CSV injection). The
output starts with a UTF-8 byte-order mark so Excel detects the encoding.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> str:
    """The cell text for `value`, with a leading `'` when it would start a formula."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Line:
    """A file-like object whose write() hands back the line csv.writer produced."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The BOM, then the header and each row as one CSV line, every cell neutralised.

    Rows are pulled one at a time, so an export never holds more than the caller's own
    chunk in memory."""
    writer = csv.writer(_Line())
    yield BOM + writer.writerow([neutralise(cell) for cell in header])
    for row in rows:
        yield writer.writerow([neutralise(cell) for cell in row])


def streaming_csv_response(
    filename: str, header: Iterable[Any], rows: Iterable[Iterable[Any]]
) -> StreamingHttpResponse:
    """An attachment download of `rows` as CSV, produced while it is being sent."""
    response = StreamingHttpResponse(
        (line.encode("utf-8") for line in csv_lines(header, rows)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
