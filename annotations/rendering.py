"""Turning untrusted prompts and model outputs into safe HTML, and marking where outputs differ.

Every prompt and completion is untrusted. Markdown is rendered with raw HTML switched off, so a
model that writes `<script>` shows the annotator those characters instead of running them; the
result then goes through nh3 (the ammonia sanitiser) with a short allow-list as a second wall: no
script, event handler, style, image, SVG or non-http(s)/mailto URL can survive either layer.
"""

import difflib
import html
import re
import threading
from dataclasses import dataclass

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe
from pygments.token import STANDARD_TYPES

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "s",
    "samp",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}
# Only the class names that code highlighting emits: a model output must not be able to borrow the
# page's own classes and dress itself up as part of the interface.
PYGMENTS_CLASSES = {name for name in STANDARD_TYPES.values() if name}
ALLOWED_CLASSES = {"div": {"codehilite"}, "span": PYGMENTS_CLASSES}

_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style", "iframe", "object", "embed", "template", "noscript"},
    attributes=ALLOWED_ATTRIBUTES,
    allowed_classes=ALLOWED_CLASSES,
    url_schemes={"http", "https", "mailto"},
    # Relative links would point into Arbiter itself (e.g. a GET that signs the annotator out).
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)

_local = threading.local()  # a Markdown instance keeps state between calls: one per thread


def _markdown() -> markdown.Markdown:
    md = getattr(_local, "md", None)
    if md is None:
        md = markdown.Markdown(
            extensions=["fenced_code", "tables", "sane_lists", "nl2br", "codehilite"],
            extension_configs={"codehilite": {"guess_lang": False, "css_class": "codehilite"}},
        )
        # Raw HTML in an output is shown as the text the model wrote, never interpreted;
        # images are shown as their markdown source (they would load third-party URLs).
        for name in ("html", "image_link", "image_reference", "short_image_ref"):
            md.inlinePatterns.deregister(name, strict=False)
        md.preprocessors.deregister("html_block", strict=False)
        _local.md = md
    return md


def sanitize_html(fragment: str) -> SafeString:
    """Reduce an HTML fragment to the allow-list above."""
    return mark_safe(_cleaner.clean(fragment))  # noqa: S308 - nh3 output is the safe subset


def render_markdown(text: str) -> SafeString:
    """Markdown to sanitised HTML; raw HTML in the source is escaped, not rendered."""
    md = _markdown()
    try:
        converted = md.convert(text)
    finally:
        md.reset()
    return sanitize_html(converted)


@dataclass(frozen=True)
class ChatTurn:
    role: str
    html: SafeString


def render_chat(messages: list[dict[str, str]]) -> list[ChatTurn]:
    """A chat prompt as turns of rendered markdown, in order."""
    return [ChatTurn(role=m["role"], html=render_markdown(m["content"])) for m in messages]


# --- Differences between near-identical outputs ---------------------------------------------

# Words, runs of whitespace, and single punctuation marks: the units a reader notices changing.
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
NEAR_IDENTICAL = 0.6  # below this similarity a word diff is noise rather than help


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def similarity(first: str, second: str) -> float:
    """Token-level similarity in 0..1 (difflib's ratio)."""
    return difflib.SequenceMatcher(None, _tokens(first), _tokens(second), autojunk=False).ratio()


def mark_differences(text: str, reference: str) -> SafeString:
    """`text` as escaped plain text, with the tokens that are not in `reference` in <mark>."""
    tokens, ref_tokens = _tokens(text), _tokens(reference)
    matcher = difflib.SequenceMatcher(None, ref_tokens, tokens, autojunk=False)
    parts: list[str] = []
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        chunk = html.escape("".join(tokens[j1:j2]))
        if tag == "equal" or not chunk.strip():
            parts.append(chunk)
        else:
            parts.append(f'<mark class="diff">{chunk}</mark>')
    return mark_safe("".join(parts))  # noqa: S308 - every token was escaped above


def differences(texts: list[str]) -> list[SafeString] | None:
    """Per output, its text with what differs from the others marked; None unless the outputs
    are near-identical (each at least NEAR_IDENTICAL similar to its reference).

    The first output is compared with the second, every other output with the first.
    """
    if len(texts) < 2:
        return None
    references = [texts[1]] + [texts[0]] * (len(texts) - 1)
    if any(similarity(t, r) < NEAR_IDENTICAL for t, r in zip(texts, references, strict=True)):
        return None
    return [mark_differences(t, r) for t, r in zip(texts, references, strict=True)]
