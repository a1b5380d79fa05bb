"""SandboxConfig and the validation shared by the Python API, the CLI and ``/_sandbox/config``.

Every rule is checked in one place (``_NORMALIZERS``) and reports the offending name the way
the caller spelled it: ``--error-5xx-rate`` on the command line, ``error_5xx_rate`` elsewhere.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import UTC, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "ACTIONS",
    "FIXED_AT_START",
    "ConfigError",
    "SandboxConfig",
    "apply_changes",
    "public_view",
    "resolve_timezone",
]

DEFAULT_KEYS = {"sandbox-key": "sandbox-secret"}
SUPPORTED_VERSIONS = ("2019-08-21", "2020-10-28")
# Every RPC action the sandbox serves, in the order README.md describes them.
ACTIONS = (
    "PushTemplate",
    "PushMultiple",
    "RevokePushMessage",
    "QueryPushSchedulerList",
    "CancelPushScheduler",
    "QueryPushAnalysisCoreIndex",
    "QueryPushAnalysisTaskList",
    "QueryPushAnalysisTaskDetail",
)
# The calls that send (or recall) messages: the ones faults and the QPS cap act on by default.
SENDING_ACTIONS = ("PushTemplate", "PushMultiple", "RevokePushMessage")
# Settings only whoever starts the sandbox may choose (CLI, config file, Python constructor):
# never changed at run time, so no HTTP caller can move the ledger or the token.
FIXED_AT_START = frozenset({"host", "port", "ledger_path", "control_token"})


class ConfigError(ValueError):
    """A configuration value breaks a rule; the message names it and the rule."""


@dataclasses.dataclass
class SandboxConfig:
    """Everything the sandbox can be told. Mappings are replaced whole by ``configure``."""

    host: str = "127.0.0.1"
    port: int = 0
    keys: dict[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_KEYS))
    # AppId -> allowed WorkspaceIds; empty means any app and workspace are accepted.
    apps: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    # TemplateName -> placeholders (without the #...# markers).
    templates: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    ledger_path: str | None = None
    seed: int = 0
    latency_ms: tuple[int, int] | str | int = (0, 0)
    qps_cap: int = 0  # per AccessKeyId; 0 = no cap
    throttle_rate: float = 0.0
    error_5xx_rate: float = 0.0
    ambiguous_rate: float = 0.0
    hold_rate: float = 0.0
    garbage_rate: float = 0.0  # accepted, then answered with a body no client can read
    hold_seconds: float = 15.0
    fail_code: str | None = None
    timezone: str = "Asia/Shanghai"
    expired_min: int = 180
    expired_max: int = 259200
    task_quota: int = 100  # unexecuted scheduled tasks per app; 0 = unlimited
    clock_offset_seconds: float = 0.0  # shifts the scheduling clock, not the gateway's
    # The secret the /_sandbox/ control endpoints require (header X-Sandbox-Token). None:
    # the sandbox draws a random one (SandboxServer.control_token tells it to its starter).
    control_token: str | None = None
    stats_seed: int = 0  # seeds the figures of the QueryPushAnalysis* actions
    fault_actions: tuple[str, ...] = SENDING_ACTIONS  # actions faults and the QPS cap act on


FLAGS = {
    "host": "--host",
    "port": "--port",
    "keys": "--key",
    "apps": "--app",
    "templates": "--template",
    "ledger_path": "--ledger",
    "seed": "--seed",
    "latency_ms": "--latency-ms",
    "qps_cap": "--qps-cap",
    "throttle_rate": "--throttle-rate",
    "error_5xx_rate": "--error-5xx-rate",
    "ambiguous_rate": "--ambiguous-rate",
    "hold_rate": "--hold-rate",
    "garbage_rate": "--garbage-rate",
    "hold_seconds": "--hold-seconds",
    "fail_code": "--fail-code",
    "timezone": "--timezone",
    "expired_min": "--expired-min",
    "expired_max": "--expired-max",
    "task_quota": "--task-quota",
    "clock_offset_seconds": "clock_offset_seconds",
    "control_token": "MPAAS_SANDBOX_TOKEN",
    "stats_seed": "--stats-seed",
    "fault_actions": "--fault-action",
}
RATE_FIELDS = ("error_5xx_rate", "throttle_rate", "ambiguous_rate", "hold_rate", "garbage_rate")
_INT_RE = re.compile(r"-?\d+")


def _int(value: Any, label: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{label} must be an integer")
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise ConfigError(f"{label} must be an integer")
    if lo is not None and value < lo:
        raise ConfigError(f"{label} must be at least {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{label} must be at most {hi}")
    return value


def _float(value: Any, label: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{label} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} must be a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigError(f"{label} must be a finite number")
    if lo is not None and hi is not None and not lo <= number <= hi:
        raise ConfigError(f"{label} must be between {lo:g} and {hi:g}")
    if lo is not None and number < lo:
        raise ConfigError(f"{label} must be at least {lo:g}")
    return number


def _rate(value: Any, label: str) -> float:
    return _float(value, label, 0.0, 1.0)


def _pairs(value: Any, label: str, form: str) -> list[tuple[str, Any]]:
    """Accept a mapping or a list of ``"A:B"`` strings (the repeatable CLI form)."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, list | tuple):
        pairs = []
        for item in value:
            if not isinstance(item, str) or ":" not in item:
                raise ConfigError(f"{label} must be {form}")
            left, _, right = item.partition(":")
            pairs.append((left, right))
        return pairs
    raise ConfigError(f"{label} must be {form}")


