"""PushTemplate's extra model fields through the builder, review and a sandbox round trip;
the API-version warning; templates belonging to one app."""

from __future__ import annotations

import json
import re

import pytest

from campaigns import lifecycle
from campaigns.models import Batch, Campaign, Credential, MessageTemplate
from tests.pipeline_helpers import drain, make_campaign
from tests.test_campaign_pages import builder_data

pytestmark = pytest.mark.django_db


def test_builder_puts_transparent_rules_next_to_their_fields(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    data = builder_data(
        credential,
        template,
        target_list,
        notify_type="transparent",
        transparent_urgency="HIGH",
        push_action="1",
        silent="1",
        channel_id="a b",
    )
    # a draft saves with its rule errors and reopens with them beside the fields
    response = client.post("/campaigns/new/", data, follow=True)
    campaign = Campaign.objects.get()
    assert response.redirect_chain == [(f"/campaigns/{campaign.pk}/edit/", 302)]
    form = response.context["form"]
    assert form.errors["transparent_payload"] == [
        "A transparent message needs a payload (a JSON object)."
    ]
    assert form.errors["channel_id"] == ["Channel ID may not contain spaces."]
    assert "transparent_urgency" not in form.errors
    assert (campaign.push_action, campaign.silent, campaign.transparent_urgency) == (1, 1, "HIGH")


def test_builder_refuses_a_payload_that_is_not_a_json_object(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    for bad in ("{not json", '["a list"]'):
        data = builder_data(
            credential,
            template,
            target_list,
            notify_type="transparent",
            transparent_payload=bad,
            vendor_template="42",
        )
        response = client.post("/campaigns/new/", data)
        form = response.context["form"]
        assert "JSON object" in form.errors["transparent_payload"][0]
        assert "JSON object" in form.errors["vendor_template"][0]
    assert not Campaign.objects.exists()  # a form error saves nothing


def test_builder_saves_every_extra_field_and_shows_it_again(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    data = builder_data(
        credential,
        template,
        target_list,
        notify_type="transparent",
        transparent_payload='{"cmd": "同步", "n": 1}',
        transparent_urgency="NORMAL",
        push_action="0",
        silent="0",
        channel_id="promo",
        vendor_template='{"hms": {"category": "MARKETING"}}',
    )
    response = client.post("/campaigns/new/", data)
    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert campaign.transparent_payload == {"cmd": "同步", "n": 1}
    assert (campaign.push_action, campaign.silent) == (0, 0)
    assert campaign.vendor_template == {"hms": {"category": "MARKETING"}}
    page = client.get(f"/campaigns/{campaign.pk}/edit/").content.decode()
    assert "同步" in page and 'value="promo"' in page


def test_extra_fields_reach_the_sandbox_under_the_models_wire_names(
    transactional_db, credential, template, target_list, sandbox, marketer, redis_conn
):
    campaign = make_campaign(
        credential,
        template,
        target_list,
        notify_type="transparent",
        transparent_payload={"cmd": "sync"},
        transparent_urgency="HIGH",
        push_action=1,
        silent=1,
        channel_id="promo",
        vendor_template={"xiaomi": {"channel": "x"}},
    )
    run = lifecycle.launch(campaign, marketer)
    drain()
    run.refresh_from_db()
    assert (run.sent, run.failed) == (25, 0)
    calls = [r for r in sandbox.records() if r["action"] == "PushTemplate"]
    assert len(calls) == 3 and all(r["accepted"] for r in calls)
    params = calls[0]["params"]
    assert params["TransparentMessagePayload"] == '{"cmd":"sync"}'
    assert params["TransparentMessageUrgency"] == "HIGH"
    assert (params["PushAction"], params["Silent"], params["ChannelId"]) == ("1", "1", "promo")
    assert json.loads(params["VendorTemplate"]) == {"xiaomi": {"channel": "x"}}


def test_review_on_a_2019_credential_warns_of_the_fields_its_sdk_lacks(
    client, marketer, credential, template, target_list
):
    Credential.objects.filter(pk=credential.pk).update(api_version="2019-08-21")
    campaign = make_campaign(
        credential, template, target_list, classification="1", channel_id="promo", silent=1
    )
    client.force_login(marketer)
    page = client.get(f"/campaigns/{campaign.pk}/review/").content.decode()
    assert 'data-testid="review-version-warning"' in page
    assert "ChannelId, Classification" in page  # the fields beyond the 12, sorted
    assert "Silent, " not in page  # the 2019 SDK has Silent
    assert f'action="/campaigns/{campaign.pk}/launch/"' in page  # a warning, not a block


def test_review_on_a_2020_credential_has_no_version_warning(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list, classification="1")
    client.force_login(marketer)
    page = client.get(f"/campaigns/{campaign.pk}/review/").content.decode()
    assert "review-version-warning" not in page


def test_new_credentials_default_to_2020_10_28():
    assert Credential().api_version == "2020-10-28"


def test_builder_offers_only_the_credentials_apps_templates(client, marketer, credential, template):
    other = MessageTemplate.objects.create(app_id="OTHERAPP", name="foreign", title="t", body="b")
    client.force_login(marketer)
    page = client.post("/campaigns/new/", {"credential": credential.pk}).content.decode()
    select = re.search(r'<select name="template".*?</select>', page, re.S).group(0)
    assert f'value="{template.pk}"' in select and ">foreign<" not in select
    assert f'value="{other.pk}"' not in select


def test_builder_and_launch_refuse_a_template_of_another_app(
    client, marketer, credential, template, target_list
):
    other = MessageTemplate.objects.create(
        app_id="OTHERAPP", name="foreign", title="Hi #name#", body="Coupon #coupon#"
    )
    client.force_login(marketer)
    response = client.post("/campaigns/new/", builder_data(credential, other, target_list))
    message = (
        "Template “foreign” belongs to app OTHERAPP, but the credential sends for app "
        f"{credential.app_id}. Choose a template of app {credential.app_id}."
    )
    assert response.context["form"].errors["template"] == [message]
    assert not Campaign.objects.exists()
    campaign = make_campaign(credential, other, target_list)  # e.g. the credential changed app
    with pytest.raises(lifecycle.LaunchError) as refused:
        lifecycle.launch(campaign, marketer)
    assert refused.value.errors["template"] == [message]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT and not Batch.objects.exists()


def test_transparent_fields_are_rendered_hidden_unless_transparent(
    client, marketer, credential, template, target_list
):
    client.force_login(marketer)
    page = client.get("/campaigns/new/").content.decode()
    assert 'id="transparent-fields" data-notify="transparent" hidden>' in page
    data = builder_data(credential, template, target_list, notify_type="transparent")
    page = client.post("/campaigns/new/", {**data, "transparent_payload": "[1]"}).content.decode()
    assert 'id="transparent-fields" data-notify="transparent">' in page
