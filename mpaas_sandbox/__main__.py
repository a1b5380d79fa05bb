"""``python -m mpaas_sandbox serve ...`` and ``python -m mpaas_sandbox summary LEDGER``.

The control endpoints' token comes from the environment (``MPAAS_SANDBOX_TOKEN``) or the
``--config`` file (``control_token``), never from a flag: a command line is visible to every
user of the machine. Without one, the control endpoints refuse every request.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any

from .config import ConfigError, SandboxConfig, apply_changes
from .ledger import format_summary, load, summarize
from .server import SandboxServer

PROG = "mpaas_sandbox"

# flag -> SandboxConfig field, for the single-valued flags
_SCALAR_FLAGS = {
    "host": "host",
    "port": "port",
    "ledger": "ledger_path",
    "seed": "seed",
    "latency_ms": "latency_ms",
    "qps_cap": "qps_cap",
    "error_5xx_rate": "error_5xx_rate",
    "throttle_rate": "throttle_rate",
    "ambiguous_rate": "ambiguous_rate",
    "hold_rate": "hold_rate",
    "garbage_rate": "garbage_rate",
    "hold_seconds": "hold_seconds",
    "fail_code": "fail_code",
    "timezone": "timezone",
    "expired_min": "expired_min",
    "expired_max": "expired_max",
    "task_quota": "task_quota",
    "stats_seed": "stats_seed",
}
TOKEN_ENV = "MPAAS_SANDBOX_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the sandbox HTTP server")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", help="port to bind; 0 picks a free one (default 8900)")
    serve.add_argument("--key", action="append", metavar="ID:SECRET", help="access key (repeat)")
    serve.add_argument(
        "--app", action="append", metavar="APPID:WORKSPACE", help="accepted app (repeat)"
    )
    serve.add_argument(
        "--template", action="append", metavar="NAME:ph1,ph2", help="known template (repeat)"
    )
    serve.add_argument("--config", metavar="FILE.json", help="settings file (SandboxConfig names)")
    serve.add_argument("--ledger", metavar="PATH", help="JSONL ledger file (default: memory only)")
    serve.add_argument("--seed", help="fault random seed (default 0)")
    serve.add_argument("--latency-ms", help='added latency, "30" or "20-50"')
    serve.add_argument("--qps-cap", help="calls/s per AccessKeyId before 8011 (0 = none)")
    serve.add_argument("--error-5xx-rate", help="share of calls answered 503/500")
    serve.add_argument("--throttle-rate", help="share of calls answered 8011")
    serve.add_argument("--ambiguous-rate", help="share accepted, then dropped unanswered")
    serve.add_argument("--hold-rate", help="share accepted, then answered after --hold-seconds")
    serve.add_argument(
        "--garbage-rate", help="share accepted, then answered with an unreadable body"
    )
    serve.add_argument("--hold-seconds", help="delay of held answers (default 15)")
    serve.add_argument("--fail-code", help="answer every PushTemplate with this code")
    serve.add_argument("--timezone", help="time zone of StrategyContent days (Asia/Shanghai)")
    serve.add_argument("--expired-min", help="smallest ExpiredSeconds (default 180)")
    serve.add_argument("--expired-max", help="largest ExpiredSeconds (default 259200)")
    serve.add_argument("--task-quota", help="unexecuted scheduled tasks per app (default 100)")
    serve.add_argument("--stats-seed", help="seed of the QueryPushAnalysis* figures (default 0)")
    serve.add_argument(
        "--fault-action",
        action="append",
        metavar="ACTION",
        help="action the faults act on (repeat; default the three sending actions)",
    )
    summary = commands.add_parser("summary", help="summarise a ledger file")
    summary.add_argument("ledger", metavar="LEDGER")
    summary.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _merge(current: dict[str, Any], extra: dict[str, Any], field: str) -> dict[str, Any]:
    if field != "apps":
        return {**current, **extra}
    merged = dict(current)
    for app, workspaces in extra.items():
        merged[app] = tuple(dict.fromkeys(merged.get(app, ()) + tuple(workspaces)))
    return merged


def build_config(args: argparse.Namespace) -> SandboxConfig:
    """File settings first, flags on top. Raises ConfigError naming the flag or file field."""
    config = SandboxConfig(port=8900)
    file_fields: set[str] = set()
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as error:
            raise ConfigError(f"--config {args.config}: cannot read JSON ({error})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--config {args.config}: must hold a JSON object")
        try:
            config = apply_changes(config, data)
        except ConfigError as error:
            raise ConfigError(f"--config {args.config}: {error}") from None
        file_fields = set(data)
    changes = {
        field: getattr(args, flag)
        for flag, field in _SCALAR_FLAGS.items()
        if getattr(args, flag) is not None
    }
    config = apply_changes(config, changes, cli=True)
    if args.fault_action:
        config = apply_changes(config, {"fault_actions": args.fault_action}, cli=True)
    token = os.environ.get(TOKEN_ENV)
    if token:
        config = apply_changes(config, {"control_token": token}, cli=True)
    for flag, field in (("key", "keys"), ("app", "apps"), ("template", "templates")):
        values = getattr(args, flag)
        if values:
            parsed = getattr(apply_changes(SandboxConfig(), {field: values}, cli=True), field)
            base = getattr(config, field) if field in file_fields else {}
            config = apply_changes(config, {field: _merge(base, parsed, field)}, cli=True)
    return config


def serve(config: SandboxConfig) -> int:
    try:
        server = SandboxServer(config)
    except OSError as error:
        print(f"{PROG}: error: --ledger cannot be opened: {error}", file=sys.stderr)
        return 2
    try:
        server.start()
    except OSError as error:
        print(
            f"{PROG}: error: cannot listen on {config.host}:{config.port}: {error}", file=sys.stderr
        )
        return 1
    stopping = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ledger = config.ledger_path or "memory only"
    print(f"mpaas sandbox listening on {server.url} (ledger: {ledger})", flush=True)
    if config.control_token is None:
        print(
            f"{PROG}: no control token ({TOKEN_ENV} or control_token in --config): "
            "the /_sandbox/ endpoints refuse every request",
            file=sys.stderr,
            flush=True,
        )
    while not stopping.wait(1.0):
        pass
    server.stop()
    print("mpaas sandbox stopped", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "summary":
        try:
            records = load(args.ledger)
        except (OSError, ValueError) as error:
            print(f"{PROG}: error: cannot read ledger {args.ledger}: {error}", file=sys.stderr)
            return 2
        result = summarize(records)
        print(
            json.dumps(result, indent=2, ensure_ascii=False)
            if args.json
            else format_summary(result)
        )
        return 0
    try:
        config = build_config(args)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
