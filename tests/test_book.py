"""The chapter as a website (`make book`): built once for this module, as `make book
HUB=... REPO=...` builds it, then read as HTML and, in Debian's Chromium, as a reader uses it.

The browser test keeps a screenshot of the walkthrough page in pytest's temporary folder
(the path is printed; `pytest -s` shows it, `--basetemp=DIR` puts it in DIR).
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import nbformat
import pytest

from conftest import FRAMEWORKS, ROOT
from helpers.book import build, require_book_packages, serve
from helpers.solutions import hidden_lines

require_book_packages()

from bs4 import BeautifulSoup  # noqa: E402 (the theme's dependency: only once it is there)

HUB, REPO = "https://hub.example.org", "https://git.example.org/d2l/d2l-io.git"
WALKTHROUGH = "notebooks/read-write.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    html, seconds = build(tmp_path_factory.mktemp("book"), hub=HUB, repo=REPO)
    print(f"built the site in {seconds:.1f} s")
    return html


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(), "html.parser")


def _code(node) -> str:
    return node.get_text().strip("\n")


def test_every_walkthrough_cell_shows_once_in_its_tab(site):
    page = _soup(site / WALKTHROUGH)
    shown = {fw: [] for fw in FRAMEWORKS}
    for label in page.select("label.sd-tab-label"):
        assert label["data-sync-group"] == "framework"
        content = label.find_next_sibling("div", class_="sd-tab-content")
        shown[label["data-sync-id"]] += [_code(c) for c in content.select("div.cell_input pre")]
    for fw in FRAMEWORKS:
        nb = nbformat.read(ROOT / "notebooks" / fw / "read-write.ipynb", as_version=4)
        cells = [c.source.strip("\n") for c in nb.cells if c.cell_type == "code"]
        assert shown[fw] == cells, f"{fw}: cells lost, duplicated or out of order"
    # and no cell outside the tabs
    assert len(page.select("div.cell_input")) == sum(map(len, shown.values()))


def test_outputs_and_shared_prose(site):
    page = _soup(site / WALKTHROUGH)
    text = page.get_text()
    # The stored outputs are shown, not recomputed (the build runs nothing).
    nb = nbformat.read(ROOT / "notebooks" / "pytorch" / "read-write.ipynb", as_version=4)
    out = next(o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "text/plain" in o.get("data", {}))
    assert out.data["text/plain"] in text
    # A paragraph all four walkthroughs share shows once, outside the tabs.
    shared = "Both instances have the same parameters, so the same input"
    assert text.count(shared) == 1
    assert all(shared not in t.get_text() for t in page.select("div.sd-tab-content"))
    # A framework-only section shows in its own tab only.
    nnx = page.find(string=re.compile("The Same with Flax NNX"))
    assert nnx.find_parent("div", class_="sd-tab-content").find_previous_sibling(
        "label")["data-sync-id"] == "jax"


def test_pages_and_links(site):
    index = _soup(site / "index.html")
    assert index.h1.get_text().startswith("Loading and Saving: start here")
    note = index.select_one("div.admonition.note")  # book.toml's [start] note, under the title
    assert note and "chapter as a website" in note.get_text() and "make lab" in note.get_text()
    hrefs = {a["href"] for a in index.select("a[href]")}
    assert {f"{WALKTHROUGH}?framework={fw}" for fw in FRAMEWORKS} <= hrefs
    assert {f"notebooks/{fw}/exercises.html" for fw in FRAMEWORKS} <= hrefs
    portable = _soup(site / "notebooks" / "portable-checkpoints.html")
    assert (site / "notebooks" / portable.select_one("figure img")["src"]).read_bytes() == (
        ROOT / "benchmarks" / "checkpoint_formats.png").read_bytes()
    pages = {WALKTHROUGH: [f"notebooks/{fw}/read-write.ipynb" for fw in FRAMEWORKS],
             "notebooks/portable-checkpoints.html": ["notebooks/portable-checkpoints.ipynb"],
             "notebooks/sharded-checkpoints.html": ["notebooks/sharded-checkpoints.ipynb"]}
    pages.update({f"notebooks/{fw}/exercises.html": [f"notebooks/{fw}/exercises.ipynb"]
                  for fw in FRAMEWORKS})
    for page, notebooks in pages.items():
        html = site / page
        links = _soup(html).select_one(".d2l-notebook-links")
        downloads = [a["href"] for a in links.select("a.download")]
        assert [(html.parent / d).read_bytes() for d in downloads] == [
            (ROOT / nb).read_bytes() for nb in notebooks], page
        hub = [urllib.parse.urlsplit(a["href"]) for a in links.select("a.d2l-hub-link")]
        assert [f"{u.scheme}://{u.netloc}{u.path}" for u in hub] == [
            f"{HUB}/hub/user-redirect/git-pull"] * len(notebooks)
        assert [urllib.parse.parse_qs(u.query) for u in hub] == [
            {"repo": [REPO], "urlpath": [f"lab/tree/d2l-io/{nb}"], "branch": ["main"]}
            for nb in notebooks], page


def test_no_hub_link_without_a_hub(tmp_path):
    html, _ = build(tmp_path)  # as plain `make book` builds it
    links = _soup(html / WALKTHROUGH).select_one(".d2l-notebook-links")
    assert len(links.select("a.download")) == 4 and not links.select("a.d2l-hub-link")
    assert "hub/user-redirect" not in (html / WALKTHROUGH).read_text()


def _sources(path: Path) -> str:
    """A notebook's cells and their text outputs."""
    text = []
    for cell in nbformat.read(path, as_version=4).cells:
        text.append(cell.source)
        for out in cell.get("outputs", []):
            text.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
    return "\n".join(text)


