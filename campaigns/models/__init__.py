from .audit import AuditEvent
from .campaign import (
    Campaign,
    CircleType,
    Run,
    RunCounts,
    RunTally,
    ScheduleMode,
    StrategyType,
)
from .credential import Credential
from .ledger import Attempt, Batch, Delivery
from .schedule import Occurrence, ScheduledTask
from .target import DeliveryType, Target, TargetList
from .template import MessageTemplate

__all__ = [
    "Attempt",
    "AuditEvent",
    "Batch",
    "Campaign",
    "CircleType",
    "Credential",
    "Delivery",
    "DeliveryType",
    "MessageTemplate",
    "Occurrence",
    "Run",
    "RunCounts",
    "RunTally",
    "ScheduleMode",
    "ScheduledTask",
    "StrategyType",
    "Target",
    "TargetList",
]
