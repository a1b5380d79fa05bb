"""Every URL of the console, for every role and for GET and POST, answers as the intended
access matrix below says: anonymous -> sign-in page; a role not allowed -> 403; an allowed
role -> anything but 403 or the sign-in page (200, a redirect elsewhere, 400, 404, 405).

The matrix fails closed: a URL pattern missing from it fails the test, naming it. When
you add a URL, add its row here."""

from __future__ import annotations

import importlib.util

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.roles import ADMIN, APPROVER, AUDITOR, MARKETING
from campaigns import approvals
from campaigns.models import Batch, Run
from tests.pipeline_helpers import make_campaign

pytestmark = pytest.mark.django_db

ANONYMOUS = "anonymous"
ROLES = (MARKETING, AUDITOR, APPROVER, ADMIN)
SIGNED_IN = frozenset(ROLES)  # any signed-in user, whatever the role
READ = frozenset({MARKETING, AUDITOR, APPROVER, ADMIN})  # roles.can_read
SEND = frozenset({MARKETING, ADMIN})  # roles.can_send
AUDIT = frozenset({AUDITOR, ADMIN})  # role_required(AUDITOR)
APPROVE = frozenset({APPROVER, ADMIN})  # roles.can_approve
ADMINS = frozenset({ADMIN})  # roles.admin_only
PUBLIC = "public"  # no sign-in needed


def both(roles: frozenset) -> dict[str, frozenset]:
    return {"GET": roles, "POST": roles}


# URL name -> method -> the roles that get past the permission check. Role checks run
# before method checks, so a GET-only page still refuses a POST from a role not allowed
# (403) and lets an allowed role reach the 405.
MATRIX: dict[str, dict[str, frozenset] | str] = {
    "login": PUBLIC,
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "metrics": PUBLIC,  # no sign-in: its own bearer token or allow-list (test_metrics.py)
    "logout": both(SIGNED_IN),
    "home": both(READ),
    # account
    "language-set": both(SIGNED_IN),
    "password-change": both(SIGNED_IN),
    "password-confirm": both(SIGNED_IN),
    "two-factor-setup": both(SIGNED_IN),
    "two-factor-disable": both(SIGNED_IN),
    "two-factor-verify": both(SIGNED_IN),
    "two-factor-backup-codes": both(SIGNED_IN),
    # campaigns
    "campaign-list": both(READ),
    "campaign-create": both(SEND),
    "campaign-builder-preview": both(SEND),
    "campaign-template-values": both(SEND),
    "campaign-credential-info": both(READ),
    "campaign-detail": both(READ),
    "campaign-edit": both(SEND),
    "campaign-review": both(READ),
    "campaign-launch": both(SEND),
    "campaign-progress": both(READ),
    "campaign-duplicate": both(SEND),
    "campaign-action": both(SEND),
    "campaign-values": both(SEND),
    "campaign-recall": both(READ),
    "campaign-recall-start": both(SEND),
    "campaign-recall-cancel": both(SEND),
    "campaign-test-send": both(SEND),
    "campaign-confirm": both(SEND),
    # message templates (the edit page is also the auditors' read page)
    "template-list": both(READ),
    "template-create": both(SEND),
    "template-edit": {"GET": READ, "POST": SEND},
    "template-delete": both(SEND),
    "template-preview": both(SEND),
    # target lists
    "target-list-list": both(READ),
    "target-list-create": both(SEND),
    "target-list-detail": both(READ),
    "target-list-delete": both(SEND),
    "target-list-upload": both(SEND),
    "target-list-paste": both(SEND),
    "target-list-import-status": both(READ),
    "target-list-errors": both(READ),
    # send history
    "history-list": both(READ),
    "history-export": both(READ),
    # statistics and the send calendar
    "statistics-refresh": both(SEND),
    "statistics-export": both(READ),
    "calendar": both(READ),
    "history-batch": both(READ),
    # credentials
    "credential-list": both(ADMINS),
    "credential-create": both(ADMINS),
    "credential-edit": both(ADMINS),
    "credential-test": both(ADMINS),
    "credential-deactivate": both(ADMINS),
    "credential-activate": both(ADMINS),
    "credential-delete": both(ADMINS),
    # users
    "user-list": both(ADMINS),
    "user-create": both(ADMINS),
    "user-edit": both(ADMINS),
    "user-deactivate": both(ADMINS),
    "user-activate": both(ADMINS),
    "user-password": both(ADMINS),
    # two-person approval
    "approval-list": both(APPROVE),
    "approval-detail": both(APPROVE),
    "approval-submit": both(SEND),
    # audit trail
    "audit-list": both(AUDIT),
    "audit-verify": both(AUDIT),
    # the RQ dashboard (django-rq), Admins only
    **{
        f"django_rq:{name}": both(ADMINS)
        for name in (
            "home",
            "home_json",
            "jobs",
            "queue_details",
            "finished_jobs",
            "failed_jobs",
            "delete_failed_jobs",
            "scheduled_jobs",
            "started_jobs",
            "deferred_jobs",
            "clear",
            "requeue_all",
            "job_detail",
            "result_detail",
            "delete_job",
            "requeue_job",
            "enqueue_job",
            "stop_job",
            "confirm_action",
            "actions",
            "workers",
            "worker_details",
            "scheduler_jobs",
            "metrics",  # django-rq's own (present with prometheus-client); Admins only here
            "cron_scheduler_detail",
            "cron_job_detail",
            # django-rq serves it only when prometheus_client is importable
            *(["metrics"] if importlib.util.find_spec("prometheus_client") else []),
        )
    },
}
if importlib.util.find_spec("prometheus_client"):  # django-rq serves /rq/metrics/ only then
    MATRIX["django_rq:metrics"] = both(ADMINS)

