"""Hostile prompts and outputs render inert in a real browser: no dialog, no request, no script."""

import pytest
from playwright.sync_api import expect

from feedback import services
from feedback.models import Assignment
from tests.annotations import scenarios
from tests.browser.conftest import sign_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RAW_HTML = "\n\n".join(
    [
        "Harmless intro.",
        "<script>window.__pwned.push('script'); alert('script')</script>",
        "<img src=x onerror=\"window.__pwned.push('img'); alert('img')\">",
        "<a href=\"javascript:window.__pwned.push('link')\" id=jslink>a javascript: link</a>",
        '<p style="position:fixed;inset:0;background:url(http://evil.test/bg.png)">covering style</p>',
        '<svg onload="window.__pwned.push(\'svg\')"><image href="http://evil.test/svg.png"/></svg>',
        '<iframe src="http://evil.test/frame"></iframe>',
        '<div hx-get="/logout/" hx-trigger="load">htmx attributes</div>',
        "<details open ontoggle=\"window.__pwned.push('details')\">x</details>",
        '<link rel=stylesheet href="http://evil.test/x.css"><style>body{display:none}</style>',
    ]
)
MARKDOWN = "\n\n".join(
    [
        "[markdown javascript link](javascript:window.__pwned.push('md-link'))",
        "![tracking pixel](http://evil.test/pixel.png)",
        "<a href=\"JaVaScRiPt:window.__pwned.push('mixed-case')\">mixed case</a>",
        "`<script>in code</script>` is fine to show.",
    ]
)


def test_hostile_outputs_render_inert(page, live_server, transactional_db, django_user_model):
    project = scenarios.make_project(modes=("pairwise",))
    user = django_user_model.objects.create_user("ann", password="pw")
    services.add_member(project_id=project.pk, user_id=user.pk)
    scenarios.make_task(
        project,
        [RAW_HTML, MARKDOWN],
        messages=[
            {"role": "user", "content": "<img src=x onerror=\"window.__pwned.push('prompt')\">Hi"}
        ],
    )
    dialogs, requests = [], []
    page.add_init_script("window.__pwned = [];")
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))

    sign_in(page, "ann")
    requests.clear()
    page.goto(f"/projects/{project.pk}/work/")
    expect(page.locator("#task .output")).to_have_count(2)
    # The annotator sees what the model wrote, as text.
    expect(page.locator("#task")).to_contain_text("<script>window.__pwned.push('script')")
    page.locator("#task .output").first.hover()
    page.get_by_text("a javascript: link").click()
    page.get_by_text("markdown javascript link").click()
    page.wait_for_timeout(300)
    snap(page, "hostile-content")

    assert dialogs == []
    assert page.evaluate("window.__pwned") == []
    assert page.url.endswith(f"/projects/{project.pk}/work/")
    origin = live_server.url
    assert all(url.startswith(origin) for url in requests), requests
    assert {url.removeprefix(origin).split("?")[0] for url in requests} <= {
        f"/projects/{project.pk}/work/",
        "/static/css/arbiter.css",
        "/static/vendor/htmx.min.js",
        "/static/js/annotate.js",
        "/static/favicon.svg",
    }
    found = page.evaluate(
        """() => {
          const bad = [];
          for (const el of document.querySelectorAll('.output-body *, .prompt-body *')) {
            const tag = el.tagName.toLowerCase();
            if (['script', 'style', 'img', 'svg', 'iframe', 'link', 'object', 'embed', 'form',
                 'input', 'details'].includes(tag)) bad.push(tag);
            for (const attr of el.attributes) {
              const name = attr.name.toLowerCase();
              if (name.startsWith('on') || name === 'style' || name.startsWith('hx-') || name === 'src') bad.push(tag + '[' + name + ']');
              if (name === 'href' && !/^(https?:|mailto:)/i.test(attr.value)) bad.push(tag + '[href=' + attr.value + ']');
            }
          }
          return bad;
        }"""
    )
    assert found == []

    # The annotator flags it by keys: F, 1 (unsafe), a note, Enter.
    page.locator("#task").focus()
    page.keyboard.press("f")
    expect(page.locator("#flag-dialog")).to_be_visible()
    page.keyboard.press("1")
    page.locator("#flag-note").fill("Output tries to run script.")
    snap(page, "flag-dialog")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
    flag = Assignment.objects.get(annotator=user)
    assert (flag.status, flag.skip_reason, flag.skip_note) == (
        "skipped",
        "unsafe",
        "Output tries to run script.",
    )
