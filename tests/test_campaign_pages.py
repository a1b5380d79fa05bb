"""The campaign builder, review, launch and campaign page through the test client."""

from __future__ import annotations

import html

import pytest

from accounts.models import UserPreference
from campaigns.models import AuditEvent, Batch, Campaign, Run, RunTally
from tests.pipeline_helpers import make_campaign

pytestmark = pytest.mark.django_db


def builder_data(credential, template, target_list, **changes) -> dict:
    data = {
        "task_name": "Autumn sale",
        "credential": credential.pk,
        "template": template.pk,
        "target_list": target_list.pk,
        "expired_seconds": "300",
        "strategy_type": "0",
        "value__name": "Ann",
        "value__coupon": "C-1",
        "sms_strategy": "0",
    }
    data.update(changes)
    return data


def test_builder_saves_a_valid_draft_and_goes_to_review(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    response = client.post("/campaigns/new/", builder_data(credential, template, target_list))
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/campaigns/{campaign.pk}/review/"
    assert campaign.template_values == {"name": "Ann", "coupon": "C-1"}
    assert campaign.status == Campaign.Status.DRAFT
    assert AuditEvent.objects.filter(action="campaign.create", actor=marketer).exists()


def test_builder_saves_a_draft_with_rule_errors_next_to_the_fields(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    data = builder_data(
        credential,
        template,
        target_list,
        sms_strategy="2",
        value__coupon="",
        ext_key_0="taskId",
        ext_value_0="x",
    )
    response = client.post("/campaigns/new/", data, follow=True)
    page = response.content.decode()
    campaign = Campaign.objects.get()  # the draft is saved anyway
    assert response.redirect_chain == [(f"/campaigns/{campaign.pk}/edit/", 302)]
    form = response.context["form"]
    assert form.errors["sms_sign_name"]
    assert "#coupon#" in " ".join(form.errors["value__coupon"])
    assert "taskId" in " ".join(form.errors["ext_key_0"])
    assert "cannot be launched until the marked fields are fixed" in page
    # the summary at the top links each problem to its input
    assert 'href="#id_sms_sign_name"' in page and 'href="#id_ext_key_0"' in page


def test_fixing_a_draft_with_rule_errors_edits_that_draft(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    data = builder_data(credential, template, target_list, value__coupon="")
    client.post("/campaigns/new/", data)
    campaign = Campaign.objects.get()
    # reopened later: its problem shows at once, before any save
    page = client.get(f"/campaigns/{campaign.pk}/edit/").content.decode()
    assert 'href="#id_value__coupon"' in page and "#coupon#" in page
    response = client.post(
        f"/campaigns/{campaign.pk}/edit/", builder_data(credential, template, target_list)
    )
    assert response["Location"] == f"/campaigns/{campaign.pk}/review/"
    assert Campaign.objects.count() == 1
    assert Campaign.objects.get().template_values["coupon"] == "C-1"


def test_builder_shows_loop_strategy_content(client, marketer, credential, template, target_list):
    client.force_login(marketer)
    data = builder_data(
        credential,
        template,
        target_list,
        strategy_type="2",
        loop_circle_type="2",
        loop_weekdays=["1", "4"],
        loop_start_date="2099-01-01",
        loop_end_date="2099-02-01",
        loop_time="09:30:00",
    )
    response = client.post("/campaigns/preview/", data)
    page = html.unescape(response.content.decode())
    # The dates are far in the future, so the loop rules fail, but the JSON still renders.
    assert '"circleType":2' in page and '"circleValue":[1,4]' in page
    assert '"time":"09:30:00"' in page


def test_review_shows_first_call_params_calls_and_no_secret(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list)
    client.force_login(marketer)
    page = client.get(f"/campaigns/{campaign.pk}/review/").content.decode()
    assert "TargetMsgkey" in page and "TemplateKeyValue" in page
    assert f"pc{campaign.pk}r1n" in page  # the msgKeys the first call will carry
    assert 'data-testid="review-calls">3 ' in page
    assert credential.secret() not in page
    assert credential.access_key_id not in page


def test_launch_needs_confirmation_and_double_posts_start_one_run(
    client, marketer, credential, template, target_list, sandbox
):
    campaign = make_campaign(credential, template, target_list)
    client.force_login(marketer)
    client.post(f"/campaigns/{campaign.pk}/launch/")
    assert Run.objects.count() == 0
    first = client.post(f"/campaigns/{campaign.pk}/launch/", {"confirm": "yes"})
    second = client.post(f"/campaigns/{campaign.pk}/launch/", {"confirm": "yes"})
    assert first.status_code == second.status_code == 302
    assert Run.objects.filter(campaign=campaign).count() == 1
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.QUEUED
    assert campaign.launched_by == marketer


def test_progress_fragment_polls_while_active_and_stops_when_done(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.SENDING)
    run = Run.objects.create(
        campaign=campaign, number=1, total=25, sent=4, status=Run.Status.SENDING
    )
    # live counts = folded + each sending thread's tally; in flight = claimed batches
    RunTally.objects.create(run=run, shard=0, sent=3)
    RunTally.objects.create(run=run, shard=1, sent=3, failed=1)
    Batch.objects.create(
        run=run, campaign=campaign, seq=0, status=Batch.Status.CLAIMED, target_count=5
    )
    client.force_login(marketer)
    page = client.get(f"/campaigns/{campaign.pk}/progress/").content.decode()
    assert 'hx-trigger="every 1s"' in page and 'data-pct="44"' in page  # (10 + 1) of 25
    counters = page.split('data-testid="counters"', 1)[1]
    for label, value in [("Pending", 9), ("In flight", 5), ("Sent", 10), ("Failed", 1)]:
        assert f"<dt>{label}</dt><dd" in counters
        assert f">{value}</dd>" in counters.split(f"<dt>{label}</dt>", 1)[1].split("</div>")[0]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.COMPLETED)
    done = client.get(f"/campaigns/{campaign.pk}/progress/?was_active=1", HTTP_HX_REQUEST="true")
    assert "every 1s" not in done.content.decode()
    assert done["HX-Trigger"] == "campaign-finished" and "HX-Refresh" not in done


def test_progress_fragment_reads_the_campaign_and_its_latest_sending_run_in_one_statement(
    client, marketer, credential, template, target_list
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.SENDING)
    client.force_login(marketer)
    page = client.get(f"/campaigns/{campaign.pk}/progress/").content.decode()
    assert "Not launched yet." in page and 'data-testid="counters"' not in page
    Run.objects.create(campaign=campaign, number=1, total=25, sent=25, status=Run.Status.COMPLETED)
    retry = Run.objects.create(
        campaign=campaign, number=2, kind=Run.Kind.RETRY, total=8, status=Run.Status.SENDING
    )
    RunTally.objects.create(run=retry, shard=0, sent=2)
    # a recall run is newer but is not a sending run: the fragment shows the retry
    Run.objects.create(
        campaign=campaign, number=3, kind=Run.Kind.RECALL, total=99, status=Run.Status.SENDING
    )
    with CaptureQueriesContext(connection) as queries:
        page = client.get(f"/campaigns/{campaign.pk}/progress/").content.decode()
    assert 'data-pct="25"' in page  # 2 of 8
    counters = page.split('data-testid="counters"', 1)[1]
    assert "<dt>Total</dt><dd>8 <span" in counters and "(planning)" in counters
    assert ">6</dd>" in counters.split("<dt>Pending</dt>", 1)[1].split("</div>")[0]
    reads = [q["sql"] for q in queries if "campaigns_" in q["sql"] and "session" not in q["sql"]]
    reads = [sql for sql in reads if "userpreference" not in sql]
    assert len(reads) == 1 and "campaigns_runtally" in reads[0] and "campaigns_campaign" in reads[0]
    Run.objects.filter(pk=retry.pk).update(planning_done=True)
    page = client.get(f"/campaigns/{campaign.pk}/progress/").content.decode()
    assert "(planning)" not in page
    assert client.get(f"/campaigns/{campaign.pk + 1}/progress/").status_code == 404


def test_a_progress_poll_asks_about_its_user_in_one_statement(
    client, marketer, credential, template, target_list
):
    """Language, enrolment and roles come from one statement (accounts.user_facts): a
    poll is the session, the user, those facts and the progress read."""
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_otp.plugins.otp_totp.models import default_key

    from accounts.models import SealedTOTPDevice

    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.SENDING)
    Run.objects.create(campaign=campaign, number=1, total=8, status=Run.Status.SENDING)
    UserPreference.objects.create(user=marketer, language="zh-hans")
    marketer.groups.add(Group.objects.create(name="Newsletter"))  # not a role: ignored
    unconfirmed = SealedTOTPDevice(user=marketer, name="half-enrolled", confirmed=False)
    unconfirmed.set_key(default_key())
    unconfirmed.save()
    client.force_login(marketer)
    url = f"/campaigns/{campaign.pk}/progress/"
    client.get(url, HTTP_HX_REQUEST="true")  # the first request saves the session's clock
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url, HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and "总数" in page.content.decode()  # zh-hans "Total"
    # the first table each statement names: session, user, facts, progress
    tables = ["django_session", "auth_user", "campaigns_userpreference", "campaigns_campaign"]
    firsts = [min(tables, key=lambda t: (q["sql"] + t).index(t)) for q in queries]
    assert firsts == tables
    facts = queries[2]["sql"]
    assert "auth_user_groups" in facts and "accounts_sealedtotpdevice" in facts
    # a confirmed authenticator holds the unverified session at the code page
    confirmed = SealedTOTPDevice(user=marketer, name="app", confirmed=True)
    confirmed.set_key(default_key())
    confirmed.save()
    held = client.get(url, HTTP_HX_REQUEST="true")
    assert held.status_code == 302 and held["Location"].startswith("/account/2fa/verify/")
    # without the Marketing group the same poll is refused
    SealedTOTPDevice.objects.filter(user=marketer).delete()
    marketer.groups.remove(Group.objects.get(name="Marketing"))
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 403


def test_auditor_reads_but_cannot_act(client, auditor, credential, template, target_list):
    campaign = make_campaign(credential, template, target_list)
    client.force_login(auditor)
    assert client.get(f"/campaigns/{campaign.pk}/").status_code == 200
    assert client.get("/campaigns/").status_code == 200
    for url in (
        f"/campaigns/{campaign.pk}/launch/",
        f"/campaigns/{campaign.pk}/cancel/",
        f"/campaigns/{campaign.pk}/duplicate/",
        "/campaigns/new/",
    ):
        assert client.post(url, {"confirm": "yes"}).status_code == 403
    assert Run.objects.count() == 0


def test_duplicate_makes_a_new_draft(client, marketer, credential, template, target_list):
    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.COMPLETED)
    client.force_login(marketer)
    response = client.post(f"/campaigns/{campaign.pk}/duplicate/")
    copy = Campaign.objects.exclude(pk=campaign.pk).get()
    assert response["Location"] == f"/campaigns/{copy.pk}/edit/"
    assert copy.status == Campaign.Status.DRAFT
    assert copy.task_name == "Copy of Spring sale"
    assert copy.template_values == campaign.template_values


