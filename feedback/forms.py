"""Parsing what the insight pages post into the plain inputs that feedback services take."""

from django import forms

from feedback.pairs import PairPolicy


class PairPolicyForm(forms.Form):
    """The choices of a PairPolicy that change which pairs there are; margins keep their
    defaults here (the API takes every setting)."""

    name = forms.CharField(
        max_length=64,
        initial="default",
        help_text="Deriving again under the same name replaces that policy's pairs.",
    )
    ranking_pairs = forms.ChoiceField(
        label="Pairs from a ranking",
        choices=[
            ("all", "Every pair"),
            ("adjacent", "Neighbouring places"),
            ("best_vs_rest", "The best against the rest"),
        ],
    )
    aggregate = forms.ChoiceField(
        label="Several annotators on the same outputs",
        choices=[
            ("majority", "Majority verdict"),
            ("bradley_terry", "Bradley-Terry within the prompt"),
        ],
    )
    ties = forms.ChoiceField(
        label="Ties", choices=[("drop", "Leave out"), ("keep", "Keep, marked as ties")]
    )
    both_bad = forms.ChoiceField(
        label="Both bad",
        choices=[("drop", "Leave out"), ("tie", "Keep as a tie")],
        help_text="Neither output is fit to be chosen, so by default neither is.",
    )

    def policy(self) -> PairPolicy:
        return PairPolicy(**self.cleaned_data)
