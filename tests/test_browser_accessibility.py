"""WCAG 2.1 AA in a real Chromium: axe-core over every page of the console, as each role,
in English and Chinese, fails on any serious or critical finding; and at 320 CSS pixels
no page scrolls sideways (reflow, 1.4.10)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import expect

from accounts.models import UserPreference
from campaigns import lifecycle
from campaigns.models import Batch
from tests.a11y_helpers import blocking_violations, scrolls_sideways
from tests.pipeline_helpers import drain, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGUAGES = ["en", "zh-hans"]
# 320 is WCAG 1.4.10's width; 1000 and 1200 sit just below and at the menu's breakpoints.
REFLOW_WIDTHS = (320, 1000, 1200)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(admin_user, marketer, auditor, credential, template, target_list, redis_conn, settings):
    """A sent campaign (calls, attempts, outcomes), a queued one that is still polling for
    progress (no worker runs it), and a draft ready for review."""
    settings.PUSH_JOB_SECONDS = 5
    sent = make_campaign(credential, template, target_list, task_name="Sent sale")
    lifecycle.launch(sent, marketer)
    drain()
    queued = make_campaign(credential, template, target_list, task_name="Queued sale")
    lifecycle.launch(queued, marketer)
    draft = make_campaign(credential, template, target_list, task_name="Draft sale")
    return {
        "sent": sent,
        "queued": queued,
        "draft": draft,
        "batch": Batch.objects.filter(run__campaign=sent).order_by("seq").first(),
        "credential": credential,
        "template": template,
        "target_list": target_list,
        "victim": marketer,
        "users": {"admin": admin_user, "marketer": marketer, "auditor": auditor},
    }


def steps(world) -> dict[str, list[tuple[str, object]]]:
    """Per role, the walk: (label, path to open with its expected status, or a function
    that brings the page there through the UI)."""
    sent, draft, queued = world["sent"].pk, world["draft"].pk, world["queued"].pk
    credential, tpl, lst = world["credential"].pk, world["template"].pk, world["target_list"].pk

    def submit_empty(path):
        def go(page, base):
            page.goto(base + path)
            page.locator("main form[method='post'] button[type='submit']").last.click()
            expect(page.get_by_test_id("error-summary")).to_be_focused()

        return go

    def test_connection(page, base):
        page.goto(base + reverse("credential-edit", args=[credential]))
        page.locator("main form[action$='/test/'] button").click()
        page.wait_for_url("**/test/")

    def verify_chain(page, base):
        page.goto(base + reverse("audit-list"))
        page.locator("main form[action$='/verify/'] button").click()
        page.wait_for_url("**/verify/")

    def paste(text, shows):
        def go(page, base):
            page.goto(base + reverse("target-list-detail", args=[lst]))
            page.locator("#id_text").fill(text)
            page.locator("form[action$='/paste/'] button[type='submit']").click()
            expect(page.locator(shows)).to_be_visible()

        return go

    def open_menu(page, base):
        # Bootstrap animates the button's colours for 0.15 s; with reduced motion it does
        # not, so axe measures the open state rather than a frame of the transition.
        page.emulate_media(reduced_motion="reduce")
        page.goto(base + reverse("home"))
        if page.locator(".navbar-toggler").is_visible():
            page.locator(".navbar-toggler").click()
        page.locator("#user-menu").click()
        expect(page.locator(".dropdown-menu.show")).to_be_visible()

    admin = [
        ("dashboard", (reverse("home"), 200)),
        ("account menu open", open_menu),
        ("campaign list", (reverse("campaign-list"), 200)),
        ("builder", (reverse("campaign-create"), 200)),
        ("builder, failed submit", submit_empty(reverse("campaign-create"))),
        ("builder, editing a draft", (reverse("campaign-edit", args=[draft]), 200)),
        ("review", (reverse("campaign-review", args=[draft]), 200)),
        ("campaign page, sent", (reverse("campaign-detail", args=[sent]), 200)),
        ("campaign page, queued and polling", (reverse("campaign-detail", args=[queued]), 200)),
        ("templates", (reverse("template-list"), 200)),
        ("template, new", (reverse("template-create"), 200)),
        ("template, failed submit", submit_empty(reverse("template-create"))),
        ("template, edit", (reverse("template-edit", args=[tpl]), 200)),
        ("template, delete", (reverse("template-delete", args=[tpl]), 200)),
        ("target lists", (reverse("target-list-list"), 200)),
        ("target list, new", (reverse("target-list-create"), 200)),
        ("target list", (reverse("target-list-detail", args=[lst]), 200)),
        ("target list, failed paste", paste("", "#error-summary")),
        ("target list, import outcome", paste("new-1\nnew-2\n" + "x" * 300, "#import-errors")),
        ("target list, delete", (reverse("target-list-delete", args=[lst]), 200)),
        ("send history", (reverse("history-list"), 200)),
        ("send history, search", (reverse("history-list") + "?target_id=user-007", 200)),
        ("batch page", (reverse("history-batch", args=[world["batch"].pk]), 200)),
        ("audit trail", (reverse("audit-list"), 200)),
        ("audit chain check", verify_chain),
        ("credentials", (reverse("credential-list"), 200)),
        ("credential, new", (reverse("credential-create"), 200)),
        ("credential, failed submit", submit_empty(reverse("credential-create"))),
        ("credential, edit", (reverse("credential-edit", args=[credential]), 200)),
        ("credential, connection test", test_connection),
        ("credential, delete", (reverse("credential-delete", args=[credential]), 200)),
        ("users", (reverse("user-list"), 200)),
        ("user, new", (reverse("user-create"), 200)),
        ("user, failed submit", submit_empty(reverse("user-create"))),
        ("user, edit", (reverse("user-edit", args=[world["victim"].pk]), 200)),
        ("user, password", (reverse("user-password", args=[world["victim"].pk]), 200)),
        ("two-factor sign-in", (reverse("two-factor-setup"), 200)),
        ("error 404", ("/no-such-page/", 404)),
        ("error 404, no such campaign", (reverse("campaign-detail", args=[999999]), 404)),
    ]
    marketer = [
        ("dashboard", (reverse("home"), 200)),
        ("campaign page with actions", (reverse("campaign-detail", args=[queued]), 200)),
        ("template, edit", (reverse("template-edit", args=[tpl]), 200)),
        ("error 403", (reverse("credential-list"), 403)),
    ]
    auditor = [
        ("dashboard", (reverse("home"), 200)),
        ("campaign page", (reverse("campaign-detail", args=[sent]), 200)),
        ("template, read only", (reverse("template-edit", args=[tpl]), 200)),
        ("target list, read only", (reverse("target-list-detail", args=[lst]), 200)),
        ("audit trail", (reverse("audit-list"), 200)),
    ]
    return {"admin": admin, "marketer": marketer, "auditor": auditor}


def walk(page, live_server, login, world, language: str, check) -> list[str]:
    """Open every page as every role in `language`, call check(page) on each, and return
    the problems it reported, each under the page's label."""
    problems = []
    base = live_server.url

    def visit(role, label, step):
        if callable(step):
            step(page, base)
        else:
            path, status = step
            response = page.goto(base + path)
            assert response.status == status, f"{role}: {label}: {path} answered {response.status}"
        page.wait_for_load_state()
        # htmx marks elements whose request is in flight; polled pages never go idle. (A
        # function, not an expression: Playwright polls an expression with eval(), which
        # the page's CSP rightly refuses.)
        page.wait_for_function("() => !document.querySelector('.htmx-request')")
        problems.extend(f"{language} {role}: {label}: {p}" for p in check(page))

    # signed out first: the login page, and a failed sign-in
    page.context.add_cookies([{"name": "django_language", "value": language, "url": base}])
    visit("anonymous", "login", (reverse("login"), 200))
    page.locator("#id_username").fill("nobody")
    page.locator("#id_password").fill("wrong")
    page.locator("main button[type='submit']").click()
    expect(page.get_by_test_id("error-summary")).to_be_focused()
    problems.extend(f"{language} anonymous: login, failed: {p}" for p in check(page))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):  # until sign-in pauses for "nobody"
        page.locator("#id_username").fill("nobody")
        page.locator("#id_password").fill("wrong")
        page.locator("main button[type='submit']").click()
        page.wait_for_load_state()
    expect(page.get_by_test_id("lockout")).to_be_visible()
    problems.extend(f"{language} anonymous: lockout: {p}" for p in check(page))

    for role, role_steps in steps(world).items():
        user = world["users"][role]
        page.context.clear_cookies()
        UserPreference.objects.filter(user=user).delete()
        login(user)
        UserPreference.objects.create(user=user, language=language)
        for label, step in role_steps:
            visit(role, label, step)
        expect(page.locator("html")).to_have_attribute("lang", language)
    return problems


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_passes_axe_at_1280_and_reflows_at_320_css_pixels(
    page, live_server, login, world, language
):
    """On each page: axe-core at 1280 x 900, then the same page at 320 px (and at the
    menu's breakpoints) must not scroll sideways (one walk for both keeps the suite
    short)."""

    def check(page):
        found = [f"axe: {line}" for line in blocking_violations(page)]
        for width in REFLOW_WIDTHS:
            page.set_viewport_size({"width": width, "height": 640})
            extra = scrolls_sideways(page)
            if extra > 0:
                found.append(f"reflow: {extra}px wider than the {width}px viewport")
        page.set_viewport_size({"width": 1280, "height": 900})
        return found

    page.set_viewport_size({"width": 1280, "height": 900})
    problems = walk(page, live_server, login, world, language, check)
    assert not problems, "WCAG 2.1 A/AA (axe-core), 1.4.10 reflow:\n" + "\n".join(problems)
