"""Scheduled tasks created by a push with StrategyType 1 (fixed time) or 2 (loop).

Shapes follow the official models (``QueryPushSchedulerListResponseBody``): a fixed task is
one item whose ``ParentId`` is its own ``UniqueId``; a loop task is one item per occurrence
(a sub-task with its own ``UniqueId``) whose ``ParentId`` is the task ID the push answered
with. ``ExecutedStatus`` is the string ``"0"`` or ``"1"``. What CancelPushScheduler's
``ResultContent`` string holds is not documented: see README.md.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ScheduledTask", "TaskStore", "sub_task_id"]

_SUB_TASKS = uuid.UUID("6f1c0b0e-3a55-4d4e-9d0f-6d2b8c1f7a10")  # namespace of sub-task IDs


def sub_task_id(parent_id: str, number: int) -> str:
    """The stable ID of a loop task's ``number``-th occurrence (32 hex, like the parent's)."""
    return uuid.uuid5(_SUB_TASKS, f"{parent_id}:{number}").hex


@dataclass
class ScheduledTask:
    unique_id: str
    app_id: str
    workspace_id: str
    strategy_type: int
    occurrences: list[int]  # trigger times, epoch ms; a fixed task has one
    title: str
    content: str
    delivery_type: int
    gmt_create_ms: int
    task_type: int = 1  # 0 simple, 1 template, 2 multiple (batch), 3 broadcast
    cancelled: set[int] = field(default_factory=set)  # indexes of cancelled occurrences

    @property
    def push_time_ms(self) -> int:
        return self.occurrences[0]

    def item_id(self, index: int) -> str:
        return self.unique_id if self.strategy_type == 1 else sub_task_id(self.unique_id, index)

    def executed(self, index: int, now_ms: int) -> bool:
        return now_ms >= self.occurrences[index]

    def pending(self, now_ms: int) -> bool:
        """Some occurrence is neither executed nor cancelled (it counts against the quota)."""
        return any(
            i not in self.cancelled and not self.executed(i, now_ms)
            for i in range(len(self.occurrences))
        )

    def sent_times(self, now_ms: int) -> list[tuple[int, int]]:
        """(occurrence index, trigger time) of each occurrence that has passed without
        being cancelled: when the targets got the message."""
        return [
            (i, moment)
            for i, moment in enumerate(self.occurrences)
            if i not in self.cancelled and now_ms >= moment
        ]

    def item(self, index: int, now_ms: int) -> dict[str, Any]:
        return {
            "UniqueId": self.item_id(index),
            "ParentId": self.unique_id,
            "PushTime": self.occurrences[index],
            "PushTitle": self.title,
            "PushContent": self.content,
            "StrategyType": self.strategy_type,
            "ExecutedStatus": "1" if self.executed(index, now_ms) else "0",
            "Type": self.task_type,
            "CreateType": 0,
            "GmtCreate": self.gmt_create_ms,
            "DeliveryType": self.delivery_type,
        }

    def as_dict(self) -> dict[str, Any]:
        """For ``GET /_sandbox/tasks``: the task as stored, JSON-ready."""
        return {
            "unique_id": self.unique_id,
            "app_id": self.app_id,
            "workspace_id": self.workspace_id,
            "strategy_type": self.strategy_type,
            "task_type": self.task_type,
            "occurrences": list(self.occurrences),
            "cancelled": sorted(self.cancelled),
            "title": self.title,
            "delivery_type": self.delivery_type,
            "gmt_create_ms": self.gmt_create_ms,
        }


class TaskStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, ScheduledTask] = {}
        self._items: dict[str, tuple[ScheduledTask, int]] = {}  # item ID -> (task, index)

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._items.clear()

    def add_within_quota(self, task: ScheduledTask, quota: int, now_ms: int) -> bool:
        """Store the task unless the app already has ``quota`` pending ones (0 = no quota)."""
        with self._lock:
            if quota > 0:
                waiting = sum(
                    1 for t in self._tasks.values() if t.app_id == task.app_id and t.pending(now_ms)
                )
                if waiting >= quota:
                    return False
            self._tasks[task.unique_id] = task
            for index in range(len(task.occurrences)):
                self._items[task.item_id(index)] = (task, index)
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
        """Items (fixed tasks, loop occurrences) triggered within [start_ms, end_ms].

        ``unique_id`` narrows to one task: a parent ID gives all its sub-tasks, a sub-task
        ID that one. Cancelled items are left out."""
        with self._lock:
            pairs = [
                (task, index)
                for task in self._tasks.values()
                if task.app_id == app_id
                and task.workspace_id == workspace_id
                and task.task_type == task_type
                for index in range(len(task.occurrences))
                if index not in task.cancelled
                and start_ms <= task.occurrences[index] <= end_ms
                and unique_id in (None, task.unique_id, task.item_id(index))
            ]
        pairs.sort(key=lambda p: (p[0].occurrences[p[1]], p[0].gmt_create_ms, p[0].item_id(p[1])))
        page_items = pairs[(page - 1) * size : page * size]
        return {
            "TotalCount": len(pairs),
            "List": [task.item(index, now_ms) for task, index in page_items],
        }

    def cancel(
        self, app_id: str, workspace_id: str, unique_ids: list[str], now_ms: int
    ) -> dict[str, list[str]]:
        """Cancel tasks (a parent ID: every occurrence still to come) or single occurrences.

        An ID counts as cancelled when at least one occurrence was cancelled by this call,
        as already executed when all its remaining occurrences have run."""
        outcome: dict[str, list[str]] = {"Cancelled": [], "AlreadyExecuted": [], "NotFound": []}
        with self._lock:
            for unique_id in unique_ids:
                found = self._items.get(unique_id)
                if unique_id in self._tasks:
                    task = self._tasks[unique_id]
                    indexes = [i for i in range(len(task.occurrences)) if i not in task.cancelled]
                elif found is not None and found[1] not in found[0].cancelled:
                    task, indexes = found[0], [found[1]]
                else:
                    outcome["NotFound"].append(unique_id)
                    continue
                if (task.app_id, task.workspace_id) != (app_id, workspace_id) or not indexes:
                    outcome["NotFound"].append(unique_id)
                    continue
                waiting = [i for i in indexes if not task.executed(i, now_ms)]
                if not waiting:
                    outcome["AlreadyExecuted"].append(unique_id)
                    continue
                task.cancelled.update(waiting)
                outcome["Cancelled"].append(unique_id)
        return outcome

    def get(self, unique_id: str) -> ScheduledTask | None:
        with self._lock:
            return self._tasks.get(unique_id)

    def all(self) -> list[ScheduledTask]:
        with self._lock:
            return list(self._tasks.values())
