"""The insight charts' labels, laid out by a real browser: none spills out of its chart."""

from feedback import charts

LABELS = [
    "gamma",  # short: the heatmap's margin was sized at 7 px a character and cut its "g"
    "Qwen/Qwen2.5-0.5B-Instruct",
    "WWW-MMM-wide",
    "meta-llama/Llama-3.1-8B-Instruct-arbiter-dpo-round-12-final",
]

OUTSIDE = """() => [...document.querySelectorAll("svg")].flatMap((svg) => {
  const box = svg.getBoundingClientRect();
  return [...svg.querySelectorAll("text")]
    .map((text) => [text.textContent, text.getBoundingClientRect()])
    .filter(([, r]) => r.left < box.left - 0.5 || r.right > box.right + 0.5
      || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
    .map(([content]) => content);
})"""

# Each label's own text (not its <title>) and the tooltip it shows: its own, or its group's.
SHOWN_AND_TOOLTIP = """ts => ts.map((t) => [
  [...t.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.data).join(""),
  (t.querySelector("title") || t.parentElement.querySelector(":scope > title"))?.textContent || "",
])"""


def test_chart_labels_stay_inside_their_charts(browser):
    n = len(LABELS)
    plots = [
        charts.interval_plot(
            LABELS, [1000.0 + 10 * i for i in range(n)], [950.0] * n, [1100.0] * n, title="t"
        ),
        charts.heatmap(LABELS, [[0.5] * n for _ in range(n)], title="h"),
        charts.heatmap(LABELS[:1], [[None]], title="one"),
    ]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.set_content(
            "<!doctype html><body style='margin:0'>"
            + "".join(f"<div style='width:900px'>{plot}</div>" for plot in plots)
        )
        assert page.evaluate(OUTSIDE) == []
        shown = page.eval_on_selector_all("svg text", SHOWN_AND_TOOLTIP)
    finally:
        page.close()
    # The longest name is cut to fit (in the interval plot and both heatmap axes), and whole in
    # its tooltip; the others are whole.
    cut = [(text, tip) for text, tip in shown if text.endswith("…")]
    assert len(cut) == 3
    assert all(LABELS[3].startswith(text[:-1]) and LABELS[3] in tip for text, tip in cut)
    whole = [text for text, _ in shown]
    assert whole.count("gamma") == 5 and whole.count(LABELS[1]) == 3
