"""A small named world for the tests: users of each role, a credential pointed at an
in-process mPaaS sandbox (real HTTP over loopback, real signatures), a template, a
target list, and a real Redis (the embedded one unless REDIS_URL is set)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop running in the test thread; Django's async
# guard would otherwise refuse ORM calls made by live_server tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SANDBOX_KEY_ID = "LTAItestKey0001"
SANDBOX_SECRET = "test-secret-MARKER-5f1d9c"  # a known marker: must never leak anywhere
SANDBOX_CONTROL_TOKEN = "test-control-token-MARKER-77ab"  # the /_sandbox/ endpoints' token
APP_ID = "ONEX570DA89211721"
WORKSPACE = "default"
TEMPLATE_NAME = "welcome_tpl"
NO_FAULTS = dict(
    latency_ms=0,
    qps_cap=0,
    throttle_rate=0.0,
    error_5xx_rate=0.0,
    ambiguous_rate=0.0,
    hold_rate=0.0,
    garbage_rate=0.0,
    fail_code=None,
    clock_offset_seconds=0.0,
)


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis for the session: REDIS_URL when set (CI), else the embedded one."""
    from pushconsole import embedded_redis

    url = os.environ.get("REDIS_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if url and worker.startswith("gw") and worker[2:].isdigit():
        # Parallel test processes each get a database number of their own (they flush
        # it), counted from the one REDIS_URL names.
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        base = int(parts.path.strip("/") or 0)
        url = urlunsplit(parts._replace(path=f"/{base + int(worker[2:])}"))
    child = None
    workdir = None
    if not url:
        workdir = Path(tempfile.mkdtemp(prefix="pc-redis-"))
        socket_path = workdir / "redis.sock"
        child = embedded_redis.start(socket_path)
        url = f"unix://{socket_path}?db=0"
    yield url
    embedded_redis.stop(child)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _audit_witness(tmp_path, settings):
    """Each test has its own audit witness file (never the development one in var/)."""
    settings.AUDIT_WITNESS_PATH = tmp_path / "audit-witness.log"


@pytest.fixture(autouse=True)
def _english_by_default():
    """Every test starts in the default language: a test that switched to Chinese (a
    page view in zh-hans activates it for the thread) must not leak into the next."""
    from django.conf import settings as django_settings
    from django.utils import translation

    translation.activate(django_settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _redis_settings(redis_url, settings):
    settings.REDIS_URL = redis_url
    settings.RQ_QUEUES = {"push": {"URL": redis_url, "DEFAULT_TIMEOUT": 3600}}


@pytest.fixture
def redis_conn(redis_url):
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture(scope="session")
def sandbox_server():
    from mpaas_sandbox import SandboxConfig, SandboxServer

    server = SandboxServer(
        SandboxConfig(
            keys={SANDBOX_KEY_ID: SANDBOX_SECRET},
            templates={TEMPLATE_NAME: ("name", "coupon")},
            apps={APP_ID: (WORKSPACE,)},
            control_token=SANDBOX_CONTROL_TOKEN,
        )
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """The session's sandbox, with faults off and an empty ledger for this test; the
    console holds its control token."""
    settings.SANDBOX_CONTROL_TOKEN = SANDBOX_CONTROL_TOKEN
    sandbox_server.configure(**NO_FAULTS)
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.configure(**NO_FAULTS)
    sandbox_server.reset()


def _user(model, username: str, role: str, *, superuser: bool = False):
    from django.contrib.auth.models import Group

    make = model.objects.create_superuser if superuser else model.objects.create_user
    user = make(username, f"{username}@example.invalid", f"pw-{username}-123")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def admin_user(django_user_model):
    return _user(django_user_model, "ada", "Admin", superuser=True)


@pytest.fixture
def marketer(django_user_model):
    return _user(django_user_model, "mark", "Marketing")


@pytest.fixture
def auditor(django_user_model):
    return _user(django_user_model, "audrey", "Auditor")


# -- browser tests --------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium: Playwright cannot download its own browser here. In CI a
    missing browser fails the run (a skipped browser test would hide it); elsewhere the
    browser tests skip, saying why."""
    if not CHROMIUM.exists():
        message = "no Chromium at /usr/bin/chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture
def login(page, live_server):
    """login(user) opens the console in the browser as that user, via the login form."""

    def do_login(user, password: str | None = None):
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password or f"pw-{user.username}-123")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return page

    return do_login


@pytest.fixture
def credential(db, sandbox):
    from campaigns.models import Credential

    credential = Credential(
        name="Sandbox",
        app_id=APP_ID,
        workspace_id=WORKSPACE,
        access_key_id=SANDBOX_KEY_ID,
        endpoint=sandbox.url,
        rate_limit=1000,
    )
    credential.set_secret(SANDBOX_SECRET)
    credential.save()
    return credential


@pytest.fixture
def template(db):
    from campaigns.models import MessageTemplate

    return MessageTemplate.objects.create(
        app_id=APP_ID, name=TEMPLATE_NAME, title="Hi #name#", body="Coupon #coupon# for you"
    )


@pytest.fixture
def target_list(db):
    from campaigns.models import Target, TargetList

    target_list = TargetList.objects.create(name="Twenty-five users", delivery_type=3)
    Target.objects.bulk_create(
        Target(target_list=target_list, target_id=f"user-{n:03d}") for n in range(25)
    )
    target_list.target_count = 25
    target_list.save()
    return target_list
