# Reserved for the security work (audit triggers, credential/user changes).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0004_user_preference")]

    operations = []