# Which object a `pk` stands for, by URL-name prefix (longest prefix wins).
PK_OBJECTS = {
    "campaign-": "campaign",
    "approval-": "approval",
    "approval-submit": "campaign",
    "template-": "template",
    "target-list-": "target_list",
    "history-batch": "batch",
    "credential-": "credential",
    "user-": "victim",
}
# Values for the other path parameters.
OTHER_PARAMS = {
    "action": "pause",
    "run": 1,
    "key": "no-such-key",
    "queue_index": 0,
    "scheduler_index": 0,
    "connection_index": 0,
    "job_id": "no-such-job",
    "result_id": "no-such-result",
    "scheduler_name": "no-such-scheduler",
    "cron_job_name": "no-such-cron-job",
    "token": None,  # optional in django-rq's regex; None leaves it out
}
# Allowed cells where the page itself fails on the made-up parameters above, after the
# permission check passed (so access is still what the matrix says). Not our code.
SERVER_ERROR_AFTER_ACCESS = {
    "readyz": "503 while no worker or sweeper is running (tests/test_health.py)",
    "django_rq:delete_job": "django-rq raises NoSuchJobError for an unknown job id",
    "django_rq:enqueue_job": "django-rq raises NoSuchJobError for an unknown job id",
    "django_rq:requeue_job": "django-rq raises NoSuchJobError for an unknown job id",
    "django_rq:worker_details": "django-rq fails on an unknown worker name",
    "django_rq:scheduler_jobs": "rq-scheduler is not installed (RQ's own scheduler is used)",
}
SIGN_IN_PAGES = ("/login/", "/admin/login/")  # django-rq's pages send to the admin's
# Pages whose allowed POST ends the session and lands on the sign-in page.
SIGNS_OUT = {"logout"}
SKIPPED_PREFIXES = ("admin/", "static/")


def walk(patterns, prefix: str = "", namespace: str = "", converters=None):
    """Yield (matrix key, route, path parameter names) for every URL pattern."""
    converters = dict(converters or {})
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        regex_groups = dict.fromkeys(pattern.pattern.regex.groupindex)
        here = {**converters, **regex_groups, **getattr(pattern.pattern, "converters", {})}
        if isinstance(pattern, URLResolver):
            if route.startswith(SKIPPED_PREFIXES):
                continue
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, route, inner, here)
        elif isinstance(pattern, URLPattern):
            key = f"{namespace}{pattern.name}" if pattern.name else route
            yield key, route, sorted(here)


