"""The per-person values page and the recall pages through the test client (the sends
themselves are tests/test_multiple_and_recall.py)."""

from __future__ import annotations

import io

import pytest

from campaigns import importing, lifecycle, perperson
from campaigns.models import AuditEvent, Campaign, Delivery, Run, TargetList
from tests.pipeline_helpers import drain, make_campaign, quick_pipeline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_pipeline(settings, redis_conn):
    quick_pipeline(settings)


def people(rows: int = 5) -> TargetList:
    target_list = TargetList.objects.create(name="people", delivery_type=3)
    data = "user_id,first_name\n" + "".join(f"u{n},Name{n}\n" for n in range(rows))
    importing.import_targets(target_list, io.BytesIO(data.encode()), column="user_id")
    target_list.refresh_from_db()
    return target_list


def test_values_page_maps_a_placeholder_to_a_column(client, marketer, credential, template):
    campaign = make_campaign(credential, template, people())
    client.force_login(marketer)
    page = client.get(f"/campaigns/{campaign.pk}/values/").content.decode()
    assert "Column “first_name”" in page and "#name#" in page
    response = client.post(f"/campaigns/{campaign.pk}/values/", {"column_name": "first_name"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.value_columns == {"name": "first_name"}
    assert AuditEvent.objects.filter(action="campaign.value_columns", actor=marketer).exists()
    review = client.get(f"/campaigns/{campaign.pk}/review/").content.decode()
    assert "TargetMsg.1.TemplateKeyValue" in review


def test_values_page_refuses_an_unknown_column_and_changes_nothing(
    client, marketer, credential, template
):
    campaign = make_campaign(credential, template, people())
    client.force_login(marketer)
    response = client.post(f"/campaigns/{campaign.pk}/values/", {"column_name": "surname"})
    assert response.status_code == 400
    assert "has no column “surname”" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.value_columns == {}


def test_recall_needs_confirmation_then_runs_and_twice_says_so(
    client, marketer, credential, template, sandbox
):
    campaign = make_campaign(credential, template, people(7), template_values={"coupon": "X"})
    perperson.set_columns(campaign, {"name": "first_name"}, marketer)
    lifecycle.launch(campaign, marketer)
    drain()
    client.force_login(marketer)
    detail = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f"/campaigns/{campaign.pk}/recall/" in detail
    page = client.get(f"/campaigns/{campaign.pk}/recall/").content.decode()
    assert 'data-testid="recallable">7<' in page

    response = client.post(f"/campaigns/{campaign.pk}/recall/start/", {}, follow=True)
    assert "Tick the confirmation box to recall." in response.content.decode()
    assert not campaign.runs.filter(kind=Run.Kind.RECALL).exists()

    client.post(f"/campaigns/{campaign.pk}/recall/start/", {"confirm": "yes"})
    drain()
    run = campaign.runs.get(kind=Run.Kind.RECALL)
    assert run.status == Run.Status.COMPLETED and run.sent == 7
    page = client.get(f"/campaigns/{campaign.pk}/recall/").content.decode()
    assert 'data-testid="recalled">7<' in page

    response = client.post(
        f"/campaigns/{campaign.pk}/recall/start/", {"confirm": "yes"}, follow=True
    )
    assert "already recalled" in response.content.decode()
    assert campaign.runs.filter(kind=Run.Kind.RECALL).count() == 1
    revokes = [r for r in sandbox.records() if r["action"] == "RevokePushMessage"]
    assert len(revokes) == 7


def test_one_delivery_from_the_batch_page(client, marketer, credential, template, sandbox):
    campaign = make_campaign(credential, template, people(3))
    lifecycle.launch(campaign, marketer)
    drain()
    delivery = Delivery.objects.filter(run__campaign=campaign).order_by("pk").first()
    client.force_login(marketer)
    batch_page = client.get(f"/history/batches/{delivery.batch_id}/").content.decode()
    link = f"/campaigns/{campaign.pk}/recall/?delivery={delivery.pk}"
    assert link.replace("&", "&amp;") in batch_page or link in batch_page
    page = client.get(link).content.decode()
    assert delivery.target_id in page and 'data-testid="recallable">1<' in page
    client.post(
        f"/campaigns/{campaign.pk}/recall/start/", {"confirm": "yes", "delivery": delivery.pk}
    )
    drain()
    run = campaign.runs.get(kind=Run.Kind.RECALL)
    assert (run.total, run.sent) == (1, 1)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.COMPLETED
