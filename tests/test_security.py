"""Security properties, checked against the running console: the stored AccessKey secret
never leaves the database (pages, logs, Redis, exports); every POST needs CSRF; stored
markup is escaped; sign-in lockout, two-factor, session rules; the RQ dashboard is for
Admins; jobs carry ids only; the CSP allows no inline script."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import zlib
from base64 import b32encode
from collections import deque
from html.parser import HTMLParser
from pathlib import Path

import django_rq
import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.urls import resolve
from django.urls.exceptions import Resolver404
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import default_key

from accounts.models import SealedTOTPDevice
from accounts.two_factor import PENDING_SESSION_KEY
from campaigns import lifecycle
from campaigns.models import (
    AuditEvent,
    Batch,
    Campaign,
    Delivery,
    Run,
    Target,
    TargetList,
)
from tests.conftest import SANDBOX_SECRET
from tests.pipeline_helpers import drain, make_campaign

SECRET = SANDBOX_SECRET.encode()
XSS = "<script>alert(1)</script>"
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
# GET on these shows a confirmation at most, but nothing here needs them crawled.
SKIP_PARTS = (
    "/static/",
    "/logout/",
    "/empty/",
    "/requeue",
    "/enqueue/",
    "/stop/",
    "/clear/",
    "/actions/",
    "/confirm-action/",
    "/delete/",
)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
MAX_PAGES = 400


# -- a small world that has really sent something ----------------------------------------


@pytest.fixture
def world(credential, template, target_list, sandbox, marketer, redis_conn, settings):
    settings.PUSH_BACKOFF_BASE = 0.01
    settings.PUSH_JOB_SECONDS = 5
    sent = make_campaign(credential, template, target_list, task_name="Sent sale")
    lifecycle.launch(sent, marketer)
    drain()
    sent.refresh_from_db()
    assert sent.status == Campaign.Status.COMPLETED
    draft = make_campaign(credential, template, target_list, task_name="Draft sale")
    return {"sent": sent, "draft": draft}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.post_actions: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "hx-get", "src"):
            if attrs.get(name):
                self.links.append(attrs[name])
        if tag == "form" and (attrs.get("method") or "").lower() == "post":
            self.post_actions.append(attrs.get("action"))
        if attrs.get("hx-post"):
            self.post_actions.append(attrs["hx-post"])


def _local(url: str | None, here: str) -> str | None:
    """The path of a same-site link (query and fragment dropped), else None."""
    if url is None or url == "":
        return here
    if not url.startswith("/") or url.startswith("//"):
        return None
    path = url.split("#")[0].split("?")[0]
    return path or None


def crawl(client: Client) -> tuple[dict[str, object], set[str]]:
    """Every GET page reachable from the home page and the resolver's argument-free
    routes (console pages first, then admin and RQ). Returns {path: response} and the
    paths forms POST to."""
    seeds = ["/"] + _plain_routes()
    console, back_office = deque(), deque()
    seen: set[str] = set()
    pages: dict[str, object] = {}
    post_targets: set[str] = set()

    def add(path: str | None) -> None:
        if path is None or path in seen or any(part in path for part in SKIP_PARTS):
            return
        seen.add(path)
        (back_office if path.startswith(("/admin/", "/rq/")) else console).append(path)

    for seed in seeds:
        add(seed)
    while (console or back_office) and len(pages) < MAX_PAGES:
        path = console.popleft() if console else back_office.popleft()
        response = client.get(path)
        pages[path] = response
        if response.status_code != 200 or response.get("Content-Type", "").find("html") < 0:
            continue
        parser = _Links()
        parser.feed(response.content.decode())
        for link in parser.links:
            add(_local(link, path))
        for action in parser.post_actions:
            target = _local(action, path)
            if target:
                post_targets.add(target)
    return pages, post_targets


def _plain_routes() -> list[str]:
    """Routes with no arguments, from the URL resolver (the crawl's extra seeds)."""
    from django.urls import get_resolver
    from django.urls.resolvers import URLPattern, URLResolver

    found = []

    def walk(patterns, prefix: str) -> None:
        for item in patterns:
            route = str(item.pattern)
            if "<" in route or route.startswith(("^", "admin/")):
                continue  # admin pages are reached through their links
            if isinstance(item, URLResolver):
                walk(item.url_patterns, prefix + route)
            elif isinstance(item, URLPattern):
                found.append("/" + prefix + route)

    walk(get_resolver().url_patterns, "")
    return found


def _url_name(path: str) -> str | None:
    try:
        return resolve(path).url_name
    except Resolver404:
        return None


@pytest.mark.django_db(transaction=True)
def test_the_secret_is_on_no_page_for_any_role_and_no_page_has_inline_script(
    world, admin_user, marketer, auditor
):
    for user in (admin_user, marketer, auditor):
        client = Client()
        client.force_login(user)
        pages, _posts = crawl(client)
        names = {_url_name(path) for path, r in pages.items() if r.status_code == 200}
        assert {"home", "campaign-detail", "history-list", "history-batch"} <= names, names
        for path, response in pages.items():
            body = (
                b"".join(response.streaming_content) if response.streaming else (response.content)
            )
            assert SECRET not in body, f"{user.username}: secret on {path}"
            if response.status_code != 200 or path.startswith(("/admin/", "/rq/")):
                continue
            csp = response.get("Content-Security-Policy", "")
            assert (
                "script-src 'self'" in csp
                and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
            ), path
            text = body.decode(errors="replace")
            assert not INLINE_SCRIPT.search(text), f"inline <script> on {path}"
            assert not INLINE_HANDLER.search(text), f"inline on*= handler on {path}"
        if user == admin_user:
            assert "credential-edit" in names and "rq_home" not in names  # /rq/ is home


def test_no_template_has_inline_script_or_event_handler():
    offenders = []
    for template in TEMPLATES_DIR.rglob("*.html"):
        text = template.read_text()
        if INLINE_SCRIPT.search(text) or INLINE_HANDLER.search(text):
            offenders.append(str(template.relative_to(TEMPLATES_DIR)))
    assert offenders == []


@pytest.mark.django_db
def test_csp_header_forbids_inline_script_and_framing(client, marketer):
    client.force_login(marketer)
    csp = client.get("/").headers["Content-Security-Policy"]
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in csp.split(";") if part.strip()
    )
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in directives["style-src"]


