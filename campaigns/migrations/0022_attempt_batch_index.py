"""The attempt's own batch_id index, dropped: the unique (batch, number) index leads with
the batch and answers every query by batch (a batch's attempts, the foreign key's
checks, the deletion of a campaign's rows). Every call inserts an Attempt and completes
it (an update that cannot be HOT: its RequestId is indexed), and both maintained the
two indexes on the batch.
"""

import django.db.models.deletion
from django.db import migrations, models

from pushconsole.migration_operations import DropColumnIndex


class Migration(migrations.Migration):
    # DROP INDEX CONCURRENTLY cannot run inside a transaction
    atomic = False

    dependencies = [
        ("campaigns", "0021_id_bounds"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[DropColumnIndex("attempt", "batch_id")],
            state_operations=[
                migrations.AlterField(
                    model_name="attempt",
                    name="batch",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="attempt_log",
                        to="campaigns.batch",
                    ),
                ),
            ],
        ),
    ]
