"""Style features: length and markdown counted outside code blocks."""

from feedback.style import style_features


def test_markdown_is_counted_outside_code_blocks():
    text = (
        "# Title\n"
        "Some **bold** text, __more__, and ** not bold **.\n"
        "\n"
        "- one\n"
        "* two\n"
        "  3. three\n"
        "\n"
        "```python\n"
        "# a comment, not a header\n"
        "- not a list item\n"
        "```\n"
        "## Second"
    )
    assert style_features(text) == (len(text), 2, 3, 2)


def test_plain_text_and_an_unclosed_fence():
    assert style_features("plain answer") == (12, 0, 0, 0)
    assert style_features("```\n# inside a fence left open") == (30, 0, 0, 0)
