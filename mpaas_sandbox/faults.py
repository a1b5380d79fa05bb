"""Fault injection for the actions in ``fault_actions`` (by default the sending ones:
PushTemplate, PushMultiple, RevokePushMessage), reproducible from a seed.

Every such call draws exactly three numbers from one ``random.Random(seed)`` (latency,
fault, 5xx kind) whatever the settings, so the same seed and the same call order give the same
fault sequence even when rates change between runs of a drill.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["FaultPlan", "FaultInjector"]

# Fault names as they appear in the ledger's "fault" field.
QPS_CAP = "qps_cap"
THROTTLE = "throttle"
ERROR_5XX = "error_5xx"
AMBIGUOUS = "ambiguous"
HOLD = "hold"
GARBAGE = "garbage"
# What a garbage answer is (chosen by the call's third draw): not JSON, JSON that is not an
# object, or an object without PushResult.
GARBAGE_KINDS = ("not_json", "not_object", "no_push_result")


@dataclass(frozen=True)
class FaultPlan:
    fault: str | None
    latency_ms: int
    http_status: int = 200  # for ERROR_5XX: 503 or 500
    garbage: str = ""  # for GARBAGE: one of GARBAGE_KINDS


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._windows: dict[str, deque[float]] = {}

    def reset(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)
            self._windows.clear()

    def decide(self, config, access_key_id: str, now: float | None = None) -> FaultPlan:
        """The fault for one authenticated call of a fault action (``config``: SandboxConfig)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            u_latency, u_fault, u_kind = self._rng.random(), self._rng.random(), self._rng.random()
            capped = self._over_cap(config.qps_cap, access_key_id, now)
        lo, hi = config.latency_ms
        latency = lo + int(u_latency * (hi - lo + 1)) if hi > lo else lo
        if capped:
            return FaultPlan(QPS_CAP, latency)
        edge = 0.0
        for name, rate in (
            (ERROR_5XX, config.error_5xx_rate),
            (THROTTLE, config.throttle_rate),
            (AMBIGUOUS, config.ambiguous_rate),
            (HOLD, config.hold_rate),
            (GARBAGE, config.garbage_rate),
        ):
            edge += rate
            if u_fault < edge:
                status = (503 if u_kind < 0.5 else 500) if name == ERROR_5XX else 200
                garbage = GARBAGE_KINDS[int(u_kind * 3)] if name == GARBAGE else ""
                return FaultPlan(name, latency, status, garbage)
        return FaultPlan(None, latency)

    def _over_cap(self, cap: int, key: str, now: float) -> bool:
        """Sliding one-second window per AccessKeyId; only admitted calls fill it."""
        if cap <= 0:
            return False
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= cap:
            return True
        window.append(now)
        return False
