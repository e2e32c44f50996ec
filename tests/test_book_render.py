"""The built site renders in a real browser without internet (issue: math typeset, plots present).

Serves ``_build/html`` on localhost and renders the Attention chapter in headless Chromium with every
host but localhost unresolvable, so nothing can come from the internet: the site ships its own MathJax
(``sphinx-mathjax-offline``, no CDN — readers offline or behind a firewall that blocks the CDN see
typeset math). Checks that the math was typeset without errors and that the plot images loaded. A
screenshot is left at ``_build/screenshots/attention.png`` for a human look.

Needs the book built (README command 1) and Chromium (``.ci/install-browser-check.sh``).
Without them the test is skipped, unless ``LLMF_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
PAGE = Path("notebooks/transformer/attention.html")
CDN_MATHJAX = re.compile(r"https?://[^\"']*mathjax", re.I)
LOCAL_MATHJAX = re.compile(r'<script[^>]+src="[./]*_static/mathjax/tex-chtml\.js[?"]')
FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # no internet: localhost only
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# Appended to the page copy: once MathJax has finished, record what rendered in <body data-*> attributes,
# which --dump-dom then prints.
PROBE = """
<script>
window.addEventListener('load', function () {
  var done = function () {
    var imgs = Array.from(document.querySelectorAll('main img'));
    document.body.dataset.imagesTotal = imgs.length;
    var loaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
    document.body.dataset.imagesLoaded = loaded.length;
    document.body.dataset.mathTypeset = document.querySelectorAll('mjx-container').length;
    document.body.dataset.mathErrors = document.querySelectorAll('mjx-merror').length;
    var pres = Array.from(document.querySelectorAll('main pre'));
    document.body.dataset.preTotal = pres.length;
    var wide = function (p) { return p.scrollWidth > p.clientWidth + 1; };
    document.body.dataset.preOverflowing = pres.filter(wide).length;
    document.body.dataset.probeDone = '1';
  };
  var wait = function () {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) { MathJax.startup.promise.then(done); }
    else { setTimeout(wait, 50); }
  };
  wait();
});
</script>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest's output clean
        pass


def _missing() -> str | None:
    if not (HTML / PAGE).is_file():
        return f"{HTML / PAGE} not built: run `jupyter-book build . --all -W -n --keep-going` first"
    if shutil.which("chromium") is None:
        return "chromium not installed: run `bash .ci/install-browser-check.sh`"
    return None


@pytest.fixture(scope="module")
def served_site(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("LLMF_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    site = tmp_path_factory.mktemp("site") / "html"
    shutil.copytree(HTML, site)
    page = site / PAGE
    html = page.read_text(encoding="utf-8")
    assert not CDN_MATHJAX.search(html), "the page loads MathJax from a CDN: offline readers see raw LaTeX"
    assert LOCAL_MATHJAX.search(html), "the page does not load the site's own MathJax (_static/mathjax)"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not shipped with the site"
    html = html.replace("</body>", PROBE + "</body>")
    page.write_text(html, encoding="utf-8")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{PAGE.as_posix()}"
    server.shutdown()


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chromium", *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *extra, url],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.browser
def test_attention_page_renders_math_and_plots(served_site, tmp_path):
    result = _chromium(served_site, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body, "no <body> in the rendered DOM"
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(0)))
    assert attrs.get("probe-done") == "1", f"MathJax never finished typesetting: {attrs}"
    assert int(attrs["math-typeset"]) >= 20, f"too little typeset math: {attrs}"
    assert int(attrs["math-errors"]) == 0, f"MathJax reported errors: {attrs}"
    assert int(attrs["images-total"]) >= 3, f"expected the chapter's plots: {attrs}"
    # long code and output lines wrap (_static/wrap-long-lines.css): none runs off the right edge
    assert int(attrs["pre-total"]) >= 20 and int(attrs["pre-overflowing"]) == 0, attrs
    assert attrs["images-loaded"] == attrs["images-total"], f"some plot images did not load: {attrs}"
    assert "colab.research.google.com" in result.stdout, "no Colab launch button on the page"


@pytest.mark.browser
def test_attention_page_screenshot(served_site, tmp_path):
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    target = shots / "attention.png"
    target.unlink(missing_ok=True)
    result = _chromium(served_site, tmp_path / "profile", f"--screenshot={target}", "--window-size=1280,2200")
    assert result.returncode == 0, result.stderr[-2000:]
    assert target.is_file() and target.stat().st_size > 50_000, "screenshot missing or blank"
