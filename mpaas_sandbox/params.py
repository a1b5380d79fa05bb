"""Wire names: the business parameters each action accepts.

Taken from the official request models of ``alibabacloud-mpaas20201028`` 3.4.1 (their
``to_map()`` keys); tests/test_sandbox_contract.py checks every name against them.
"""

from __future__ import annotations

import re

__all__ = ["ACCEPTED_PARAMS", "COMMON_PARAMS", "TARGET_MSG_FIELDS", "TARGET_MSG_NAME"]

# Gateway parameters: signed, but not business parameters.
COMMON_PARAMS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "RegionId",
        "Timestamp",
        "SignatureMethod",
        "SignatureType",
        "SignatureVersion",
        "SignatureNonce",
        "AccessKeyId",
        "Signature",
        "SecurityToken",
    }
)
# Fields every 2020-10-28 request model of a push carries beyond PUSH_API.md §2.
_MODEL_EXTRAS = frozenset(
    {
        "ChannelId",
        "PushAction",
        "Silent",
        "TenantId",
        "TransparentMessagePayload",
        "TransparentMessageUrgency",
        "VendorTemplate",
    }
)
_PUSH_COMMON = frozenset(
    {
        "AppId",
        "WorkspaceId",
        "TaskName",
        "TemplateName",
        "DeliveryType",
        "ExpiredSeconds",
        "ExtendedParams",
        "NotifyType",
        "Classification",
        "StrategyType",
        "StrategyContent",
        "ThirdChannelCategory",
        "NotifyLevel",
        "MiChannelId",
        "ActivityEvent",
        "ActivityContentState",
        "DismissalDate",
    }
)
_SMS = frozenset({"SmsStrategy", "SmsSignName", "SmsTemplateCode", "SmsTemplateParam"})
# PushMultiple's per-target fields, sent flattened as TargetMsg.N.<Field> (N from 1).
TARGET_MSG_FIELDS = ("Target", "MsgKey", "TemplateKeyValue", "ExtendedParams")
TARGET_MSG_NAME = re.compile(r"TargetMsg\.([1-9]\d*)\.(" + "|".join(TARGET_MSG_FIELDS) + r")")

# Business parameters each action accepts, by wire name (the request models' to_map() keys;
# PushMultiple's TargetMsg stands for its flattened TargetMsg.N.<Field> names).
ACCEPTED_PARAMS: dict[str, frozenset[str]] = {
    "PushTemplate": _PUSH_COMMON | _MODEL_EXTRAS | _SMS | {"TemplateKeyValue", "TargetMsgkey"},
    "PushMultiple": _PUSH_COMMON | _MODEL_EXTRAS | {"TargetMsg"},
    "RevokePushMessage": frozenset({"AppId", "WorkspaceId", "MessageId", "TargetId", "TenantId"}),
    "QueryPushSchedulerList": frozenset(
        {
            "AppId",
            "WorkspaceId",
            "StartTime",
            "EndTime",
            "Type",
            "UniqueId",
            "PageNumber",
            "PageSize",
            "TenantId",
        }
    ),
    "CancelPushScheduler": frozenset({"AppId", "WorkspaceId", "UniqueIds", "Type", "TenantId"}),
    "QueryPushAnalysisCoreIndex": frozenset(
        {
            "AppId",
            "WorkspaceId",
            "StartTime",
            "EndTime",
            "Platform",
            "Channel",
            "Type",
            "TaskId",
            "TenantId",
        }
    ),
    "QueryPushAnalysisTaskList": frozenset(
        {
            "AppId",
            "WorkspaceId",
            "PageNumber",
            "PageSize",
            "StartTime",
            "TaskId",
            "TaskName",
            "TenantId",
        }
    ),
    "QueryPushAnalysisTaskDetail": frozenset({"AppId", "WorkspaceId", "TaskId", "TenantId"}),
}
