"""Scheduled tasks created by PushTemplate with StrategyType 1 (fixed time) or 2 (loop).

QueryPushSchedulerList and CancelPushScheduler are not documented in detail (PUSH_API.md §3):
the shapes served here are the sandbox's reading, see README.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["ScheduledTask", "TaskStore"]


@dataclass
class ScheduledTask:
    unique_id: str
    app_id: str
    workspace_id: str
    strategy_type: int
    push_time_ms: int  # first trigger
    done_ms: int  # executed once the sandbox clock reaches it
    title: str
    content: str
    delivery_type: int
    gmt_create_ms: int
    task_type: int = 1  # 1 = template push
    cancelled: bool = False

    def executed(self, now_ms: int) -> bool:
        return now_ms >= self.done_ms

    def as_item(self, now_ms: int) -> dict[str, Any]:
        return {
            "UniqueId": self.unique_id,
            "ParentId": "",
            "PushTime": self.push_time_ms,
            "PushTitle": self.title,
            "PushContent": self.content,
            "StrategyType": self.strategy_type,
            "ExecutedStatus": 1 if self.executed(now_ms) else 0,
            "Type": self.task_type,
            "CreateType": 0,
            "GmtCreate": self.gmt_create_ms,
            "DeliveryType": self.delivery_type,
        }


class TaskStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, ScheduledTask] = {}

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()

    def add_within_quota(self, task: ScheduledTask, quota: int, now_ms: int) -> bool:
        """Store the task unless the app already has ``quota`` unexecuted ones (0 = no quota)."""
        with self._lock:
            if quota > 0:
                waiting = sum(
                    1
                    for t in self._tasks.values()
                    if t.app_id == task.app_id and not t.cancelled and not t.executed(now_ms)
                )
                if waiting >= quota:
                    return False
            self._tasks[task.unique_id] = task
            return True

    def query(
        self,
        app_id: str,
        workspace_id: str,
        *,
        start_ms: int,
        end_ms: int,
        task_type: int,
        unique_id: str | None,
        page: int,
        size: int,
        now_ms: int,
    ) -> dict[str, Any]:
        """Tasks whose trigger span [first trigger, done] meets [start_ms, end_ms]."""
        with self._lock:
            matching = [
                t
                for t in self._tasks.values()
                if t.app_id == app_id
                and t.workspace_id == workspace_id
                and not t.cancelled
                and t.task_type == task_type
                and (unique_id is None or t.unique_id == unique_id)
                and t.push_time_ms <= end_ms
                and max(t.push_time_ms, t.done_ms - 1) >= start_ms
            ]
        matching.sort(key=lambda t: (t.push_time_ms, t.gmt_create_ms, t.unique_id))
        page_items = matching[(page - 1) * size : page * size]
        return {
            "TotalCount": len(matching),
            "List": [t.as_item(now_ms) for t in page_items],
        }

    def cancel(
        self, app_id: str, workspace_id: str, unique_ids: list[str], now_ms: int
    ) -> dict[str, list[str]]:
        outcome: dict[str, list[str]] = {"Cancelled": [], "AlreadyExecuted": [], "NotFound": []}
        with self._lock:
            for unique_id in unique_ids:
                task = self._tasks.get(unique_id)
                if (
                    task is None
                    or task.cancelled
                    or (task.app_id, task.workspace_id) != (app_id, workspace_id)
                ):
                    outcome["NotFound"].append(unique_id)
                elif task.executed(now_ms):
                    outcome["AlreadyExecuted"].append(unique_id)
                else:
                    task.cancelled = True
                    outcome["Cancelled"].append(unique_id)
        return outcome

    def all(self) -> list[ScheduledTask]:
        with self._lock:
            return list(self._tasks.values())
