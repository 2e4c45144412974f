from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tunnels", "0005_route_inspect"),
    ]

    operations = [
        migrations.AddField(
            model_name="integrationroute",
            name="buffer_enabled",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="integrationroute",
            name="buffer_max_requests",
            field=models.IntegerField(default=100),
        ),
        migrations.AddField(
            model_name="integrationroute",
            name="buffer_ttl_seconds",
            field=models.IntegerField(default=3600),
        ),
    ]
