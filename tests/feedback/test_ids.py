import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from feedback.forms import IdChoiceField, IdMultipleChoiceField
from feedback.ids import MAX_ID, parse_id
from feedback.models import ModelVersion
from training.forms import BlindTasksForm, GenerateForm


def test_parse_id_reads_only_ids_a_row_can_have():
    assert parse_id("42") == 42 and parse_id(str(MAX_ID)) == MAX_ID
    # Past bigint, zero, signs, spaces, decimals and non-ASCII digits ("²" passes isdigit but
    # int() refuses it) spell no id.
    for text in (str(MAX_ID + 1), "0", "-3", "+3", " 3", "3.0", "²", "٣", ""):
        assert parse_id(text) is None, text


@pytest.mark.django_db
def test_model_choices_refuse_impossible_ids_without_asking_the_database(
    django_assert_num_queries,
):
    # SQLite, the demo's database, raises on integers past 64 bits where PostgreSQL finds no row.
    one = IdChoiceField(queryset=ModelVersion.objects.all(), required=False)
    several = IdMultipleChoiceField(queryset=ModelVersion.objects.all())
    for value in (str(MAX_ID + 1), "²", "-1"):
        with django_assert_num_queries(0), pytest.raises(ValidationError):
            one.clean(value)
        with django_assert_num_queries(0), pytest.raises(ValidationError):
            several.clean(["1", value])
    assert one.clean("") is None


def test_posted_ids_past_bigint_are_invalid():
    huge = str(MAX_ID + 1)
    assert not BlindTasksForm({"a": huge, "b": "1"}).is_valid()
    assert not GenerateForm({"version": huge}).is_valid()
    assert BlindTasksForm({"a": "2", "b": "1"}).is_valid()


def test_urls_take_only_ids_a_row_can_have(client):
    # Past any id the URL matches nothing, before the view (which would send a stranger to sign
    # in) or a lookup (which SQLite answers with an error past 64 bits).
    assert client.get("/projects/1/work/").status_code == 302
    assert client.get(f"/projects/{MAX_ID + 1}/work/").status_code == 404
    assert client.get(f"/api/v1/projects/{MAX_ID + 1}/").status_code == 404
    assert reverse("annotations:work", args=[MAX_ID]) == f"/projects/{MAX_ID}/work/"
