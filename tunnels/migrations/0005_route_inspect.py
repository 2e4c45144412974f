from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tunnels", "0004_route_verify"),
    ]

    operations = [
        migrations.AddField(
            model_name="integrationroute",
            name="inspect_capture_bodies",
            field=models.BooleanField(default=False),
        ),
    ]
