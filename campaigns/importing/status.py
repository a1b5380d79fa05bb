"""Progress and outcome of an import, kept in Redis for the page to show and poll, and
handing a large upload to a background job."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.files.move import file_move_safe

from campaigns import queueing
from campaigns.importing.writing import ImportResult

SHOWN_ERRORS = 100


class ImportStatus:
    """Progress and outcome of one import: the Redis hash `pushconsole:import:<key>`
    (kept a day). The last import's full error report for a list is kept beside it, as
    CSV text, under `pushconsole:import-report:<list id>`."""

    TTL = 24 * 3600
    KEY_RE = re.compile(r"[0-9a-f]{32}")
    COUNTS = ("rows_read", "added", "duplicates_in_file", "already_in_list", "invalid")

    def __init__(self, key: str, target_list_id: int) -> None:
        self.key = key
        self.target_list_id = target_list_id
        self.redis_key = f"pushconsole:import:{key}"

    @staticmethod
    def report_key(target_list_id: int) -> str:
        return f"pushconsole:import-report:{target_list_id}"

    @classmethod
    def begin(cls, target_list_id: int, *, source: str, total_bytes: int = 0) -> ImportStatus:
        status = cls(uuid.uuid4().hex, target_list_id)
        fields = {"list": target_list_id, "source": source, "state": "queued", "done": 0}
        counters = {"rows_read": 0, "bytes_read": 0, "rows_written": 0, "rows_to_write": 0}
        status._write({**fields, "total_bytes": total_bytes, **counters})
        return status

    @classmethod
    def load(cls, key: str, target_list_id: int) -> dict[str, Any] | None:
        """The status as a dict, or None when unknown, expired or of another list."""
        if not cls.KEY_RE.fullmatch(key or ""):
            return None
        raw = queueing.connection().hgetall(f"pushconsole:import:{key}")
        data = {k.decode(): v.decode() for k, v in raw.items()}
        if data.get("list") != str(target_list_id):
            return None
        numbers = ("total_bytes", "bytes_read", "rows_written", "rows_to_write", "done")
        for name in (*numbers, *cls.COUNTS):
            data[name] = int(data.get(name) or 0)
        data["errors"] = json.loads(data.get("errors") or "[]")
        data["key"] = key
        data["percent"] = cls.percent(data)
        return data

    # The share of the bar for reading the file; writing takes the rest. Measured with
    # bench_import.py at 1 M and 10 M IDs: the first pass takes 10-17 % of the time.
    READ_SHARE = 15

    @classmethod
    def percent(cls, data: dict[str, Any]) -> int:
        """How far the import is, 0-100: reading the file, then writing its valid rows."""
        if data["state"] == "writing":
            to_write = data["rows_to_write"]
            done = data["rows_written"] * (100 - cls.READ_SHARE) // to_write if to_write else 0
            return min(100, cls.READ_SHARE + done)
        total = data["total_bytes"]
        return min(cls.READ_SHARE, data["bytes_read"] * cls.READ_SHARE // total) if total else 0

    @classmethod
    def error_report(cls, target_list_id: int) -> bytes | None:
        return queueing.connection().get(cls.report_key(target_list_id))

    def _write(self, fields: dict[str, Any]) -> None:
        with queueing.connection().pipeline() as pipe:
            pipe.hset(self.redis_key, mapping=fields)
            pipe.expire(self.redis_key, self.TTL)
            pipe.execute()

    def progress(self, rows_read: int, bytes_read: int) -> None:
        """Reading the file (the first pass)."""
        self._write({"state": "running", "rows_read": rows_read, "bytes_read": bytes_read})

    def writing(self, rows_written: int, rows_to_write: int) -> None:
        """Writing the file's valid rows, in ID order (the second pass)."""
        fields = {"rows_written": rows_written, "rows_to_write": rows_to_write}
        self._write({"state": "writing", **fields})

    def finish(self, result: ImportResult) -> None:
        fields: dict[str, Any] = {name: getattr(result, name) for name in self.COUNTS}
        fields["errors"] = json.dumps(result.errors[:SHOWN_ERRORS], ensure_ascii=False)
        conn = queueing.connection()
        if result.invalid:
            conn.set(self.report_key(self.target_list_id), result.error_report_csv(), ex=self.TTL)
        else:
            conn.delete(self.report_key(self.target_list_id))
        self._write({**fields, "state": "done", "done": 1})

    def fail(self, message: str) -> None:
        self._write({"state": "failed", "done": 1, "message": message})


def queue_file_import(
    target_list, temporary_path: str, *, source: str, size: int, column: str | None, user
) -> ImportStatus:
    """Move an upload under VAR_DIR/uploads and queue the job that imports it (ids and a
    path only). Raises redis.RedisError when Redis is unreachable (the file is removed)."""
    from campaigns import jobs

    folder = settings.VAR_DIR / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    status = ImportStatus.begin(target_list.pk, source=source, total_bytes=size)
    destination = folder / status.key
    file_move_safe(temporary_path, str(destination))
    try:
        queueing.enqueue_job(
            jobs.import_targets_file,
            target_list.pk,
            str(destination),
            column,
            getattr(user, "pk", None),
            status.key,
            job_timeout=3 * 3600,
            result_ttl=600,
            description=f"import into target list {target_list.pk}",
        )
    except Exception:
        destination.unlink(missing_ok=True)
        raise
    return status
