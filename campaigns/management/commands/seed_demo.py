"""Create the demo world on a new database: an admin, a credential pointed at the local
sandbox, a template and a small target list. Running it again changes nothing."""

import json
import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from campaigns import audit
from campaigns.models import Credential, MessageTemplate, Target, TargetList
from campaigns.mpaas.vocabulary import DeliveryType
from pushconsole.envutil import generated_secret

DEMO_APP_ID = "ONEX570DA89211721"
DEMO_WORKSPACE = "default"
DEMO_ACCESS_KEY_ID = "LTAIdemoSandbox0001"
DEMO_CREDENTIAL = "Sandbox (demo)"
DEMO_TEMPLATE = {
    "name": "demo_welcome",
    "title": "Hello #name#",
    "body": "Your coupon #coupon# is waiting. It expires on #date#.",
    "uri": "",
}
DEMO_LIST = "Demo users"
DEMO_TARGETS = 25


def sandbox_config_path():
    return settings.VAR_DIR / "sandbox.json"


def write_sandbox_config(secret: str) -> None:
    """The sandbox's keys, templates and control token, in a 0600 file (never on a
    command line)."""
    templates = {
        t.name: list(t.placeholders()) for t in MessageTemplate.objects.filter(app_id=DEMO_APP_ID)
    }
    config = {
        "keys": {DEMO_ACCESS_KEY_ID: secret},
        "apps": {DEMO_APP_ID: DEMO_WORKSPACE},
        "templates": templates,
        # a sandbox started by hand with --config also takes the console's control token
        "control_token": settings.SANDBOX_CONTROL_TOKEN,
    }
    path = sandbox_config_path()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=2)


class Command(BaseCommand):
    help = "Create the demo admin, sandbox credential, template and target list (once)."

    def handle(self, *args, **options):
        sandbox_secret = generated_secret(settings.VAR_DIR / "sandbox_demo_secret", "token")
        password_file = settings.VAR_DIR / "demo_admin_password"
        User = get_user_model()
        with transaction.atomic():
            if not User.objects.filter(username="admin").exists():
                password = generated_secret(password_file, "token")[:16]
                User.objects.create_superuser("admin", "admin@example.invalid", password)
                self.stdout.write("Created the demo admin.")
            admin = User.objects.get(username="admin")
            credential, created = Credential.objects.get_or_create(
                name=DEMO_CREDENTIAL,
                defaults={
                    "app_id": DEMO_APP_ID,
                    "workspace_id": DEMO_WORKSPACE,
                    "access_key_id": DEMO_ACCESS_KEY_ID,
                    "endpoint": f"http://{settings.SANDBOX_HOST}:{settings.SANDBOX_PORT}",
                    "rate_limit": 50,
                },
            )
            if created:
                credential.set_secret(sandbox_secret)
                credential.save()
                audit.record(
                    "credential.create", actor=admin, obj=credential, details={"demo": True}
                )
            template, created = MessageTemplate.objects.get_or_create(
                app_id=DEMO_APP_ID,
                name=DEMO_TEMPLATE["name"],
                defaults={**DEMO_TEMPLATE, "created_by": admin},
            )
            if created:
                audit.record("template.create", actor=admin, obj=template, details={"demo": True})
            target_list, created = TargetList.objects.get_or_create(
                name=DEMO_LIST,
                defaults={"delivery_type": DeliveryType.USER_ID, "created_by": admin},
            )
            if created:
                Target.objects.bulk_create(
                    Target(target_list=target_list, target_id=f"demo-user-{n:04d}")
                    for n in range(1, DEMO_TARGETS + 1)
                )
                target_list.target_count = DEMO_TARGETS
                target_list.save(update_fields=["target_count"])
                audit.record(
                    "target_list.create",
                    actor=admin,
                    obj=target_list,
                    details={"demo": True, "targets": DEMO_TARGETS},
                )
        write_sandbox_config(sandbox_secret)
        if password_file.exists():
            self.stdout.write(f"Demo login: admin / {password_file.read_text().strip()[:16]}")