def _keys(value: Any, label: str) -> dict[str, str]:
    out = {}
    for key_id, secret in _pairs(value, label, "ID:SECRET"):
        if not isinstance(key_id, str) or not key_id.strip() or any(c.isspace() for c in key_id):
            raise ConfigError(f"{label} must be ID:SECRET with a non-empty ID without spaces")
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"{label} must be ID:SECRET with a non-empty SECRET")
        out[key_id] = secret
    return out


def _apps(value: Any, label: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for app_id, workspaces in _pairs(value, label, "APPID:WORKSPACE"):
        if isinstance(workspaces, str):
            workspaces = [workspaces]
        if (
            not isinstance(app_id, str)
            or not app_id
            or not isinstance(workspaces, list | tuple)
            or not workspaces
            or not all(isinstance(w, str) and w for w in workspaces)
        ):
            raise ConfigError(f"{label} must be APPID:WORKSPACE with both parts non-empty")
        out[app_id] = tuple(dict.fromkeys(out.get(app_id, ()) + tuple(workspaces)))
    return out


def _templates(value: Any, label: str) -> dict[str, tuple[str, ...]]:
    if isinstance(value, list | tuple):
        value = [item if ":" in str(item) else f"{item}:" for item in value]
    out = {}
    for name, placeholders in _pairs(value, label, "NAME:placeholder1,placeholder2"):
        out[template_name(name, label)] = template_placeholders(placeholders, label)
    return out


def template_name(name: Any, label: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{label} needs a non-empty template name")
    if "," in name:
        raise ConfigError(f"{label}: template name may not contain a comma")
    return name


def template_placeholders(placeholders: Any, label: str = "placeholders") -> tuple[str, ...]:
    if isinstance(placeholders, str):
        placeholders = [p for p in placeholders.split(",") if p.strip()]
    if not isinstance(placeholders, list | tuple) or not all(
        isinstance(p, str) and p.strip() and "#" not in p for p in placeholders
    ):
        raise ConfigError(f"{label}: placeholders must be non-empty names without '#'")
    return tuple(p.strip() for p in placeholders)


def _latency(value: Any, label: str) -> tuple[int, int]:
    rule = f"{label} must be milliseconds as N or LOW-HIGH (0 to 600000, LOW <= HIGH)"
    if isinstance(value, bool):
        raise ConfigError(rule)
    if isinstance(value, int):
        lo = hi = value
    elif isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = (_int(v, label) for v in value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*(-\s*\d+\s*)?", value):
        parts = [int(p) for p in value.split("-")]
        lo, hi = parts[0], parts[-1]
    else:
        raise ConfigError(rule)
    if not 0 <= lo <= hi <= 600_000:
        raise ConfigError(rule)
    return (lo, hi)


def _fail_code(value: Any, label: str) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d{1,8}", text):
        raise ConfigError(f"{label} must be a numeric result code such as 3022")
    return text


def resolve_timezone(name: str) -> tzinfo:
    """An IANA name, ``UTC`` or a fixed offset like ``+08:00``."""
    match = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?", name.strip())
    if name.strip() in ("UTC", "Z"):
        return UTC
    if match:
        sign = 1 if match.group(1) == "+" else -1
        offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
        if offset > timedelta(hours=14):
            raise ValueError(name)
        return timezone(sign * offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # Machines without tz data still know Shanghai: UTC+8, no DST since 1991.
        if name in ("Asia/Shanghai", "PRC", "Asia/Chongqing"):
            return timezone(timedelta(hours=8))
        raise ValueError(name) from None


def _timezone(value: Any, label: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{label} must be a time zone name such as Asia/Shanghai")
    try:
        resolve_timezone(value)
    except ValueError:
        raise ConfigError(f"{label} must be a known time zone such as Asia/Shanghai") from None
    return value.strip()


def _host(value: Any, label: str) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise ConfigError(f"{label} must be a host name or IP address")
    return value.strip()


def _ledger(value: Any, label: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{label} must be a file path")
    return value


_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")


def _control_token(value: Any, label: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
        raise ConfigError(f"{label} must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ + / = -")
    return value


def _fault_actions(value: Any, label: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{label} must list action names such as PushTemplate")
    unknown = sorted(set(value) - set(ACTIONS))
    if unknown:
        raise ConfigError(f"{label}: {unknown[0]} is not an action the sandbox serves")
    return tuple(dict.fromkeys(value))


_NORMALIZERS: dict[str, Callable[[Any, str], Any]] = {
    "host": _host,
    "port": lambda v, label: _int(v, label, 0, 65535),
    "keys": _keys,
    "apps": _apps,
    "templates": _templates,
    "ledger_path": _ledger,
    "seed": lambda v, label: _int(v, label),
    "latency_ms": _latency,
    "qps_cap": lambda v, label: _int(0 if v is None else v, label, 0),
    "throttle_rate": _rate,
    "error_5xx_rate": _rate,
    "ambiguous_rate": _rate,
    "hold_rate": _rate,
    "garbage_rate": _rate,
    "hold_seconds": lambda v, label: _float(v, label, 0.0, 3600.0),
    "fail_code": _fail_code,
    "timezone": _timezone,
    "expired_min": lambda v, label: _int(v, label, 0),
    "expired_max": lambda v, label: _int(v, label, 1),
    "task_quota": lambda v, label: _int(v, label, 0),
    "clock_offset_seconds": lambda v, label: _float(v, label),
    "control_token": _control_token,
    "stats_seed": lambda v, label: _int(v, label),
    "fault_actions": _fault_actions,
}
assert set(_NORMALIZERS) == {f.name for f in dataclasses.fields(SandboxConfig)}


def apply_changes(
    base: SandboxConfig, changes: Mapping[str, Any], *, cli: bool = False
) -> SandboxConfig:
    """A new, validated config: ``base`` with ``changes``. Raises ConfigError naming the field."""

    def label(name: str) -> str:
        return FLAGS[name] if cli else name

    unknown = sorted(set(changes) - set(_NORMALIZERS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]}")
    values = {}
    for name, value in changes.items():
        values[name] = _NORMALIZERS[name](value, label(name))
    config = dataclasses.replace(base, **values)
    for name in _NORMALIZERS:  # normalise fields the caller built by hand, e.g. latency "20-50"
        if name not in values:
            setattr(config, name, _NORMALIZERS[name](getattr(config, name), label(name)))
    if sum(getattr(config, name) for name in RATE_FIELDS) > 1.0 + 1e-9:
        names = " + ".join(label(name) for name in RATE_FIELDS)
        raise ConfigError(f"{names} must not exceed 1")
    if config.expired_min > config.expired_max:
        raise ConfigError(f"{label('expired_min')} must not exceed {label('expired_max')}")
    return config


def public_view(config: SandboxConfig) -> dict[str, Any]:
    """The config as JSON, secrets left out (only AccessKey IDs are shown, no token)."""
    view = dataclasses.asdict(config)
    del view["control_token"]
    view["fault_actions"] = list(config.fault_actions)
    view["keys"] = sorted(config.keys)
    view["apps"] = {app: list(ws) for app, ws in config.apps.items()}
    view["templates"] = {name: list(ph) for name, ph in config.templates.items()}
    view["latency_ms"] = list(config.latency_ms)  # type: ignore[arg-type]
    return view
