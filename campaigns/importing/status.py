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
        status._write({**fields, "total_bytes": total_bytes, "rows_read": 0, "bytes_read": 0})
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
        for name in ("total_bytes", "bytes_read", "done", *cls.COUNTS):
            data[name] = int(data.get(name) or 0)
        data["errors"] = json.loads(data.get("errors") or "[]")
        data["key"] = key
        total = data["total_bytes"]
        data["percent"] = min(100, data["bytes_read"] * 100 // total) if total else 0
        return data

    @classmethod
    def error_report(cls, target_list_id: int) -> bytes | None:
        return queueing.connection().get(cls.report_key(target_list_id))

    def _write(self, fields: dict[str, Any]) -> None:
        with queueing.connection().pipeline() as pipe:
            pipe.hset(self.redis_key, mapping=fields)
            pipe.expire(self.redis_key, self.TTL)
            pipe.execute()

    def progress(self, rows_read: int, bytes_read: int) -> None:
        self._write({"state": "running", "rows_read": rows_read, "bytes_read": bytes_read})

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
