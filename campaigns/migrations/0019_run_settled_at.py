from django.db import migrations, models
from django.db.models import F


def settled_already(apps, schema_editor):
    """Runs closed before this migration had their deliveries written with every outcome."""
    Run = apps.get_model("campaigns", "Run")
    Run.objects.filter(finished_at__isnull=False).update(settled_at=F("finished_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0018_history_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="settled_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(settled_already, migrations.RunPython.noop),
    ]