def test_no_solution_and_no_grading_code(site):
    text = "\n".join(_soup(p).get_text() for p in site.rglob("*.html"))
    text += "\n".join(map(_sources, site.rglob("*.ipynb")))  # the downloads
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    # Lines the solutions and the grader's checks have and no notebook shows (imports, and
    # helpers the portable and sharded notebooks teach, are shared).
    shown = "\n".join(map(_sources, (ROOT / "notebooks").rglob("*.ipynb")))
    for fw in FRAMEWORKS:
        secret = hidden_lines(nbformat.read(ROOT / "solutions" / fw / "exercises.ipynb", 4))
        secret = {l for l in secret if l not in shown}
        assert secret and not sorted(l for l in secret if l in text)[:5], fw
    checks = {l.strip() for p in (ROOT / "grading" / "checks").glob("*.py")
              for l in p.read_text().splitlines()}
    checks = {l for l in checks if len(l) > 25 and l not in shown}
    assert checks and not sorted(l for l in checks if l in text)[:5]


@pytest.mark.slow  # drives Chromium
def test_in_chromium(site, tmp_path_factory):
    from helpers.lab_session import chromium, require_chromium

    require_chromium()
    errors, elsewhere = [], []
    with serve(site) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(30_000)
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))

        def route(r):
            if r.request.url.startswith(base + "/"):
                return r.continue_()
            elsewhere.append(r.request.url)
            return r.abort()

        page.route("**/*", route)

        def selected() -> set[str]:
            """The framework each tab set on the page shows."""
            return set(page.eval_on_selector_all(
                ".sd-tab-set > input:checked + label.sd-tab-label",
                "labels => labels.map(l => l.dataset.syncId)"))

        page.goto(f"{base}/{WALKTHROUGH}")
        sets = page.locator(".sd-tab-set").count()
        assert sets > 10 and selected() == {"mxnet"}
        page.locator("label.sd-tab-label", has_text="JAX").nth(3).click()
        assert selected() == {"jax"} and page.locator(
            ".sd-tab-set > input:checked").count() == sets
        page.locator(".bd-sidenav a", has_text="Portable").click()  # another page, then back
        page.wait_for_url("**/portable-checkpoints.html")
        page.locator(".bd-sidenav a", has_text="File I/O: Loading and Saving").click()
        page.wait_for_url(f"**/{WALKTHROUGH}")
        assert selected() == {"jax"}
        page.reload()
        assert selected() == {"jax"}
        page.goto(f"{base}/{WALKTHROUGH}?framework=tensorflow")
        assert selected() == {"tensorflow"}
        page.goto(f"{base}/{WALKTHROUGH}?framework=jax")
        shot = tmp_path_factory.mktemp("book-screenshots") / "walkthrough.png"
        page.locator(".sd-tab-set").nth(4).scroll_into_view_if_needed()
        page.screenshot(path=str(shot))
        print(f"screenshot of the walkthrough page: {shot}")

        page.goto(f"{base}/search.html?q=safetensors")
        found = page.locator("#search-results ul.search li a")
        found.first.wait_for()
        hits = {a.split("#")[0].split("?")[0] for a in found.evaluate_all(
            "links => links.map(l => l.getAttribute('href'))")}
        assert {WALKTHROUGH, "notebooks/portable-checkpoints.html"} <= hits
    assert shot.stat().st_size > 10_000
    assert errors == [] and elsewhere == []
