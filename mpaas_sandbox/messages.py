"""What the sandbox accepted: one push task per accepted PushTemplate/PushMultiple call,
each holding its targets' msgKeys. RevokePushMessage and the statistics actions read it.

A task's messages go out when the call is accepted (immediate push) or at each trigger time
of its scheduled task that passed without being cancelled.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .queries import (
    MESSAGE_ALREADY_REVOKED,
    MESSAGE_NOT_FOUND,
    MESSAGE_TOO_OLD,
    REVOKE_WINDOW_MS,
    TaskListQuery,
)
from .rules import BusinessError, TargetMessage
from .tasks import ScheduledTask

__all__ = ["FIRST_TASK_ID", "MessageStore", "PushTask"]

FIRST_TASK_ID = 20_000_001  # push task IDs are numbers, like the docs' example 20842863
TYPE_NUMBERS = {"SIMPLE": 0, "TEMPLATE": 1, "MULTIPLE": 2, "BROADCAST": 3}


@dataclass(eq=False)
class PushTask:
    task_id: int
    app_id: str
    workspace_id: str
    task_name: str
    template_name: str
    push_type: str  # TEMPLATE or MULTIPLE (QueryPushAnalysisCoreIndex's Type)
    delivery_type: int
    gmt_create_ms: int
    targets: tuple[TargetMessage, ...]
    scheduled: ScheduledTask | None = None
    revoked: dict[int, int] = field(default_factory=dict)  # target index -> revoked at (ms)

    def sent_times(self, now_ms: int) -> list[tuple[int, int]]:
        """(occurrence index, time) of each time the task's messages went out."""
        if self.scheduled is None:
            return [(0, self.gmt_create_ms)] if now_ms >= self.gmt_create_ms else []
        return self.scheduled.sent_times(now_ms)

    def first_time(self) -> int:
        return self.gmt_create_ms if self.scheduled is None else self.scheduled.push_time_ms


class MessageStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[int, PushTask] = {}
        # (AppId, WorkspaceId, msgKey, target) -> (task, target index); a resend adds one
        self._by_key: dict[tuple[str, str, str, str], list[tuple[PushTask, int]]] = {}
        self._next_id = FIRST_TASK_ID

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._by_key.clear()
            self._next_id = FIRST_TASK_ID

    def add(
        self,
        *,
        app_id: str,
        workspace_id: str,
        task_name: str,
        template_name: str,
        push_type: str,
        delivery_type: int,
        now_ms: int,
        targets: tuple[TargetMessage, ...],
        scheduled: ScheduledTask | None,
    ) -> PushTask:
        with self._lock:
            task = PushTask(
                task_id=self._next_id,
                app_id=app_id,
                workspace_id=workspace_id,
                task_name=task_name,
                template_name=template_name,
                push_type=push_type,
                delivery_type=delivery_type,
                gmt_create_ms=now_ms,
                targets=targets,
                scheduled=scheduled,
            )
            self._next_id += 1
            self._tasks[task.task_id] = task
            for index, message in enumerate(targets):
                key = (app_id, workspace_id, message.msg_key, message.target)
                self._by_key.setdefault(key, []).append((task, index))
            return task

    def revoke(self, app_id: str, workspace_id: str, msg_key: str, target: str, now_ms: int) -> int:
        """Revoke every copy of the message (a resend is a copy); returns how many.

        Only a message that went out counts (a scheduled one before its time has not);
        the 7 days run from the last time it went out."""
        with self._lock:
            sent = [
                (task, index, max(moment for _, moment in times))
                for task, index in self._by_key.get((app_id, workspace_id, msg_key, target), [])
                if (times := task.sent_times(now_ms))
            ]
            if not sent:
                raise BusinessError(
                    MESSAGE_NOT_FOUND, f"no message {msg_key} went to target {target}"
                )
            open_copies = [(t, index, at) for t, index, at in sent if index not in t.revoked]
            if not open_copies:
                raise BusinessError(
                    MESSAGE_ALREADY_REVOKED, f"message {msg_key} is revoked already"
                )
            if now_ms - max(at for _, _, at in open_copies) > REVOKE_WINDOW_MS:
                raise BusinessError(
                    MESSAGE_TOO_OLD, f"message {msg_key} went out more than 7 days ago"
                )
            for task, index, _ in open_copies:
                task.revoked[index] = now_ms
            return len(open_copies)

    def get(self, app_id: str, workspace_id: str, task_id: int) -> PushTask | None:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None or (task.app_id, task.workspace_id) != (app_id, workspace_id):
            return None
        return task

    def tasks(self, app_id: str, workspace_id: str) -> list[PushTask]:
        with self._lock:
            return [
                t
                for t in self._tasks.values()
                if t.app_id == app_id and t.workspace_id == workspace_id
            ]

    def task_list(self, app_id: str, workspace_id: str, query: TaskListQuery) -> list[PushTask]:
        """Newest first, filtered by creation time, TaskId and TaskName, one page."""
        matching = [
            t
            for t in self.tasks(app_id, workspace_id)
            if (query.start_ms is None or t.gmt_create_ms >= query.start_ms)
            and (query.task_id is None or str(t.task_id) == query.task_id)
            and (query.task_name is None or t.task_name == query.task_name)
        ]
        matching.sort(key=lambda t: (t.gmt_create_ms, t.task_id), reverse=True)
        return matching[(query.page - 1) * query.size : query.page * query.size]
