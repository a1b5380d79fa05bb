from django.db import migrations, models

from pushconsole.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction
    atomic = False

    dependencies = [
        ("campaigns", "0017_two_person_approval"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="delivery",
            index=models.Index(fields=["run", "id"], name="delivery_run_id_idx"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="batch",
            index=models.Index(fields=["created_at"], name="batch_created_idx"),
        ),
    ]
