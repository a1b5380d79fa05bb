"""UserPreference moved to the accounts app (issue 11): gone from campaigns' state only.

Its table, campaigns_userpreference, and every row in it stay where they are;
accounts/migrations/0001_initial.py takes the model over in state (db_table kept)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0010_target_list_fk_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="UserPreference")],
            database_operations=[],
        ),
    ]
