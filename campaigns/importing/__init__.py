"""Importing target IDs into a TargetList from an uploaded CSV/TXT file or pasted text.

The import streams, a block of the file at a time, in three steps:

- `parsing.py` reads the bytes into numbered rows (one ID per line, or one column of a
  CSV with a header) and reports unreadable rows;
- `validation.py` decides whether a value can be a target ID of the list's type;
- `writing.py` checks the upload size, writes the valid IDs in chunks (one transaction
  each, keeping `target_count`), counts duplicates and keeps the error report.

- `status.py` keeps an import's progress and outcome in Redis and queues big uploads.

Callers use the names below: `from campaigns.importing import import_targets`.
"""

from campaigns.importing.parsing import MAX_LINE_BYTES, ImportFileError, Row, iter_ids
from campaigns.importing.status import ImportStatus, queue_file_import
from campaigns.importing.validation import TARGET_ID_MAX_LENGTH, validate_target_id
from campaigns.importing.writing import (
    DEFAULT_MAX_UPLOAD_BYTES,
    MAX_KEPT_ERRORS,
    REPORT_VALUE_CHARS,
    ImportResult,
    Progress,
    check_upload_size,
    import_targets,
    import_text,
    max_upload_bytes,
    safe_csv_value,
)

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "MAX_KEPT_ERRORS",
    "MAX_LINE_BYTES",
    "REPORT_VALUE_CHARS",
    "TARGET_ID_MAX_LENGTH",
    "ImportFileError",
    "ImportResult",
    "ImportStatus",
    "Progress",
    "Row",
    "check_upload_size",
    "import_targets",
    "import_text",
    "iter_ids",
    "max_upload_bytes",
    "queue_file_import",
    "safe_csv_value",
    "validate_target_id",
]
