"""The sanitiser and markdown renderer (annotations/rendering.py): untrusted text in, inert HTML out."""

from html.parser import HTMLParser

import pytest

from annotations.rendering import (
    differences,
    mark_differences,
    render_chat,
    render_markdown,
    sanitize_html,
    similarity,
)

# Payloads as a model (or a prompt import) might carry them, raw and inside markdown.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.test/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="  javascript:alert(1)">click</a>',
    '<a href="data:text/html,<script>alert(1)</script>">data</a>',
    '<a href="vbscript:msgbox(1)">vb</a>',
    '<p style="position:fixed;top:0;left:0;width:100%;height:100%;background:url(//evil.test/x)">cover</p>',
    "<style>body{display:none}</style>",
    "<svg onload=alert(1)><circle r=10 /></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    '<iframe src="https://evil.test/"></iframe>',
    '<object data="https://evil.test/x.swf"></object>',
    '<form action="https://evil.test/"><button formaction="javascript:alert(1)">go</button></form>',
    '<div onclick="alert(1)" onmouseover="alert(1)">hover</div>',
    '<div hx-get="/logout/" hx-trigger="load">htmx</div>',
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    '<base href="https://evil.test/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.test/">',
    '<link rel=stylesheet href="https://evil.test/x.css">',
    '<video><source onerror="alert(1)"></video>',
    "<body onload=alert(1)>",
    '<span class="topbar dialog">borrowing the page\'s classes</span>',
    '<a href="/logout/">relative link into Arbiter</a>',
    "<!--<img src=x onerror=alert(1)>-->",
]
# Written out here, not imported from annotations.rendering: a tag added to the renderer's
# allow-list must also be added to this security spec, on purpose.
SAFE_TAGS = {
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
SAFE_ATTRIBUTES = {"href", "title", "rel", "target", "class", "align"}
PAGE_CLASSES = {"topbar", "dialog", "task", "output", "chip", "primary"}


class ElementCollector(HTMLParser):
    """Every element and attribute a browser would build from the HTML (text is ignored)."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_comment(self, data):
        self.comments.append(data)


def assert_inert(html: str) -> None:
    collector = ElementCollector()
    collector.feed(html)
    assert not collector.comments, html
    for tag, attrs in collector.elements:
        assert tag in SAFE_TAGS, f"<{tag}> survived in {html!r}"
        assert set(attrs) <= SAFE_ATTRIBUTES, f"{sorted(attrs)} on <{tag}> in {html!r}"
        href = (attrs.get("href") or "").strip().lower()
        assert not href or href.startswith(("http://", "https://", "mailto:")), html
        assert not set((attrs.get("class") or "").split()) & PAGE_CLASSES, html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_sanitiser_strips_every_payload(payload):
    assert_inert(sanitize_html(payload))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_shows_raw_html_as_text_and_keeps_it_inert(payload):
    assert_inert(render_markdown(f"Here you go:\n\n{payload}\n\nand inline {payload} too"))


def test_raw_html_in_an_output_is_shown_to_the_annotator_not_run():
    html = render_markdown("Run <script>steal()</script> now")
    assert "&lt;script&gt;steal()&lt;/script&gt;" in html


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<javascript:alert(1)>",
        '[x](https://ok.test/ "title" onmouseover="alert(1)")',
        "![tracker](https://evil.test/pixel.png)",
        "[![img](https://evil.test/p.png)](https://ok.test)",
    ],
)
def test_markdown_links_and_images_cannot_smuggle_script_or_requests(source):
    html = render_markdown(source)
    assert_inert(html)
    assert 'src="' not in html


def test_safe_links_keep_their_target_and_get_rel_noopener():
    html = render_markdown("See [the docs](https://docs.python.org/3/).")
    assert 'href="https://docs.python.org/3/"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert 'target="_blank"' in html


def test_markdown_renders_code_blocks_lists_and_tables():
    html = render_markdown(
        "Two ways:\n\n```python\nitems.reverse()\n```\n\n- **one**\n- `two`\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    assert '<div class="codehilite"><pre>' in html
    assert '<span class="n">items</span>' in html  # highlighted, with pygments' own classes only
    assert "<li><strong>one</strong></li>" in html and "<code>two</code>" in html
    assert "<table>" in html and "<td>1</td>" in html


def test_code_blocks_escape_their_content():
    html = render_markdown("```html\n<script>alert(1)</script>\n```")
    assert "<script" not in html and "&lt;" in html


def test_single_newlines_are_line_breaks_as_models_intend():
    assert "line one<br>" in render_markdown("line one\nline two").replace(" />", ">")


def test_a_chat_renders_each_turn_with_its_role():
    turns = render_chat(
        [
            {"role": "system", "content": "Be **brief**."},
            {"role": "user", "content": "<img src=x onerror=alert(1)> hi"},
        ]
    )
    assert [t.role for t in turns] == ["system", "user"]
    assert "<strong>brief</strong>" in turns[0].html
    assert_inert(turns[1].html)


def test_differences_mark_only_what_changed():
    first, second = "The cat sat on the mat.", "The cat sat on a mat!"
    marked = differences([first, second])
    assert marked == [
        'The cat sat on <mark class="diff">the</mark> mat<mark class="diff">.</mark>',
        'The cat sat on <mark class="diff">a</mark> mat<mark class="diff">!</mark>',
    ]


def test_differences_compare_every_output_with_the_first():
    texts = ["a b c d e", "a b X d e", "a b c d Y"]
    marked = differences(texts)
    assert marked[1] == 'a b <mark class="diff">X</mark> d e'
    assert marked[2] == 'a b c d <mark class="diff">Y</mark>'


def test_differences_are_offered_only_for_near_identical_outputs():
    assert differences(["Paris is the capital.", "I do not know, sorry about that."]) is None
    assert similarity("same text here", "same text here") == 1.0


def test_marked_differences_escape_the_text():
    marked = mark_differences("<b>x</b> <script>", "<b>y</b> <script>")
    assert "<b>" not in marked and "<script>" not in marked
    assert '<mark class="diff">x</mark>' in marked