@pytest.mark.django_db(transaction=True)
def test_every_post_without_a_csrf_token_is_refused(world, admin_user):
    client = Client()
    client.force_login(admin_user)
    pages, post_targets = crawl(client)
    assert {"campaign-launch", "campaign-duplicate", "language-set", "logout"} <= {
        _url_name(path) for path in post_targets
    }
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    for path in sorted(post_targets | set(pages)):
        response = strict.post(path, {"confirm": "yes", "language": "en"})
        assert response.status_code == 403, f"POST {path} -> {response.status_code}"
    world["draft"].refresh_from_db()
    assert world["draft"].status == Campaign.Status.DRAFT


# -- logs, Redis, job arguments, exports ---------------------------------------------------


def redis_blobs(conn) -> list[bytes]:
    """Every key and value in the Redis DB, whatever its type (zlib data unpacked)."""
    blobs = []
    for key in conn.scan_iter(count=1000):
        blobs.append(key)
        kind = conn.type(key).decode()
        if kind == "string":
            values = [conn.get(key)]
        elif kind == "hash":
            values = [item for pair in conn.hgetall(key).items() for item in pair]
        elif kind == "list":
            values = conn.lrange(key, 0, -1)
        elif kind == "set":
            values = list(conn.smembers(key))
        elif kind == "zset":
            values = [member for member, _score in conn.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [repr(entry).encode() for entry in conn.xrange(key)]
        else:
            values = []
        for value in values:
            if value is None:
                continue
            blobs.append(value)
            try:
                blobs.append(zlib.decompress(value))  # RQ stores job data compressed
            except zlib.error:
                pass
    return blobs


@pytest.mark.django_db(transaction=True)
def test_jobs_carry_ids_only_and_redis_never_holds_the_secret(
    credential, template, target_list, sandbox, marketer, redis_conn, settings
):
    settings.PUSH_JOB_SECONDS = 5
    campaign = make_campaign(credential, template, target_list)
    lifecycle.launch(campaign, marketer)
    queue = django_rq.get_queue("push")
    jobs = queue.jobs
    assert jobs, "launch queued no job"
    for job in jobs:
        assert job.func_name.startswith("campaigns.jobs.")
        for value in [*job.args, *job.kwargs.values()]:
            assert isinstance(value, int) or (isinstance(value, str) and len(value) <= 64), (
                job.func_name,
                value,
            )
    blobs = redis_blobs(redis_conn)
    assert any(b"campaigns.jobs." in blob for blob in blobs)  # the scan sees job data
    assert not [blob for blob in blobs if SECRET in blob]
    drain()
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 25
    assert not [blob for blob in redis_blobs(redis_conn) if SECRET in blob]


@pytest.mark.django_db(transaction=True)
def test_no_log_line_holds_the_secret_even_at_debug(
    credential, template, target_list, sandbox, marketer, redis_conn, settings, caplog
):
    settings.PUSH_JOB_SECONDS = 5
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")  # Django's own default is INFO
    sdk = logging.getLogger("aliyunsdkcore")  # does not propagate: listen to it directly
    sdk.addHandler(caplog.handler)
    connection.force_debug_cursor = True  # SQL and its parameters are logged too
    try:
        campaign = make_campaign(credential, template, target_list)
        lifecycle.launch(campaign, marketer)
        drain()
    finally:
        connection.force_debug_cursor = False
        sdk.removeHandler(caplog.handler)
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 25
    assert any(r.name == "django.db.backends" for r in caplog.records)
    for record in caplog.records:
        line = caplog.handler.format(record)
        assert SANDBOX_SECRET not in line, record.name


@pytest.mark.django_db(transaction=True)
def test_exports_never_hold_the_secret(world, auditor):
    client = Client()
    client.force_login(auditor)
    response = client.get("/history/export.csv")
    body = b"".join(response.streaming_content)
    assert body.count(b"\n") == 26  # header + 25 deliveries
    assert SECRET not in body


# -- stored markup is escaped ---------------------------------------------------------------


@pytest.mark.django_db
def test_stored_markup_renders_escaped(client, auditor, credential, template):
    target_list = TargetList.objects.create(name=XSS, delivery_type=3, target_count=1)
    Target.objects.create(target_list=target_list, target_id=XSS)
    campaign = make_campaign(
        credential,
        template,
        target_list,
        task_name=XSS,
        template_values={"name": XSS, "coupon": XSS},
    )
    run = Run.objects.create(campaign=campaign, number=1)
    batch = Batch.objects.create(
        run=run, campaign=campaign, seq=0, target_count=1, result_message=XSS, request_id="R-1"
    )
    Delivery.objects.create(run=run, batch=batch, target_id=XSS, msg_key="pcXr1n1")
    client.force_login(auditor)
    for url in (
        f"/campaigns/{campaign.pk}/",
        f"/campaigns/{campaign.pk}/review/",
        "/campaigns/",
        "/history/",
        f"/history/?target_id={XSS}",
        f"/history/batches/{batch.pk}/",
    ):
        response = client.get(url)
        page = response.content.decode()
        assert response.status_code == 200, url
        assert XSS not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


# -- sign-in: lockout, sessions, two-factor ---------------------------------------------


def hides(request, field: str) -> bool:
    """True when Django's error reports mask `field` of this request's POST."""
    hidden = request.sensitive_post_parameters
    return hidden == "__ALL__" or field in hidden


def _login(client, username, password, ip="127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_repeated_wrong_passwords_lock_out_that_username_from_that_address(
    client, marketer, settings
):
    limit = settings.AXES_FAILURE_LIMIT
    for _try in range(limit - 1):
        assert _login(client, "mark", "wrong").status_code == 200  # the form again
    locked = _login(client, "mark", "wrong")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "too many wrong passwords" in page and "Wait 15 minutes" in page
    assert "script-src 'self'" in locked.headers["Content-Security-Policy"]
    # even the right password is refused now, from that address
    assert _login(client, "mark", "pw-mark-123").status_code == 429
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.filter(action="login.lockout").first()
    assert event is not None and event.details == {"username": "mark"} and event.ip
    # the same username from elsewhere still signs in: the lock is per username and IP
    assert _login(Client(), "mark", "pw-mark-123", ip="10.9.8.7").status_code == 302


def test_lockout_limits_come_from_the_environment():
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pushconsole.settings",
        "LOGIN_FAILURE_LIMIT": "3",
        "LOGIN_COOLOFF_MINUTES": "2",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=TEMPLATES_DIR.parent,
    ).stdout.split()
    assert out[-2:] == ["3", "120"]
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"


