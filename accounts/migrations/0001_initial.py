"""UserPreference, moved here from campaigns (issue 11): created in state only.

The table campaigns_userpreference already exists (campaigns 0004) and keeps its
name and rows; campaigns 0011 removed the model from campaigns' state first. The
content type moves with the model, so permissions and admin log entries that point
at it still do. On a fresh database there is no content type yet: post_migrate
creates accounts.userpreference as usual."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _move_content_type(apps, schema_editor, source: str, target: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    if not content_types.filter(app_label=target, model="userpreference").exists():
        content_types.filter(app_label=source, model="userpreference").update(app_label=target)


def forward(apps, schema_editor):
    _move_content_type(apps, schema_editor, "campaigns", "accounts")


def backward(apps, schema_editor):
    _move_content_type(apps, schema_editor, "accounts", "campaigns")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("campaigns", "0011_userpreference_to_accounts"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="UserPreference",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "language",
                            models.CharField(
                                choices=[("en", "English"), ("zh-hans", "简体中文")],
                                max_length=10,
                                verbose_name="language",
                            ),
                        ),
                        (
                            "user",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="preference",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "campaigns_userpreference"},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forward, backward),
    ]
