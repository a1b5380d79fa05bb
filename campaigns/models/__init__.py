"""The campaigns app's models, one module per concept."""

from .approval import CampaignApproval
from .audit import AuditEvent
from .campaign import Campaign, ScheduleMode
from .credential import Credential
from .ledger import Attempt, Batch, Delivery, IdBounds
from .run import Run, RunCounts, RunTally
from .schedule import Occurrence, ScheduledTask
from .statistics import DailyStatistic, StatisticsFetch, TaskStatistic
from .target import Target, TargetList
from .template import MessageTemplate

__all__ = [
    "Attempt",
    "AuditEvent",
    "Batch",
    "Campaign",
    "CampaignApproval",
    "Credential",
    "DailyStatistic",
    "Delivery",
    "IdBounds",
    "MessageTemplate",
    "Occurrence",
    "Run",
    "RunCounts",
    "RunTally",
    "ScheduleMode",
    "ScheduledTask",
    "StatisticsFetch",
    "Target",
    "TargetList",
    "TaskStatistic",
]
