"""Indexes no query uses, dropped: each update of a batch or a delivery maintained them.

- batch.run_id and delivery.run_id: every query by run is answered by an index that
  leads with the run (batch_seq_unique (run, seq), batch_run_status_idx; delivery_run_id_idx
  (run, id), delivery_run_status_idx, delivery_run_finished_idx, the (run, target_id)
  unique constraint).
- batch.result_code: no query filters batches by it (the history's ResultCode filter reads
  the delivery's own column, and an unsettled run's batches by run).
- delivery.msg_key's `LIKE` index on PostgreSQL (varchar_pattern_ops, made beside every
  unique CharField): msgKeys are matched exactly, by the unique index.
"""

import django.db.models.deletion
from django.db import migrations, models

from pushconsole.migration_operations import DropColumnIndex


class Migration(migrations.Migration):
    # DROP INDEX CONCURRENTLY cannot run inside a transaction
    atomic = False

    dependencies = [
        ("campaigns", "0019_run_settled_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                DropColumnIndex("batch", "result_code"),
                DropColumnIndex("batch", "run_id"),
                DropColumnIndex("delivery", "run_id"),
                DropColumnIndex("delivery", "msg_key"),  # the non-unique one only
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="batch",
                    name="result_code",
                    field=models.CharField(blank=True, max_length=64),
                ),
                migrations.AlterField(
                    model_name="batch",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="batches",
                        to="campaigns.run",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="deliveries",
                        to="campaigns.run",
                    ),
                ),
            ],
        ),
    ]
