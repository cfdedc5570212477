"""The web pages in a real browser: the built documentation and ``mempamal report``'s HTML.

Tests marked ``browser`` open them in headless Chromium (Debian's ``chromium``, installed with
apt-get when missing and root), driven by Playwright with that executable (no browser download):
every page loads with no console error, no failed request and every image decoded, every internal
link and #fragment resolves, and the search page finds "permutation". The site is
``$MEMPAMAL_DOCS_HTML`` when set (.ci/run builds it once, before the tests), otherwise built here
(about a minute). MEMPAMAL_TEST_BROWSER=0 turns them off; they skip otherwise only where Chromium
or Playwright cannot be had, naming which.
"""
import os
import re
import shutil
import subprocess
import sys
import threading
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.browser


def _chromium_executable():
    """Debian's chromium (or $MEMPAMAL_CHROMIUM), installed with apt-get when missing; skips naming what
    is missing only when it cannot be installed."""
    found = os.environ.get("MEMPAMAL_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("browser tests need Chromium: no `chromium` executable, and it cannot be installed "
                    "here (needs root and apt-get: apt-get install chromium; or set MEMPAMAL_CHROMIUM)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=900)
        if done.returncode:
            pytest.skip(f"browser tests need Chromium: no `chromium` executable, and `{' '.join(step)}` failed "
                        f"({done.returncode}): {(done.stdout + done.stderr)[-800:]}")
    return shutil.which("chromium") or pytest.fail("apt-get installed chromium, but no `chromium` on PATH")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, for this module: Playwright's event loop is gone before other modules run."""
    if os.environ.get("MEMPAMAL_TEST_BROWSER") == "0":
        pytest.skip("MEMPAMAL_TEST_BROWSER=0: browser tests turned off")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package: pip install '.[test]'")
    executable = _chromium_executable()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The built documentation: $MEMPAMAL_DOCS_HTML, or built into a temporary directory."""
    given = os.environ.get("MEMPAMAL_DOCS_HTML")
    if given:
        html = Path(given).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"MEMPAMAL_DOCS_HTML={given}: no index.html there; build the site first "
                        "(python -m sphinx -b html docs docs/_build/html) or unset it", pytrace=False)
        return html
    html = tmp_path_factory.mktemp("docs-html")
    built = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", "docs", str(html)], cwd=ROOT,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    if built.returncode:
        pytest.fail(f"the documentation did not build ({built.returncode}):\n{built.stderr[-3000:]}", pytrace=False)
    return html


@pytest.fixture(scope="module")
def served_site(site):
    """The site over HTTP on loopback (a server's view: absolute paths and the search page's requests)."""
    handler = partial(_QuietHandler, directory=str(site))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class _Anchors(HTMLParser):
    """The ids (and <a name>s) of an HTML file: the #fragments that resolve in it."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (key == "name" and tag == "a"):
                self.names.add(value)


class LinkChecker:
    """Resolves the internal links of pages under ``base`` (file:// or http:// URL of ``root``)."""

    def __init__(self, root, base):
        self.root, self.base, self._anchors = Path(root), base, {}

    def local_file(self, url):
        path = self.root / unquote(urlsplit(url).path[len(urlsplit(self.base).path):])
        return path / "index.html" if url.endswith("/") or path.is_dir() else path

    def anchors(self, path):
        if path not in self._anchors:
            parser = _Anchors()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            self._anchors[path] = parser.names
        return self._anchors[path]

    def problems(self, links):
        """Each internal link of ``links`` ({href: absolute URL, docs: a viewcode [docs] link}) whose file
        or #fragment is missing."""
        found = []
        for link in links:
            url, fragment = urldefrag(link["href"])
            if not url.startswith(self.base):
                continue  # another site, mailto:, data:
            target = self.local_file(url)
            if not target.is_file():
                found.append(f"link to a missing file: {link['href']}")
            # viewcode's [docs] links name an object by the first module that documented one of its
            # module's objects (Sphinx's open issue sphinx-doc/sphinx#6651): their file is checked.
            elif (fragment and target.suffix == ".html" and not link["docs"]
                    and unquote(fragment) not in self.anchors(target)):
                found.append(f"link to a missing #fragment: {link['href']}")
        return found


# Every link of the page (absolute URLs), and the images that did not load: each image is made eager
# (a lazy one below the fold would never load) and decoded; decode() rejects a missing or broken file.
_COLLECT = """async () => {
    const images = [...document.images];
    images.forEach(img => { img.loading = "eager"; });
    await Promise.all(images.map(img => img.decode().catch(() => null)));
    return {
        links: [...document.querySelectorAll("a[href], link[href], area[href]")].map(
            a => ({href: a.href, docs: a.classList.contains("viewcode-back")})),
        broken: images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src || img.outerHTML),
        images: images.length,
    };
}"""


class PageWatch:
    """What goes wrong on a Playwright page: console errors, uncaught exceptions, failed requests. Requests
    off this machine are refused (and so reported): a page must work offline."""

    def __init__(self, page):
        self.page, self.errors = page, []
        page.route(re.compile(r"^(?!file:|data:|blob:|https?://127\.0\.0\.1[:/])"), lambda route: route.abort())
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught exception: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status}: {r.url}"))

    def visit(self, url, checker):
        """Load ``url``; returns (its problems, the number of images it has)."""
        self.errors = []
        self.page.goto(url, wait_until="load")
        found = self.page.evaluate(_COLLECT)
        problems = self.errors + [f"image not loaded: {src}" for src in found["broken"]]
        return problems + checker.problems(found["links"]), found["images"]


