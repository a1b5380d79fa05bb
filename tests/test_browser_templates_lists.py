"""A marketer, in a real Chromium, builds a template with its live preview and fills a
target list from a file."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from campaigns.models import Credential, MessageTemplate, TargetList
from tests.conftest import APP_ID

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIELD_TIMEOUT = 5000  # ms


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def app_credential(db):
    credential = Credential(
        name="Main", app_id=APP_ID, workspace_id="default", access_key_id="LTAIbrowser01"
    )
    credential.set_secret("browser-secret")
    credential.save()
    return credential


def fits_1280(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_marketer_creates_template_with_live_preview(login, live_server, marketer, app_credential):
    page = login(marketer)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.set_default_timeout(FIELD_TIMEOUT)
    page.goto(f"{live_server.url}/templates/new/")
    page.get_by_label("AppId").select_option(APP_ID)

    # A comma in the name: the message stands next to the field, nothing is saved.
    page.get_by_label("Template name").fill("spring,sale")
    page.get_by_label("Title").fill("Hi")
    page.get_by_label("Body").fill("Body")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("#error_1_id_name")).to_have_text("Template name may not contain commas.")
    assert not MessageTemplate.objects.exists()

    # Typing placeholders lists them and the preview follows the sample values.
    page.get_by_label("Template name").fill("spring_sale")
    title = page.get_by_label("Title")
    title.fill("")
    title.press_sequentially("Hi #name#")
    body = page.get_by_label("Body")
    body.fill("")
    body.press_sequentially("Coupon #coupon#")
    placeholders = page.locator("#placeholder-list code")
    expect(placeholders).to_have_text(["#name#", "#coupon#"])
    page.get_by_label("Sample value for #name#").press_sequentially("<b>Ann</b>")
    expect(page.locator("[data-preview=title]")).to_have_text("Hi <b>Ann</b>")  # escaped
    page.get_by_label("Sample value for #coupon#").press_sequentially("C-42")
    expect(page.locator("[data-preview=body]")).to_have_text("Coupon C-42")
    # ...and a screen reader hears it as one sentence from the page's status element
    expect(page.get_by_test_id("live-status")).to_have_text("Rendered: Hi <b>Ann</b>. Coupon C-42")
    assert fits_1280(page)

    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("alert")).to_have_text("Template “spring_sale” saved.")
    expect(page.get_by_role("cell", name="#name#, #coupon#")).to_be_visible()
    assert MessageTemplate.objects.get(name="spring_sale").body == "Coupon #coupon#"


def test_marketer_fills_a_target_list_from_a_file(login, live_server, marketer):
    page = login(marketer)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.set_default_timeout(FIELD_TIMEOUT)
    page.goto(f"{live_server.url}/lists/new/")
    page.get_by_label("Name").fill("Spring VIPs")
    page.get_by_label("Delivery type").select_option(label="User ID")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_role("heading", name="Spring VIPs")).to_be_visible()

    page.get_by_label("File (CSV or TXT)").set_input_files(
        {
            "name": "vips.txt",
            "mimeType": "text/plain",
            "buffer": b"alice\nbob\nalice\nbad id\ncarol\n",
        }
    )
    page.get_by_role("button", name="Upload and import").click()
    counts = page.locator("#import-counts")
    expect(counts.locator("[data-count=added]")).to_have_text("3")
    expect(counts.locator("[data-count=duplicates_in_file]")).to_have_text("1")
    expect(counts.locator("[data-count=already_in_list]")).to_have_text("0")
    expect(counts.locator("[data-count=invalid]")).to_have_text("1")
    error_row = page.locator("#import-errors tbody tr")
    expect(error_row).to_have_text(re.compile(r"4\s*target ID contains whitespace\s*bad id"))
    expect(page.locator("#target-count")).to_have_text("3")
    expect(page.locator("#target-ids li")).to_have_text(["alice", "bob", "carol"])
    expect(page.get_by_role("link", name="Download all invalid rows (CSV)")).to_be_visible()
    assert fits_1280(page)
    assert TargetList.objects.get(name="Spring VIPs").target_count == 3


def test_large_file_shows_progress_until_the_job_is_done(
    login, live_server, marketer, settings, redis_conn
):
    from tests.pipeline_helpers import drain, make_list

    settings.TARGET_IMPORT_SYNC_BYTES = 1  # this small file goes through the job
    target_list = make_list(0, "background")
    page = login(marketer)
    page.set_default_timeout(FIELD_TIMEOUT)
    page.goto(f"{live_server.url}/lists/{target_list.pk}/")
    page.get_by_label("File (CSV or TXT)").set_input_files(
        {"name": "big.txt", "mimeType": "text/plain", "buffer": b"u1\nu2\nu2\n"}
    )
    page.get_by_role("button", name="Upload and import").click()
    expect(page.get_by_role("progressbar")).to_be_visible()
    expect(page.get_by_text("Waiting for a worker to start the import…")).to_be_visible()
    # The job's two passes, as the page's poll shows them (the job itself runs below).
    from campaigns.importing import ImportStatus

    [key] = [k.decode().rsplit(":", 1)[1] for k in redis_conn.keys("pushconsole:import:*")]
    status = ImportStatus(key, target_list.pk)
    status.progress(2, 6)
    expect(page.get_by_text("The rows are written once the whole file is read.")).to_be_visible()
    status.writing(1, 3)
    expect(
        page.get_by_text("Writing the valid ones to the list, sorted by target ID")
    ).to_be_visible()
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "43")
    drain()
    counts = page.locator("#import-counts")  # the next poll brings the outcome
    expect(counts.locator("[data-count=added]")).to_have_text("2")
    expect(counts.locator("[data-count=duplicates_in_file]")).to_have_text("1")
    expect(page.locator("#target-count")).to_have_text("2")  # updated out of band
    expect(page.locator("#import-status")).not_to_have_attribute("hx-trigger", re.compile("."))
