"""The ledger: one JSON line per RPC request, in a file and in memory, and its summary.

The file is chosen when the sandbox starts and never changes while it runs.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["Ledger", "load", "summarize", "format_summary"]

_EXAMPLES = 20  # how many offending keys/targets a summary lists


class Ledger:
    """Append-only; one buffered write and flush per line under a lock."""

    def __init__(self, path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._path: str | None = None
        self._file: TextIO | None = None
        self.set_path(path)

    @property
    def path(self) -> str | None:
        return self._path

    def set_path(self, path: str | None) -> None:
        with self._lock:
            if path == self._path:
                return
            if self._file is not None:
                self._file.close()
                self._file = None
            self._path = path
            if path:
                directory = os.path.dirname(os.path.abspath(path))
                os.makedirs(directory, exist_ok=True)
                self._file = open(path, "a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._records.append(record)
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            if self._file is not None:
                self._file.seek(0)
                self._file.truncate()
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def load(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _peak_per_second(times: list[float]) -> int:
    """Most calls inside any window [t, t + 1s)."""
    times = sorted(times)
    peak, left = 0, 0
    for right, moment in enumerate(times):
        while moment - times[left] >= 1.0:
            left += 1
        peak = max(peak, right - left + 1)
    return peak


PUSH_ACTIONS = ("PushTemplate", "PushMultiple")
SENDING_ACTIONS = (*PUSH_ACTIONS, "RevokePushMessage")


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Delivery facts from ledger records. Pushes are PushTemplate and PushMultiple calls.

    - ``msgkeys_accepted_more_than_once``: a msgKey accepted in two or more calls, i.e. resent
      (allowed: the retry of an ambiguous failure must reuse its msgKeys).
    - ``targets_with_multiple_msgkeys``: a target accepted under two or more different msgKeys
      within one TaskName: a violation (the phone may get the message twice).
    - ``max_targets_per_call``: PushTemplate only (its limit is 10);
      ``max_targets_per_multiple_call``: PushMultiple (limit 100).
    - ``peak_calls_per_second``: sending calls (pushes and RevokePushMessage) that passed
      authentication, over any one-second sliding window (throttled and failed calls count:
      it measures the client).
    """
    records = list(records)
    pushes = [r for r in records if r.get("action") in PUSH_ACTIONS]
    accepted = [r for r in pushes if r.get("accepted")]
    revokes = [r for r in records if r.get("action") == "RevokePushMessage"]
    key_calls: Counter[str] = Counter()
    keys_by_target: dict[tuple[str, str], set[str]] = defaultdict(set)
    targets_accepted = 0
    for record in accepted:
        targets = record.get("targets") or {}
        targets_accepted += len(targets)
        for target, msg_key in targets.items():
            key_calls[str(msg_key)] += 1
            keys_by_target[(record.get("task_name") or "", target)].add(str(msg_key))
    resent = sorted(k for k, n in key_calls.items() if n > 1)
    doubled = [
        {"task_name": task, "target": target, "msgkeys": sorted(keys)}
        for (task, target), keys in sorted(keys_by_target.items())
        if len(keys) > 1
    ]

    def most_targets(action: str) -> int:
        sizes = (len(r.get("targets") or {}) for r in pushes if r.get("action") == action)
        return max(sizes, default=0)

    return {
        "calls": len(records),
        "push_calls": len(pushes),
        "accepted_calls": len(accepted),
        "targets_accepted": targets_accepted,
        "distinct_msgkeys": len(key_calls),
        "msgkeys_accepted_more_than_once": len(resent),
        "resent_msgkey_examples": resent[:_EXAMPLES],
        "targets_with_multiple_msgkeys": len(doubled),
        "multiple_msgkey_examples": doubled[:_EXAMPLES],
        "max_targets_per_call": most_targets("PushTemplate"),
        "max_targets_per_multiple_call": most_targets("PushMultiple"),
        "revoke_calls": len(revokes),
        "messages_revoked": sum(r.get("revoked") or 0 for r in revokes),
        "peak_calls_per_second": _peak_per_second(
            [
                r["ts"]
                for r in records
                if r.get("action") in SENDING_ACTIONS and r.get("authenticated")
            ]
        ),
        "by_result_code": dict(sorted(Counter(str(r.get("result_code")) for r in records).items())),
        "by_action": dict(sorted(Counter(str(r.get("action")) for r in records).items())),
        "by_fault": dict(sorted(Counter(r["fault"] for r in records if r.get("fault")).items())),
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"calls                              {summary['calls']}",
        f"push calls                         {summary['push_calls']}",
        f"accepted calls                     {summary['accepted_calls']}",
        f"targets accepted                   {summary['targets_accepted']}",
        f"distinct msgKeys (accepted)        {summary['distinct_msgkeys']}",
        f"msgKeys accepted more than once    {summary['msgkeys_accepted_more_than_once']}",
        f"targets under 2+ msgKeys (bad)     {summary['targets_with_multiple_msgkeys']}",
        f"max targets per PushTemplate call  {summary['max_targets_per_call']}",
        f"max targets per PushMultiple call  {summary['max_targets_per_multiple_call']}",
        f"messages revoked                   {summary['messages_revoked']}",
        f"peak calls/s (1 s sliding window)  {summary['peak_calls_per_second']}",
        "by result code:",
    ]
    lines += [f"  {code:<32} {n}" for code, n in summary["by_result_code"].items()]
    if summary["by_fault"]:
        lines.append("by fault:")
        lines += [f"  {fault:<32} {n}" for fault, n in summary["by_fault"].items()]
    for item in summary["multiple_msgkey_examples"]:
        lines.append(
            f"  violation: task {item['task_name']!r} target {item['target']!r} "
            f"msgKeys {', '.join(item['msgkeys'])}"
        )
    return "\n".join(lines)
