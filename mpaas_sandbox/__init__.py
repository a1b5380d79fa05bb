"""A standalone local stand-in for the Alibaba Cloud mPaaS push API (standard library only).

Serves PushTemplate, PushMultiple, RevokePushMessage, the scheduled-task calls and the
QueryPushAnalysis* statistics over HTTP on loopback, answering in the shapes of the official
response models; verifies RPC signature V1, enforces the documented parameter rules with the
real result codes, records every request in a JSONL ledger and injects faults reproducibly.
See README.md.
"""

from .config import ConfigError, SandboxConfig
from .ledger import load as load_ledger
from .ledger import summarize
from .server import SandboxServer
from .signature import percent_encode, sign, string_to_sign

__all__ = [
    "ConfigError",
    "SandboxConfig",
    "SandboxServer",
    "load_ledger",
    "percent_encode",
    "sign",
    "string_to_sign",
    "summarize",
]
