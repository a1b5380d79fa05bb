"""Message-template pages: list, create, edit, delete, live preview; who may do what."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.models import AuditEvent, Campaign, Credential, MessageTemplate
from tests.conftest import APP_ID, TEMPLATE_NAME

pytestmark = pytest.mark.django_db

OTHER_APP = "ONEXOTHERAPP0001"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The users' password hashing dominates these tests; nothing here is about it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_credential(name: str, app_id: str, *, active: bool = True) -> Credential:
    credential = Credential(
        name=name, app_id=app_id, workspace_id="default", access_key_id="LTAIpages0001"
    )
    credential.is_active = active
    credential.set_secret("pages-secret")
    credential.save()
    return credential


@pytest.fixture
def apps(db):
    """Two active credentials (two AppIds) and a retired one."""
    return [
        make_credential("Main", APP_ID),
        make_credential("Other", OTHER_APP),
        make_credential("Retired", "ONEXRETIRED00001", active=False),
    ]


def form_data(**changes) -> dict:
    data = {
        "app_id": APP_ID,
        "name": "spring_sale",
        "title": "Hi #name#",
        "body": "Coupon #coupon# inside",
        "uri": "app://coupon/#coupon#",
        "description": "Spring",
    }
    data.update(changes)
    return data


def test_pages_render_for_marketer_and_auditor(client, marketer, auditor, template, apps):
    for user in (marketer, auditor):
        client.force_login(user)
        listing = client.get(reverse("template-list"))
        assert listing.status_code == 200
        assert TEMPLATE_NAME in listing.text
        assert "#name#, #coupon#" in listing.text
        assert "0 campaigns" in listing.text
        page = client.get(reverse("template-edit", args=[template.pk]))
        assert page.status_code == 200
        assert "Coupon #coupon# for you" in page.text
    client.force_login(marketer)
    page = client.get(reverse("template-create"))
    assert page.status_code == 200
    choices = [value for value, _label in page.context["form"].fields["app_id"].choices]
    assert choices == ["", APP_ID, OTHER_APP]  # active credentials only
    assert client.get(reverse("template-delete", args=[template.pk])).status_code == 200


def test_auditor_sees_template_read_only_without_change_links(client, auditor, template):
    client.force_login(auditor)
    listing = client.get(reverse("template-list"))
    assert reverse("template-create") not in listing.text
    assert reverse("template-delete", args=[template.pk]) not in listing.text
    page = client.get(reverse("template-edit", args=[template.pk]))
    assert all(field.disabled for field in page.context["form"].fields.values())
    assert "Save template" not in page.text
    assert "hx-post" not in page.text


def test_auditor_gets_403_on_every_post_and_change_page(client, auditor, template, apps):
    client.force_login(auditor)
    posts = [
        reverse("template-create"),
        reverse("template-edit", args=[template.pk]),
        reverse("template-delete", args=[template.pk]),
        reverse("template-preview"),
    ]
    for url in posts:
        assert client.post(url, form_data(name="by_auditor")).status_code == 403, url
    for url in (reverse("template-create"), reverse("template-delete", args=[template.pk])):
        assert client.get(url).status_code == 403, url
    assert not MessageTemplate.objects.filter(name="by_auditor").exists()
    assert MessageTemplate.objects.filter(pk=template.pk).exists()
    assert not AuditEvent.objects.exists()


def test_unknown_template_is_404(client, marketer):
    client.force_login(marketer)
    assert client.get(reverse("template-edit", args=[999])).status_code == 404
    assert client.post(reverse("template-delete", args=[999])).status_code == 404


def test_anonymous_user_is_sent_to_login(client):
    response = client.get(reverse("template-list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_create_template_saves_audits_and_redirects(client, marketer, apps):
    client.force_login(marketer)
    response = client.post(reverse("template-create"), form_data(), follow=True)
    assert response.redirect_chain[-1][0] == reverse("template-list")
    assert "Template “spring_sale” saved." in response.text
    template = MessageTemplate.objects.get(name="spring_sale")
    assert (template.app_id, template.title, template.uri) == (
        APP_ID,
        "Hi #name#",
        "app://coupon/#coupon#",
    )
    assert template.created_by == marketer
    event = AuditEvent.objects.get(action="template.create")
    assert (event.actor, event.object_id) == (marketer, str(template.pk))
    assert event.details["app_id"] == APP_ID


def test_comma_in_name_is_shown_next_to_the_field_and_creates_nothing(client, marketer, apps):
    client.force_login(marketer)
    for name in ("spring,sale", "spring，sale"):  # ASCII and full-width commas
        response = client.post(reverse("template-create"), form_data(name=name))
        assert response.status_code == 200
        assert response.context["form"].errors["name"] == ["Template name may not contain commas."]
        # crispy renders the message in the name field's own feedback element
        assert 'id="error_1_id_name"' in response.text
        assert "may not contain commas" in response.text
    assert not MessageTemplate.objects.exists()
    assert not AuditEvent.objects.exists()


def test_duplicate_name_per_app_is_refused_next_to_the_field(client, marketer, template, apps):
    client.force_login(marketer)
    response = client.post(reverse("template-create"), form_data(name=TEMPLATE_NAME))
    assert response.context["form"].errors["name"] == [
        f"A template named “{TEMPLATE_NAME}” already exists for AppId {APP_ID}."
    ]
    assert MessageTemplate.objects.filter(name=TEMPLATE_NAME).count() == 1
    # the same name in another app is a different template
    response = client.post(
        reverse("template-create"), form_data(name=TEMPLATE_NAME, app_id=OTHER_APP)
    )
    assert response.status_code == 302
    assert MessageTemplate.objects.filter(name=TEMPLATE_NAME).count() == 2


def test_app_id_must_be_an_active_credentials(client, marketer, apps):
    client.force_login(marketer)
    response = client.post(reverse("template-create"), form_data(app_id="ONEXRETIRED00001"))
    assert "app_id" in response.context["form"].errors
    assert not MessageTemplate.objects.exists()


def test_edit_template_keeps_its_name_and_audits(client, marketer, template, apps):
    client.force_login(marketer)
    data = form_data(name=TEMPLATE_NAME, title="Hello #name#")
    response = client.post(reverse("template-edit", args=[template.pk]), data)
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.title == "Hello #name#"
    event = AuditEvent.objects.get(action="template.edit")
    assert "title" in event.details["fields"]


def test_delete_refused_while_a_campaign_uses_the_template(
    client, marketer, template, target_list, apps
):
    Campaign.objects.create(
        task_name="Uses it", credential=apps[0], template=template, target_list=target_list
    )
    client.force_login(marketer)
    page = client.get(reverse("template-delete", args=[template.pk]))
    assert "cannot be deleted while 1 campaign uses it" in page.text
    assert "Delete template</button>" not in page.text
    response = client.post(reverse("template-delete", args=[template.pk]), follow=True)
    assert "cannot be deleted while 1 campaign uses it" in response.text
    assert MessageTemplate.objects.filter(pk=template.pk).exists()
    assert not AuditEvent.objects.filter(action="template.delete").exists()
    listing = client.get(reverse("template-list"))
    assert "1 campaign" in listing.text


def test_delete_unused_template(client, marketer, template):
    client.force_login(marketer)
    response = client.post(reverse("template-delete", args=[template.pk]), follow=True)
    assert "Template “welcome_tpl” deleted." in response.text
    assert not MessageTemplate.objects.exists()
    event = AuditEvent.objects.get(action="template.delete")
    assert (event.object_id, event.object_repr) == (str(template.pk), TEMPLATE_NAME)


def test_preview_lists_placeholders_and_renders_escaped_sample_values(client, marketer):
    client.force_login(marketer)
    data = form_data(sample__name="<script>alert(1)</script>", sample__coupon="C-42")
    response = client.post(reverse("template-preview"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.text
    assert "<html" not in html  # a fragment, not a page
    assert "<code>#name#</code>" in html and "<code>#coupon#</code>" in html
    assert 'name="sample__name"' in html and 'name="sample__coupon"' in html
    assert "<script>alert(1)</script>" not in html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Coupon C-42 inside" in html
    assert "app://coupon/C-42" in html
    assert 'id="sample-values" hx-swap-oob="true"' in html
    # a placeholder without a sample value stays visible as #name#
    response = client.post(reverse("template-preview"), form_data())
    assert "Hi #name#" in response.text


def test_preview_redraws_sample_inputs_only_when_placeholders_change(client, marketer):
    """Typing a sample value must not replace the input being typed in."""
    client.force_login(marketer)
    data = form_data(shown_placeholders="name,coupon", sample__name="Ann")
    response = client.post(reverse("template-preview"), data)
    assert "Hi Ann" in response.text
    assert "sample-values" not in response.text and "<input" not in response.text
    data["body"] = "Coupon #coupon# for #city#"
    response = client.post(reverse("template-preview"), data)
    assert 'id="sample-values" hx-swap-oob="true"' in response.text
    assert 'name="sample__city"' in response.text
    assert 'value="Ann"' in response.text  # typed values survive the redraw


def test_preview_without_placeholders_says_so(client, marketer):
    client.force_login(marketer)
    response = client.post(reverse("template-preview"), form_data(title="Hi", body="B", uri=""))
    assert "No placeholders" in response.text
    assert "sample__" not in response.text


def test_edit_page_shows_the_preview_and_wires_htmx(client, marketer, template, apps):
    client.force_login(marketer)
    page = client.get(reverse("template-edit", args=[template.pk]))
    assert f'hx-post="{reverse("template-preview")}"' in page.text
    assert 'hx-trigger="keyup changed delay:300ms, change"' in page.text
    assert 'id="placeholder-list"' in page.text
    assert "<script>" not in page.text.split("</main>")[0]  # no inline scripts in the page


def test_missing_name_gets_one_message(client, marketer, apps):
    client.force_login(marketer)
    response = client.post(reverse("template-create"), form_data(name=""))
    assert response.context["form"].errors["name"] == ["This field is required."]


def test_saving_a_template_registers_it_with_the_sandbox(client, marketer, credential, sandbox):
    client.force_login(marketer)
    client.post(
        "/templates/new/",
        {
            "app_id": credential.app_id,
            "name": "fresh_tpl",
            "title": "Hi #who#",
            "body": "b",
        },
    )
    assert MessageTemplate.objects.filter(name="fresh_tpl").exists()
    assert sandbox.config.templates["fresh_tpl"] == ("who",)
