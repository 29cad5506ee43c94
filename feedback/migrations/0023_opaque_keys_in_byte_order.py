from django.db import migrations, models


def create_binary_collation(apps, schema_editor):
    # SQLite has BINARY built in; PostgreSQL's "C" sorts the same, under this name.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            'CREATE COLLATION IF NOT EXISTS "binary" (provider = libc, locale = \'C\')'
        )


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0022_pair_deletion_lookups_indexed"),
    ]

    operations = [
        migrations.RunPython(create_binary_collation, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="judgment",
            name="idempotency_key",
            field=models.CharField(db_collation="binary", max_length=100),
        ),
        migrations.AlterField(
            model_name="prompt",
            name="content_hash",
            field=models.CharField(
                db_collation="binary",
                help_text="sha256 of the normalised prompt; deduplicates imports.",
                max_length=64,
            ),
        ),
    ]