def test_campaign_list_filters_by_status_and_search(
    client, marketer, credential, template, target_list
):
    make_campaign(credential, template, target_list, task_name="Alpha")
    make_campaign(
        credential, template, target_list, task_name="Beta", status=Campaign.Status.COMPLETED
    )
    client.force_login(marketer)
    page = client.get("/campaigns/?status=completed").content.decode()
    assert "Beta" in page and "Alpha" not in page
    page = client.get("/campaigns/?q=alp").content.decode()
    assert "Alpha" in page and "Beta" not in page


def test_language_choice_is_remembered_per_user(client, marketer):
    client.force_login(marketer)
    client.post("/account/language/", {"language": "zh-hans", "next": "/"})
    assert UserPreference.objects.get(user=marketer).language == "zh-hans"
    client.cookies.clear()
    client.force_login(marketer)
    response = client.get("/")
    assert response["Content-Language"] == "zh-hans"


def test_dashboard_shows_running_campaigns_and_todays_numbers(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(
        credential, template, target_list, task_name="Live one", status=Campaign.Status.SENDING
    )
    run = Run.objects.create(
        campaign=campaign, number=1, total=25, sent=15, failed=2, status=Run.Status.SENDING
    )
    RunTally.objects.create(run=run, shard=3, sent=5)  # not folded yet: still counted
    client.force_login(marketer)
    page = client.get("/").content.decode()
    assert "Live one" in page
    assert 'data-pct="88"' in page  # (20 + 2) of 25
    assert 'data-testid="sent-today">20<' in page
    assert 'data-testid="failed-today">2<' in page
    assert "Sandbox" in page


def test_progress_polls_do_not_write_the_session_every_time(
    client, marketer, credential, template, target_list
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.SENDING)
    client.force_login(marketer)
    client.get(f"/campaigns/{campaign.pk}/progress/")  # the first request refreshes it
    with CaptureQueriesContext(connection) as queries:
        client.get(f"/campaigns/{campaign.pk}/progress/")
    writes = [
        q["sql"]
        for q in queries
        if "django_session" in q["sql"]
        and q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT"))
    ]
    assert writes == []


def test_preview_names_each_missing_loop_field_once(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    data = builder_data(credential, template, target_list, strategy_type="2")
    page = html.unescape(client.post("/campaigns/preview/", data).content.decode())
    errors = page.split('data-testid="strategy-error">', 1)[1].split("</ul>", 1)[0]
    message = "This field is missing or invalid for a loop push."
    for label in ("Loop start date:", "Loop end date:", "Repeat:", "Time of day:"):
        assert errors.count(label) == 1, label
    # every line names its field; the shared message is never shown bare
    lines = [line.split("</li>")[0] for line in errors.split("<li>")[1:]]
    assert len(lines) == len(set(lines)) >= 4
    assert all(line.endswith(message) and not line.startswith(message) for line in lines)


def test_preview_marks_a_blank_template_value(client, marketer, credential, template, target_list):
    client.force_login(marketer)
    data = builder_data(credential, template, target_list, value__coupon="")
    page = html.unescape(client.post("/campaigns/preview/", data).content.decode())
    assert "‹coupon: value missing›" in page
    assert "‹name: value missing›" not in page  # the value given is shown as typed


def test_more_extended_keys_than_rows_is_an_error_and_saves_nothing(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    extra = {"ext_key_20": "k21", "ext_value_20": "v", "ext_key_21": "k22"}
    data = builder_data(credential, template, target_list, ext_key_0="a", ext_value_0="1", **extra)
    response = client.post("/campaigns/new/", data)
    assert response.status_code == 200
    assert Campaign.objects.count() == 0
    message = " ".join(response.context["form"].errors["ext_key_0"])
    assert "At most 20 extended parameters" in message and "2 more keys" in message
    page = response.content.decode()
    assert 'href="#id_ext_key_0"' in page and 'id="extended-full"' in page
