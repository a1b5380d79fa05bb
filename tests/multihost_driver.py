"""The multi-host drill's console side, run as `python -m tests.multihost_driver CMD` with
DATABASE_URL / REDIS_URL pointing at the db host: migrate and seed, launch a campaign
with `lifecycle.launch`, and check DESIGN §8's invariants against the sandbox ledger.
Each command prints one JSON object (the test process has its own, other database)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def ledger(sandbox_url: str) -> list[dict]:
    request = urllib.request.Request(f"{sandbox_url}/_sandbox/ledger")
    request.add_header("X-Sandbox-Token", os.environ["MPAAS_SANDBOX_TOKEN"])
    with urllib.request.urlopen(request, timeout=30) as response:
        return [json.loads(line) for line in response.read().decode().splitlines() if line]


def keys_accepted_twice(records: list[dict], task_name: str) -> list[str]:
    accepted = Counter(
        key
        for r in records
        if r["action"] == "PushTemplate" and r.get("task_name") == task_name and r["accepted"]
        for key in r["targets"].values()
    )
    return [key for key, count in accepted.items() if count > 1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["prepare", "launch", "check"])
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--name", default="")
    parser.add_argument("--targets", type=int, default=0)
    args = parser.parse_args(argv)

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushconsole.settings")
    django.setup()
    import _common as bench

    from campaigns import lifecycle
    from campaigns.models import Campaign, Credential, Delivery, MessageTemplate, Run

    if args.command == "prepare":
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        user, credential, template = bench.make_campaign_world(endpoint=args.sandbox)
        out = {"user": user.pk, "credential": credential.pk, "template": template.pk}
    elif args.command == "launch":
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(username="bench-launcher")
        target_list = bench.make_list(f"list-{args.name}", args.targets)
        campaign = bench.make_campaign(
            args.name, Credential.objects.get(), MessageTemplate.objects.get(), target_list
        )
        run = lifecycle.launch(campaign, user)
        out = {"campaign": campaign.pk, "run": run.pk}
    else:
        from tests.pipeline_helpers import check_invariants

        campaign = Campaign.objects.get(task_name=args.name)
        records = ledger(args.sandbox)
        check_invariants(campaign, records)
        run = Run.objects.get(campaign=campaign)
        twice = keys_accepted_twice(records, args.name)
        out = {
            "status": run.status,
            "sent": run.sent,
            "failed": run.failed,
            "total": run.total,
            "calls": sum(
                1
                for r in records
                if r["action"] == "PushTemplate" and r.get("task_name") == args.name
            ),
            "twice": len(twice),
            # the batches whose targets were accepted twice
            "twice_batches": sorted(
                set(Delivery.objects.filter(msg_key__in=twice).values_list("batch_id", flat=True))
            ),
            "ambiguous": run.batches.filter(ambiguous=True).count(),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
