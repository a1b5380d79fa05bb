"""Migrations that need more than `makemigrations --check`: moving UserPreference from
campaigns to accounts (issue 11) keeps every row, and 0022 drops an index and gives it
back when migrated back.

The database is taken back to the schema before the move (campaigns at 0010, no
accounts app), filled there through the historical models, then migrated forward to
the latest migrations; the rows must be read back through today's models."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import UserPreference
from campaigns.models import Campaign, Credential, MessageTemplate, Target, TargetList

BEFORE_THE_MOVE = [("campaigns", "0010_target_list_fk_index"), ("accounts", None)]


def migrate(targets):
    """Migrate the test database to `targets`; return the historical apps of that state."""
    MigrationExecutor(connection).migrate(targets)
    loader = MigrationExecutor(connection).loader  # reads what is applied now
    return loader.project_state(list(loader.applied_migrations)).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def fill_before_the_move(apps) -> dict:
    """A user with a language preference and a permission on the model, and a campaign."""
    user_model = apps.get_model("auth", "User")
    ann = user_model.objects.create(username="ann", email="ann@example.invalid")
    preference_model = apps.get_model("campaigns", "UserPreference")
    preference = preference_model.objects.create(user=ann, language="zh-hans")

    content_types = apps.get_model("contenttypes", "ContentType").objects
    content_type, _ = content_types.get_or_create(app_label="campaigns", model="userpreference")
    permission, _ = apps.get_model("auth", "Permission").objects.get_or_create(
        content_type=content_type,
        codename="view_userpreference",
        defaults={"name": "Can view user preference"},
    )
    ann.user_permissions.add(permission)

    credential = apps.get_model("campaigns", "Credential").objects.create(
        name="Before the move",
        app_id="ONEX570DA89211721",
        workspace_id="default",
        access_key_id="LTAIbeforeMove01",
        secret_ciphertext="not-a-real-ciphertext",
    )
    template = apps.get_model("campaigns", "MessageTemplate").objects.create(
        app_id="ONEX570DA89211721", name="before_tpl", title="Hi #name#", body="Body"
    )
    target_list = apps.get_model("campaigns", "TargetList").objects.create(
        name="Before the move", delivery_type=3, target_count=2
    )
    target_model = apps.get_model("campaigns", "Target")
    target_model.objects.bulk_create(
        target_model(target_list=target_list, target_id=f"user-{n}") for n in range(2)
    )
    campaign = apps.get_model("campaigns", "Campaign").objects.create(
        task_name="Spring sale",
        credential=credential,
        template=template,
        template_values={"name": "Ann"},
        target_list=target_list,
        created_by=ann,
    )
    return {
        "user": ann.pk,
        "preference": preference.pk,
        "content_type": content_type.pk,
        "campaign": campaign.pk,
    }


@pytest.mark.django_db(transaction=True)
def test_user_preferences_and_campaigns_survive_the_move_to_accounts():
    try:
        before = fill_before_the_move(migrate(BEFORE_THE_MOVE))
    finally:
        migrate(latest())  # also when filling failed: the rest of the suite needs it
        ContentType.objects.clear_cache()

    preference = UserPreference.objects.get(user__username="ann")
    assert preference.pk == before["preference"]
    assert preference.language == "zh-hans"
    assert get_user_model().objects.get(pk=before["user"]).preference == preference
    assert UserPreference._meta.db_table == "campaigns_userpreference"

    # The content type moved with the model, so a permission granted on it still holds.
    assert ContentType.objects.get_for_model(UserPreference).pk == before["content_type"]
    assert not ContentType.objects.filter(app_label="campaigns", model="userpreference").exists()
    assert get_user_model().objects.get(pk=before["user"]).has_perm("accounts.view_userpreference")

    campaign = Campaign.objects.get(pk=before["campaign"])
    assert campaign.task_name == "Spring sale"
    assert campaign.created_by.preference == preference
    assert campaign.template == MessageTemplate.objects.get(name="before_tpl")
    assert campaign.credential == Credential.objects.get(name="Before the move")
    assert campaign.target_list == TargetList.objects.get(name="Before the move")
    assert list(
        Target.objects.filter(target_list=campaign.target_list)
        .order_by("target_id")
        .values_list("target_id", flat=True)
    ) == ["user-0", "user-1"]


@pytest.mark.django_db
def test_a_preference_saved_after_the_move_is_in_the_old_table():
    """New rows land in the table that held the old ones (no second table appears)."""
    user = get_user_model().objects.create(username="bo")
    UserPreference.objects.create(user=user, language="en")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT language FROM campaigns_userpreference WHERE user_id = %s", [user.pk]
        )
        assert cursor.fetchall() == [("en",)]
    assert "accounts_userpreference" not in connection.introspection.table_names()


def attempt_indexes() -> dict[str, tuple[list[str], bool]]:
    """The attempt table's indexes: name → (columns, unique)."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "campaigns_attempt")
    return {
        name: (info["columns"], info["unique"])
        for name, info in found.items()
        if info["index"] or info["unique"]
    }


@pytest.mark.django_db(transaction=True)
def test_the_attempts_own_batch_index_is_dropped_and_comes_back_when_migrated_back():
    """0022: every write of an Attempt maintained a batch_id index beside the unique
    (batch, number) one, which answers every query by batch."""
    assert ["batch_id"] not in [columns for columns, _unique in attempt_indexes().values()]
    assert (["batch_id", "number"], True) in attempt_indexes().values()
    try:
        migrate([("campaigns", "0021_id_bounds")])
        assert (["batch_id"], False) in attempt_indexes().values()
    finally:
        migrate(latest())
    assert ["batch_id"] not in [columns for columns, _unique in attempt_indexes().values()]