@pytest.fixture
def world(admin_user, marketer, auditor, django_user_model, credential, template, target_list):
    from django.contrib.auth.models import Group

    approver = django_user_model.objects.create_user("apu", password="pw-apu-123")
    approver.groups.add(Group.objects.get(name=APPROVER))
    campaign = make_campaign(credential, template, target_list)
    approval = approvals.submit(campaign, marketer)
    run = Run.objects.create(campaign=campaign, number=1)
    batch = Batch.objects.create(run=run, campaign=campaign, seq=1)
    victim = django_user_model.objects.create_user("victor", password="pw-victor-123")
    return {
        "users": {MARKETING: marketer, AUDITOR: auditor, APPROVER: approver, ADMIN: admin_user},
        "approval": approval,
        "campaign": campaign,
        "template": template,
        "target_list": target_list,
        "batch": batch,
        "credential": credential,
        "victim": victim,
    }


def url_for(key: str, params: list[str], world: dict) -> str:
    kwargs = {}
    for param in params:
        if param == "pk":
            prefixes = sorted((p for p in PK_OBJECTS if key.startswith(p)), key=len)
            assert prefixes, f"{key}: which object does its pk stand for? Add it to PK_OBJECTS"
            kwargs[param] = world[PK_OBJECTS[prefixes[-1]]].pk
        else:
            assert param in OTHER_PARAMS, f"{key}: add a value for <{param}> to OTHER_PARAMS"
            if OTHER_PARAMS[param] is not None:
                kwargs[param] = OTHER_PARAMS[param]
    return reverse(key, kwargs=kwargs)


def outcome(key: str, response) -> str:
    if response.status_code == 302 and response["Location"].startswith(SIGN_IN_PAGES):
        return "sign-in page"
    if response.status_code == 403:
        return "forbidden"
    if response.status_code >= 500 and key not in SERVER_ERROR_AFTER_ACCESS:
        return "server error"
    return "allowed"


def expected(key: str, method: str, role: str) -> str:
    row = MATRIX[key]
    if row == PUBLIC:
        return "allowed"
    if role == ANONYMOUS:
        return "sign-in page"
    return "allowed" if role in row[method] else "forbidden"


def test_every_url_pattern_is_in_the_matrix():
    keys = [key for key, _route, _params in walk(get_resolver().url_patterns)]
    missing = sorted(set(keys) - set(MATRIX))
    assert not missing, f"URL patterns missing from the access matrix: {missing}"
    stale = sorted(set(MATRIX) - set(keys))
    assert not stale, f"access-matrix rows without a URL pattern: {stale}"


def test_every_url_answers_every_role_as_the_matrix_says(world, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    clients = {ANONYMOUS: Client(raise_request_exception=False)}
    for role, user in world["users"].items():
        clients[role] = Client(raise_request_exception=False)
        clients[role].force_login(user)
    mismatches, checked = [], 0
    for key, route, params in sorted(walk(get_resolver().url_patterns)):
        if key not in MATRIX:
            mismatches.append(f"{key} ({route}): not in the access matrix")
            continue
        url = url_for(key, params, world)
        for role, client in clients.items():
            for method in ("GET", "POST"):
                response = client.get(url) if method == "GET" else client.post(url)
                got, want = outcome(key, response), expected(key, method, role)
                signed_out = "_auth_user_id" not in client.session
                if key in SIGNS_OUT and method == "POST" and role != ANONYMOUS and signed_out:
                    got = "allowed" if got == "sign-in page" else got
                checked += 1
                if got != want:
                    mismatches.append(
                        f"{key} {method} {url} as {role}: expected {want}, got {got} "
                        f"({response.status_code} {response.get('Location', '')})"
                    )
                if role != ANONYMOUS and signed_out:
                    client.force_login(world["users"][role])  # after logout
    assert not mismatches, "\n".join(mismatches)
    assert checked >= 10 * len(MATRIX) - 10  # every row, 5 roles x 2 methods


def test_django_admin_refuses_a_marketer(client, marketer):
    client.force_login(marketer)
    for url in ("/admin/", "/admin/campaigns/credential/", "/admin/campaigns/auditevent/"):
        response = client.get(url)
        assert response.status_code in (302, 403), url
        if response.status_code == 302:
            assert response["Location"].startswith("/admin/login/"), url