def test_the_checks_catch_a_broken_page(page, tmp_path):
    # The checks below must be able to fail: a page with one of each fault, and one without.
    (tmp_path / "target.html").write_text("<html><body><h1 id='here'>target</h1></body></html>")
    (tmp_path / "bad.html").write_text(
        "<html><body><script>console.error('logged'); undefinedFunction();</script>"
        "<img src='missing.png' alt='x'><a href='nowhere.html'>a</a><a href='target.html#gone'>b</a>"
        "<a href='target.html#here'>c</a><a href='https://example.org/x'>d</a>"
        "<script src='https://example.org/x.js'></script></body></html>")
    base = tmp_path.as_uri() + "/"
    watch, checker = PageWatch(page), LinkChecker(tmp_path, base)
    problems, n_images = watch.visit(base + "bad.html", checker)
    assert n_images == 1
    text = "\n".join(problems)
    for expected in ["console error: logged", "uncaught exception: undefinedFunction is not defined",
                     "image not loaded: " + base + "missing.png", "link to a missing file: " + base + "nowhere.html",
                     "link to a missing #fragment: " + base + "target.html#gone",
                     "request failed: https://example.org/x.js"]:
        assert expected in text, f"{expected!r} not reported; reported:\n{text}"
    assert not [p for p in problems if p.endswith(("#here", "example.org/x"))], text  # both fine
    good, _ = watch.visit(base + "target.html", checker)
    assert good == []


def _expected_pages():
    """The pages the site must have: every source page (user guide, getting started, cli...), the API's
    index and a generated page, the gallery's pages, and search."""
    sources = [p.relative_to(ROOT / "docs").with_suffix(".html")
               for p in [*(ROOT / "docs").glob("*.rst"), *(ROOT / "docs" / "user_guide").glob("*.rst")]
               if p.stem != "gallery_header"]
    gallery = [Path("auto_examples") / (p.stem + ".html") for p in (ROOT / "examples").glob("*_example.py")]
    return sorted({*sources, *gallery, Path("auto_examples/index.html"), Path("search.html"), Path("api.html"),
                   Path("generated/mempamal.Experiment.html"), Path("generated/mempamal.run.html")})


def test_every_page_of_the_site_loads_cleanly(page, site):
    expected = _expected_pages()
    missing = [str(p) for p in expected if not (site / p).is_file()]
    assert not missing, f"pages missing from the built site {site}: {missing}"
    pages = sorted(p.relative_to(site) for p in site.rglob("*.html") if p.relative_to(site).parts[0] != "_static")
    assert len(pages) >= len(expected)
    base = site.as_uri() + "/"
    watch, checker, problems, n_images = PageWatch(page), LinkChecker(site, base), [], 0
    for rel in pages:
        found, images = watch.visit(base + rel.as_posix(), checker)
        problems += [f"{rel}: {p}" for p in found]
        n_images += images
    assert not problems, f"{len(problems)} problems in {len(pages)} pages:\n" + "\n".join(problems)
    assert n_images >= 5, "the site's figures (README's iris figure, the gallery's) were not found"


def test_the_search_page_finds_permutation(page, served_site, site):
    # Over HTTP: Sphinx's search fetches each result's page for its snippet, which Chromium refuses
    # to file:// pages (the results are listed, with console errors).
    watch, checker = PageWatch(page), LinkChecker(site, served_site)
    watch.errors = []
    page.goto(served_site + "search.html?q=permutation", wait_until="load")
    summary = page.locator("#search-results p.search-summary")
    summary.filter(has_text="found").wait_for(timeout=30_000)  # set once every result is listed
    results = page.locator("#search-results ul.search li a").evaluate_all("links => links.map(a => a.href)")
    assert served_site + "user_guide/permutations.html" in [r.split("?")[0].split("#")[0] for r in results], \
        f"{summary.inner_text()}: {results}"
    assert watch.errors == []
    assert checker.problems([{"href": r, "docs": False} for r in results]) == []


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """``mempamal report`` of a small finished run (iris, 2 x 2 folds, a 2-point grid, 4 permutations)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from mempamal import Experiment, run

    X, y = load_iris(return_X_y=True)
    exp = Experiment(LogisticRegression(), cv=StratifiedKFold(2, shuffle=True, random_state=0),
                     param_grid={"C": [0.1, 10.0]}, inner_cv=StratifiedKFold(2), scoring="accuracy",
                     n_permutations=4)
    workdir = tmp_path_factory.mktemp("report") / "run"
    exp.write(X, y, workdir)
    run(workdir, backend="local", n_jobs=2, progress=False)
    output = workdir.parent / "report.html"
    done = subprocess.run([sys.executable, "-m", "mempamal", "report", str(workdir), "-o", str(output)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stderr
    return output


def test_the_report_opens_cleanly(page, report):
    base = report.parent.as_uri() + "/"
    problems, n_images = PageWatch(page).visit(base + report.name, LinkChecker(report.parent, base))
    assert problems == []
    assert n_images == 1  # the figure, embedded
    assert page.locator("h2", has_text="Results").count() == 1 and page.locator("table").count() >= 1