@pytest.mark.django_db
def test_sign_in_keeps_the_password_out_of_error_reports(client, marketer):
    response = _login(client, "mark", "wrong")
    assert hides(response.wsgi_request, "password")


@pytest.mark.django_db
def test_a_deactivated_users_old_session_is_refused(client, marketer):
    client.force_login(marketer)
    assert client.get("/campaigns/").status_code == 200
    marketer.is_active = False
    marketer.save()
    response = client.get("/campaigns/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
@override_settings(SESSION_ABSOLUTE_SECONDS=10**7)  # only the idle clock here
def test_sessions_end_after_the_idle_timeout_and_each_request_extends_them(client, marketer):
    idle = settings.SESSION_COOKIE_AGE
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_REFRESH_SECONDS <= 60
    with time_machine.travel("2030-01-01 09:00:00+00:00", tick=False) as clock:
        client.force_login(marketer)
        response = client.get("/")
        cookie = response.cookies[settings.SESSION_COOKIE_NAME]
        assert cookie["max-age"] == idle and cookie["httponly"] and cookie["samesite"] == "Lax"
        clock.shift(idle - 60)
        assert client.get("/").status_code == 200  # active: the clock restarts
        clock.shift(idle - 60)
        assert client.get("/").status_code == 200
        clock.shift(idle + 60)
        response = client.get("/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def totp_token(device: SealedTOTPDevice, steps_ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def pending(client) -> SealedTOTPDevice:
    """The device being enrolled in this client's session (not saved yet)."""
    device = SealedTOTPDevice()
    device.set_key(client.session[PENDING_SESSION_KEY])
    return device


@pytest.mark.django_db
def test_a_user_enrols_totp_and_then_needs_a_code_after_the_password(client, marketer, settings):
    client.force_login(marketer)
    page = client.get("/account/2fa/").content.decode()
    assert 'src="data:image/svg+xml;base64,' in page
    assert not SealedTOTPDevice.objects.exists()  # opening the page changes nothing
    device = pending(client)
    pending_key = device.bin_key
    assert b32encode(device.bin_key).decode() in page
    assert client.post("/account/2fa/", {"otp_token": "000000"}).status_code == 200
    assert not SealedTOTPDevice.objects.exists()
    response = client.post("/account/2fa/", {"otp_token": totp_token(device)})
    assert response.status_code == 302
    device = SealedTOTPDevice.objects.get(user=marketer)
    assert device.confirmed and device.bin_key == pending_key
    assert AuditEvent.objects.filter(action="2fa.enrol", actor=marketer).exists()

    browser = Client()
    assert _login(browser, "mark", "pw-mark-123").status_code == 302
    held = browser.get("/campaigns/")
    assert (
        held.status_code == 302 and held["Location"] == "/account/2fa/verify/?next=%2Fcampaigns%2F"
    )
    assert browser.get("/history/export.csv").status_code == 302
    wrong = browser.post("/account/2fa/verify/", {"otp_token": "000000", "next": "/campaigns/"})
    assert wrong.status_code == 200 and "not right" in wrong.content.decode()
    done = browser.post(
        "/account/2fa/verify/", {"otp_token": totp_token(device, 1), "next": "/campaigns/"}
    )
    assert done.status_code == 302 and done["Location"] == "/campaigns/"
    assert browser.get("/campaigns/").status_code == 200
    assert AuditEvent.objects.filter(action="login.2fa", actor=marketer).exists()
    assert AuditEvent.objects.filter(action="login.2fa_failure", actor=marketer).exists()
    assert hides(done.wsgi_request, "otp_token")


@pytest.mark.django_db
def test_a_user_may_turn_totp_off_with_a_code(client, marketer):
    device = SealedTOTPDevice(user=marketer, name="app", confirmed=True)
    device.set_key(default_key())
    device.save()
    client.force_login(marketer)
    client.post("/account/2fa/verify/", {"otp_token": totp_token(device)})
    assert client.get("/").status_code == 200
    client.post("/account/2fa/disable/", {"otp_token": totp_token(device, 1)})
    assert not SealedTOTPDevice.objects.filter(user=marketer).exists()
    assert AuditEvent.objects.filter(action="2fa.disable", actor=marketer).exists()


@pytest.mark.django_db
def test_admins_must_enrol_when_the_setting_requires_it(client, admin_user, marketer, settings):
    client.force_login(admin_user)
    assert client.get("/campaigns/").status_code == 200  # optional by default
    settings.REQUIRE_2FA_FOR_ADMINS = True
    response = client.get("/campaigns/")
    assert response.status_code == 302 and response["Location"] == "/account/2fa/"
    assert "must use two-factor" in client.get("/account/2fa/").content.decode()
    client.post("/account/2fa/", {"otp_token": totp_token(pending(client))})
    device = SealedTOTPDevice.objects.get(user=admin_user, confirmed=True)
    assert client.get("/campaigns/").status_code == 200
    # and may not turn it off
    client.post("/account/2fa/disable/", {"otp_token": totp_token(device, 1)})
    assert SealedTOTPDevice.objects.filter(user=admin_user, confirmed=True).exists()
    other = Client()
    other.force_login(marketer)
    assert other.get("/campaigns/").status_code == 200  # marketers stay optional


# -- the RQ dashboard and uploads ---------------------------------------------------------


@pytest.mark.django_db
def test_rq_dashboard_is_for_admins_only_even_for_staff(client, marketer, admin_user):
    marketer.is_staff = True
    marketer.save()
    client.force_login(marketer)
    assert client.get("/rq/").status_code == 403
    assert client.get("/rq/queues/0/").status_code == 403
    assert client.post("/rq/queues/0/empty/").status_code == 403
    assert client.get("/admin/django_rq/dashboard/").status_code == 404  # not in admin
    client.force_login(admin_user)
    response = client.get("/rq/")
    assert response.status_code == 200 and b"push" in response.content


@pytest.mark.django_db
def test_an_upload_claiming_a_huge_size_is_refused_before_reading(client, marketer):
    target_list = TargetList.objects.create(name="Bomb target", delivery_type=3)
    client.force_login(marketer)
    response = client.post(
        f"/lists/{target_list.pk}/upload/",
        {"column": ""},
        CONTENT_LENGTH=str(50 * 1024**3),
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Upload refused" in page
    assert not Target.objects.filter(target_list=target_list).exists()
