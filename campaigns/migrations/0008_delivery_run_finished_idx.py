from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0007_lookup_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(
                fields=["run", "finished_at", "id"], name="delivery_run_finished_idx"
            ),
        ),
    ]
