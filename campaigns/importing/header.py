"""Telling a CSV with a header row from a list of IDs, and guessing its ID column."""

from __future__ import annotations

import csv

from campaigns.importing.parsing import MAX_LINE_BYTES

DELIMITERS = ",;\t"
LIKELY = ("target", "device", "user", "alias", "token", "id")


def columns(upload) -> list[str]:
    """The header's column names when the file's first line has several columns (an ID
    never holds a comma, semicolon or tab), else []. The upload is rewound."""
    upload.seek(0)
    first = upload.readline(MAX_LINE_BYTES)
    upload.seek(0)
    try:
        text = first.decode("utf-8-sig").rstrip("\r\n")
    except (UnicodeDecodeError, AttributeError):
        return []
    if not any(d in text for d in DELIMITERS):
        return []
    delimiter = max(DELIMITERS, key=text.count)
    names = next(csv.reader([text], delimiter=delimiter), [])
    return [n.strip() for n in names if n.strip()][:50]


def guess(names: list[str]) -> str:
    """The column most likely to hold the IDs: the first whose name says so, else the
    first column."""
    for hint in LIKELY:
        for name in names:
            if hint in name.casefold():
                return name
    return names[0] if names else ""
