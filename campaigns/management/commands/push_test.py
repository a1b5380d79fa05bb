"""manage.py push_test: one PushTemplate call to a few targets, outside any campaign."""

import uuid

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from campaigns import audit
from campaigns.conf import push_limits
from campaigns.models import Credential, MessageTemplate
from campaigns.mpaas import strategy, wire
from campaigns.mpaas.client import PushClient, PushError
from campaigns.mpaas.vocabulary import DeliveryType


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--value must look like name=value, not {text!r}")
    return key, value


class Command(BaseCommand):
    help = (
        "Send one template push to one target with a named credential, and print mPaaS's "
        "answer (RequestId, ResultCode, ResultMessage, PushResult). How an admin checks "
        "a credential."
    )

    def add_arguments(self, parser):
        parser.add_argument("--credential", required=True, help="credential name")
        parser.add_argument("--template", required=True, help="template name")
        parser.add_argument("--target", required=True, help="target ID")
        parser.add_argument(
            "--delivery-type",
            type=int,
            default=DeliveryType.USER_ID,
            help="1 Android, 2 iOS, 3 user ID, 5 live-activity token, 6 live-activity ID, "
            "7 HarmonyOS (default 3)",
        )
        parser.add_argument(
            "--value",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a template value (repeatable)",
        )
        parser.add_argument("--task-name", default="push_test")
        parser.add_argument("--expired-seconds", type=int, default=3600)

    def handle(self, *args, **options):
        try:
            credential = Credential.objects.get(name=options["credential"])
        except Credential.DoesNotExist:
            raise CommandError(f"no credential named {options['credential']!r}") from None
        if not credential.is_active:
            raise CommandError(f"credential {credential.name!r} is deactivated")
        values = dict(key_value(item) for item in options["value"])
        template = MessageTemplate.objects.filter(
            app_id=credential.app_id, name=options["template"]
        ).first()
        # An unknown template is still sent (mPaaS is the judge: 3022); a known one
        # lets us check its placeholders first.
        placeholders = template.placeholders() if template else tuple(values)
        spec = strategy.PushSpec(
            task_name=options["task_name"],
            app_id=credential.app_id,
            workspace_id=credential.workspace_id,
            template_name=options["template"],
            template_placeholders=placeholders,
            template_values=values,
            delivery_type=options["delivery_type"],
            expired_seconds=options["expired_seconds"],
            timezone=credential.timezone,
        )
        errors = strategy.validate(spec, now=timezone.now(), limits=push_limits())
        if errors:
            raise CommandError(" ".join(str(m) for messages in errors.values() for m in messages))
        msg_key = uuid.uuid4().hex
        params = wire.template_params(spec, {options["target"]: msg_key})
        try:
            reply = PushClient(credential).push_template(params)
        except PushError as exc:
            audit.record(
                "credential.push_test",
                obj=credential,
                details={"target": options["target"], "code": exc.code, "kind": exc.kind},
            )
            raise CommandError(
                f"push failed ({exc.kind}) with credential {credential.name!r}: "
                f"{exc.code}: {exc.message}"
                + (f" [RequestId {exc.request_id}]" if exc.request_id else "")
            ) from None
        audit.record(
            "credential.push_test",
            obj=credential,
            details={
                "target": options["target"],
                "code": reply.result_code,
                "request_id": reply.request_id,
            },
        )
        self.stdout.write(f"RequestId:     {reply.request_id}")
        self.stdout.write(f"ResultCode:    {reply.result_code}")
        self.stdout.write(f"ResultMessage: {reply.result_message}")
        self.stdout.write(
            f"PushResult:    Success={reply.success} ResultMsg={reply.result_msg!r} "
            f"Data={reply.data!r}"
        )
        self.stdout.write(f"msgKey:        {msg_key}")
