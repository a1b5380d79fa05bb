"""The markup behind the accessibility features, without a browser: the error summary
and the "Error:" title after a failed submit (in English and Chinese), error pages in the
console's layout, the live-region pattern of polled fragments, and labelled scroll
boxes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django import forms
from django.template.loader import render_to_string
from django.utils import translation

from accounts.models import UserPreference
from campaigns.models import Campaign, Run
from campaigns.templatetags.a11y import summary_lines
from tests.pipeline_helpers import make_campaign

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def title(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip()


def test_failed_builder_submit_has_an_error_title_and_a_summary_linking_each_field(
    client, marketer
):
    client.force_login(marketer)
    html = client.post("/campaigns/new/", {}).content.decode()
    assert title(html).startswith("Error: New campaign")
    assert 'id="error-summary" tabindex="-1"' in html
    summary = html.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
    assert "6 problems to fix" in summary
    for field in ("task_name", "credential", "template", "target_list", "expired_seconds"):
        assert f'href="#id_{field}"' in summary
    assert 'href="#id_strategy_type_0"' in summary  # a radio group: its first option
    assert 'id="id_task_name"' in html  # the link target exists


def test_a_page_without_errors_has_no_summary_and_a_plain_title(client, marketer):
    client.force_login(marketer)
    html = client.get("/campaigns/new/").content.decode()
    assert "error-summary" not in html
    assert title(html).startswith("New campaign")


def test_error_title_and_summary_are_translated(client, marketer):
    UserPreference.objects.create(user=marketer, language="zh-hans")
    client.force_login(marketer)
    html = client.post("/campaigns/new/", {}).content.decode()
    assert title(html).startswith("错误：")
    assert "有 6 处需要修改" in html
    assert "任务名称：这个字段是必填项。" in html
    assert '<html lang="zh-hans">' in html


def test_summary_links_a_radio_group_to_its_first_option_and_lists_hidden_field_errors():
    class Form(forms.Form):
        colour = forms.ChoiceField(choices=[("r", "Red"), ("g", "Green")], widget=forms.RadioSelect)
        token = forms.CharField(widget=forms.HiddenInput)

        def clean(self):
            raise forms.ValidationError("Whole form is wrong.")

    lines = summary_lines(Form(data={}))
    assert [(line.label, line.target_id) for line in lines] == [
        ("", ""),
        ("Colour", "id_colour_0"),
        ("", ""),
    ]
    assert lines[0].message == "Whole form is wrong."


def test_error_pages_use_the_console_layout_in_the_users_language(client, marketer):
    client.force_login(marketer)
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    html = missing.content.decode()
    assert "Page not found" in html and "error 404" in html and 'id="main"' in html
    forbidden = client.get("/credentials/")
    assert forbidden.status_code == 403 and "error 403" in forbidden.content.decode()
    UserPreference.objects.create(user=marketer, language="zh-hans")
    html = client.get("/no-such-page/").content.decode()
    assert "找不到页面" in html and '<html lang="zh-hans">' in html


def test_the_500_page_renders_with_no_request():
    with translation.override("en"):
        html = render_to_string("500.html")
    assert '<html lang="en">' in html and "Something went wrong" in html
    assert "<title>Something went wrong · Push Console</title>" in html


def test_progress_fragment_states_a_short_summary_and_is_not_itself_a_live_region(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(
        credential, template, target_list, task_name="Live sale", status=Campaign.Status.SENDING
    )
    Run.objects.create(campaign=campaign, number=1, total=25, sent=4, status=Run.Status.SENDING)
    client.force_login(marketer)
    html = client.get(f"/campaigns/{campaign.pk}/progress/").content.decode()
    assert f'data-live-key="campaign-{campaign.pk}"' in html
    assert 'data-live-state="sending"' in html
    assert 'data-live-summary="Live sale: Sending, 4 of 25 sent, 0 failed"' in html
    assert "aria-live" not in html


def test_only_the_one_stable_status_element_is_a_live_region():
    """Polled and swapped fragments say data-live-summary; the one role="status" element
    in base.html speaks it. A live region inside a swapped fragment is replaced with it,
    and screen readers then announce nothing, or everything."""
    live = sorted(
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if "aria-live" in path.read_text()
    )
    assert live == ["base.html"]


def test_every_scroll_box_can_be_reached_by_keyboard_and_has_a_name():
    """A table or <pre> that may scroll sideways sits in a box that takes focus (so arrow
    keys scroll it) and is named for the screen reader (WCAG 2.1.1, 4.1.2)."""
    problems = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r'<(div class="table-responsive[^"]*"|pre)([^>]*)>', text):
            tag = match.group(0)
            if "table-responsive" in tag or "scroll-box" in tag or match.group(1) == "pre":
                inside_table_cell = text[: match.start()].rstrip().endswith("<td>")
                if inside_table_cell or "text-wrap" in tag:
                    continue  # scrolls with its table's box / wraps, never scrolls
                if 'tabindex="0"' not in tag or "aria-label" not in tag:
                    problems.append(f"{path.relative_to(TEMPLATES)}: {tag}")
    assert not problems, "\n".join(problems)
