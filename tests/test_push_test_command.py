"""manage.py push_test: how an admin checks a credential against mPaaS."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from campaigns.models import AuditEvent
from tests.conftest import SANDBOX_SECRET, TEMPLATE_NAME

pytestmark = pytest.mark.django_db


def run(**options) -> str:
    from io import StringIO

    out = StringIO()
    call_command("push_test", stdout=out, **options)
    return out.getvalue()


def test_push_test_prints_request_id_and_success(credential, template, sandbox):
    output = run(
        credential="Sandbox",
        template=TEMPLATE_NAME,
        target="user-42",
        value=["name=Ann", "coupon=X1"],
    )
    [record] = [r for r in sandbox.records() if r["action"] == "PushTemplate"]
    assert f"RequestId:     {record['request_id']}" in output
    assert "ResultCode:    OK" in output
    assert "Success=True" in output
    assert list(record["targets"]) == ["user-42"]
    event = AuditEvent.objects.get(action="credential.push_test")
    assert event.details["request_id"] == record["request_id"]
    assert SANDBOX_SECRET not in output


def test_wrong_secret_names_the_credential_and_the_code(credential, template, sandbox):
    credential.set_secret("wrong")
    credential.save()
    with pytest.raises(CommandError) as caught:
        run(credential="Sandbox", template=TEMPLATE_NAME, target="u", value=["name=a", "coupon=b"])
    message = str(caught.value)
    assert "credential 'Sandbox'" in message
    assert "SignatureDoesNotMatch" in message
    assert "\n" not in message


def test_missing_placeholder_value_is_refused_before_any_call(credential, template, sandbox):
    with pytest.raises(CommandError, match="coupon"):
        run(credential="Sandbox", template=TEMPLATE_NAME, target="u", value=["name=a"])
    assert sandbox.records() == []


def test_unknown_credential_is_a_clear_error(db):
    with pytest.raises(CommandError, match="no credential named 'Nope'"):
        run(credential="Nope", template="t", target="u")


def test_malformed_value_is_a_clear_error(credential):
    with pytest.raises(CommandError, match="--value must look like name=value"):
        run(credential="Sandbox", template="t", target="u", value=["oops"])
