"""Style features of an output, for style control on the leaderboard: how long it is and how
much markdown it uses (Chatbot Arena's covariates: Li et al. 2024, "Does style matter?").

Counts, never negative; feedback.ratings.style_feature_difference turns two outputs' counts into
the covariates that Bradley-Terry holds fixed.
"""

import re

STYLE_FEATURES = ("length", "headers", "list items", "bold spans")

HEADER = re.compile(r"^ {0,3}#{1,6}\s", re.MULTILINE)
LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])\s", re.MULTILINE)
BOLD = re.compile(r"\*\*(?=\S)[^*\n]+?\*\*|__(?=\S)[^_\n]+?__")
# A "# comment" line in a code block is not a header: markdown is counted outside fences.
FENCED_CODE = re.compile(r"^ {0,3}(```|~~~).*?(?:^ {0,3}\1|\Z)", re.MULTILINE | re.DOTALL)


def style_features(text: str) -> tuple[int, int, int, int]:
    """(characters, markdown headers, list items, bold spans) of an output's text."""
    prose = FENCED_CODE.sub("", text)
    return (
        len(text),
        len(HEADER.findall(prose)),
        len(LIST_ITEM.findall(prose)),
        len(BOLD.findall(prose)),
    )
