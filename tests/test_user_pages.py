"""User pages (admins only): list, create with roles and a validated password, change
roles, deactivate (ends sessions at once; an old session is refused anyway), reactivate,
set a new password; no self-deactivation; sign-ins and sign-outs in the audit trail."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from accounts.roles import roles_of
from campaigns.models import AuditEvent

pytestmark = pytest.mark.django_db

User = get_user_model()
GOOD_PASSWORD = "violet-Harbor-Lantern-42"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def signed_in(user) -> Client:
    other = Client()
    other.force_login(user)
    return other


def new_user_data(**changes) -> dict:
    data = {
        "username": "nina",
        "email": "nina@example.invalid",
        "roles": ["Marketing", "Auditor"],
        "password1": GOOD_PASSWORD,
        "password2": GOOD_PASSWORD,
    }
    data.update(changes)
    return data


def test_list_shows_users_roles_and_active_flag(admin_client, marketer, auditor):
    auditor.is_active = False
    auditor.save()
    response = admin_client.get(reverse("user-list"))
    assert response.status_code == 200
    rows = {row["user"].username: row for row in response.context["rows"]}
    assert rows["mark"]["roles"] == ["Marketing"]
    assert rows["audrey"]["roles"] == ["Auditor"]
    assert rows["ada"]["roles"] == ["Admin"]
    assert "Deactivated" in response.text
    assert "no-store" in response.headers["Cache-Control"]


def test_other_roles_are_refused_every_user_page(client, marketer, auditor, admin_user):
    pk = admin_user.pk
    urls = [reverse("user-list"), reverse("user-create")] + [
        reverse(name, args=[pk])
        for name in ("user-edit", "user-deactivate", "user-activate", "user-password")
    ]
    for user in (marketer, auditor):
        client.force_login(user)
        for url in urls:
            assert client.get(url).status_code == 403, url
            assert client.post(url, new_user_data()).status_code == 403, url
    admin_user.refresh_from_db()
    assert admin_user.is_active
    assert not User.objects.filter(username="nina").exists()
    assert not AuditEvent.objects.exists()


def test_create_user_with_roles_and_password(admin_client, admin_user):
    response = admin_client.post(reverse("user-create"), new_user_data())
    assert response.status_code == 302
    nina = User.objects.get(username="nina")
    assert nina.check_password(GOOD_PASSWORD) and nina.is_active
    assert roles_of(nina) == {"Marketing", "Auditor"}
    event = AuditEvent.objects.get(action="user.create")
    assert event.actor == admin_user and event.object_id == str(nina.pk)
    assert event.details == {"roles": ["Auditor", "Marketing"]}
    assert GOOD_PASSWORD not in str(event.details)
    assert set(response.wsgi_request.sensitive_post_parameters) == {"password1", "password2"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"password1": "short", "password2": "short"}, "password1", "too short"),
        ({"password1": "12345678901234", "password2": "12345678901234"}, "password1", "numeric"),
        (
            {"password1": "nina@example.invalid", "password2": "nina@example.invalid"},
            "password1",
            "similar",
        ),
        ({"password2": GOOD_PASSWORD + "x"}, "password2", "differ"),
        ({"roles": []}, "roles", "at least one role"),
        ({"roles": ["Superhero"]}, "roles", "valid choice"),
        ({"username": "MARK"}, "username", "already exists"),
        ({"username": "bad name!"}, "username", "Enter a valid username"),
    ],
)
def test_create_refuses_bad_input_next_to_the_field(
    admin_client, marketer, changes, field, message
):
    response = admin_client.post(reverse("user-create"), new_user_data(**changes))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert not User.objects.filter(username__in=["nina", "MARK", "bad name!"]).exists()
    assert not AuditEvent.objects.exists()


def test_settings_validators_are_used_when_configured(admin_client, settings):
    settings.AUTH_PASSWORD_VALIDATORS = [
        {
            "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
            "OPTIONS": {"min_length": 30},
        }
    ]
    response = admin_client.post(reverse("user-create"), new_user_data())
    assert "at least 30 characters" in " ".join(response.context["form"].errors["password1"])


def test_edit_roles_is_audited_with_added_and_removed(admin_client, marketer):
    url = reverse("user-edit", args=[marketer.pk])
    page = admin_client.get(url)
    assert page.context["form"]["roles"].value() == ["Marketing"]
    response = admin_client.post(url, {"roles": ["Auditor"]})
    assert response.status_code == 302
    marketer = User.objects.get(pk=marketer.pk)
    assert roles_of(marketer) == {"Auditor"}
    event = AuditEvent.objects.get(action="user.update_roles")
    assert event.details == {"added": ["Auditor"], "removed": ["Marketing"]}
    admin_client.post(url, {"roles": ["Auditor"]})  # unchanged: no second event
    assert AuditEvent.objects.filter(action="user.update_roles").count() == 1


def test_admin_cannot_remove_own_admin_role(client, django_user_model):
    from django.contrib.auth.models import Group

    boss = django_user_model.objects.create_user("boss", password="pw-boss-123")
    boss.groups.add(Group.objects.get_or_create(name="Admin")[0])
    client.force_login(boss)
    response = client.post(reverse("user-edit", args=[boss.pk]), {"roles": ["Marketing"]})
    assert response.status_code == 200
    assert "cannot remove your own Admin role" in response.text
    assert roles_of(User.objects.get(pk=boss.pk)) == {"Admin"}


def test_deactivate_ends_sessions_and_the_user_is_signed_out(admin_client, marketer, auditor):
    victim = signed_in(marketer)
    bystander = signed_in(auditor)
    assert victim.get(reverse("home")).status_code == 200
    sessions_before = Session.objects.count()
    response = admin_client.post(reverse("user-deactivate", args=[marketer.pk]))
    assert response.status_code == 302
    marketer.refresh_from_db()
    assert not marketer.is_active
    assert Session.objects.count() == sessions_before - 1
    refused = victim.get(reverse("home"))
    assert refused.status_code == 302 and refused.url.startswith("/login/")
    assert bystander.get(reverse("home")).status_code == 200
    event = AuditEvent.objects.get(action="user.deactivate")
    assert event.details == {"sessions_ended": 1}


def test_old_session_of_a_deactivated_user_is_refused(marketer):
    """Even if a session row survives, ModelBackend refuses an inactive user per request."""
    victim = signed_in(marketer)
    User.objects.filter(pk=marketer.pk).update(is_active=False)  # sessions left in place
    response = victim.get(reverse("campaign-list"))
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_admin_cannot_deactivate_themselves(admin_client, admin_user):
    response = admin_client.post(reverse("user-deactivate", args=[admin_user.pk]))
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.is_active
    assert admin_client.get(reverse("user-list")).status_code == 200
    assert not AuditEvent.objects.filter(action="user.deactivate").exists()


def test_reactivate(admin_client, marketer):
    User.objects.filter(pk=marketer.pk).update(is_active=False)
    assert admin_client.get(reverse("user-activate", args=[marketer.pk])).status_code == 405
    admin_client.post(reverse("user-activate", args=[marketer.pk]))
    marketer.refresh_from_db()
    assert marketer.is_active
    assert AuditEvent.objects.filter(action="user.activate", object_id=str(marketer.pk)).exists()


def test_reset_password_validates_and_ends_other_sessions(admin_client, marketer):
    victim = signed_in(marketer)
    url = reverse("user-password", args=[marketer.pk])
    weak = admin_client.post(url, {"password1": "password", "password2": "password"})
    assert weak.status_code == 200
    assert "too common" in " ".join(weak.context["form"].errors["password1"])
    response = admin_client.post(url, {"password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD})
    assert response.status_code == 302
    marketer.refresh_from_db()
    assert marketer.check_password(GOOD_PASSWORD)
    refused = victim.get(reverse("home"))
    assert refused.status_code == 302 and refused.url.startswith("/login/")
    event = AuditEvent.objects.get(action="user.reset_password")
    assert event.details == {} and event.object_id == str(marketer.pk)


def test_admin_resetting_own_password_stays_signed_in(admin_client, admin_user):
    url = reverse("user-password", args=[admin_user.pk])
    admin_client.post(url, {"password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD})
    assert admin_client.get(reverse("user-list")).status_code == 200


def test_there_is_no_self_registration(client):
    response = client.get(reverse("user-create"))
    assert response.status_code == 302 and response.url.startswith("/login/")


# -- sign-in audit (accounts/signals.py) ---------------------------------------------


def test_login_success_failure_and_logout_are_audited(client, marketer):
    failed = client.post(
        reverse("login"),
        {"username": "mark", "password": "not-the-password"},
        REMOTE_ADDR="203.0.113.7",
    )
    assert failed.status_code == 200
    event = AuditEvent.objects.get(action="login.failure")
    assert event.details == {"username": "mark"}
    assert event.ip == "203.0.113.7" and event.actor is None
    assert "not-the-password" not in str(event.details)

    ok = client.post(
        reverse("login"), {"username": "mark", "password": "pw-mark-123"}, REMOTE_ADDR="203.0.113.8"
    )
    assert ok.status_code == 302
    event = AuditEvent.objects.get(action="login.success")
    assert event.actor == marketer and event.ip == "203.0.113.8"

    client.post(reverse("logout"), REMOTE_ADDR="203.0.113.8")
    event = AuditEvent.objects.get(action="logout")
    assert event.actor == marketer and event.ip == "203.0.113.8"


def test_login_failure_with_unknown_username_is_audited(client):
    client.post(reverse("login"), {"username": "nobody", "password": "x"})
    assert AuditEvent.objects.get(action="login.failure").details == {"username": "nobody"}


def test_test_client_force_login_is_not_a_sign_in(client, marketer):
    client.force_login(marketer)
    client.logout()
    assert not AuditEvent.objects.exists()
