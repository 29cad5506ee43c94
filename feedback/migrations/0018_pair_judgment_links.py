import django.db.models.deletion
from django.db import migrations, models

# The link table Django made for PreferencePair.judgments, now a model of its own so that the
# index on preferencepair_id alone can go: the unique (preferencepair_id, judgment_id) serves it.
# The table, its columns and constraints stay as they are; only the model state changes.
REDUNDANT_INDEX = "feedback_preferencepair_judgments_preferencepair_id_982603f3"


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0017_task_round_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="PairJudgment",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "judgment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                to="feedback.judgment",
                            ),
                        ),
                        (
                            "preferencepair",
                            models.ForeignKey(
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                to="feedback.preferencepair",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "feedback_preferencepair_judgments",
                        "unique_together": {("preferencepair", "judgment")},
                    },
                ),
                migrations.AlterField(
                    model_name="preferencepair",
                    name="judgments",
                    field=models.ManyToManyField(
                        blank=True,
                        related_name="pairs",
                        through="feedback.PairJudgment",
                        to="feedback.judgment",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{REDUNDANT_INDEX}"',
                    reverse_sql=(
                        f'CREATE INDEX "{REDUNDANT_INDEX}" ON '
                        '"feedback_preferencepair_judgments" ("preferencepair_id")'
                    ),
                ),
            ],
        ),
    ]
