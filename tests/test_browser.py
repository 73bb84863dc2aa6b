"""The workbook in a real browser: Chromium, driven by Playwright, on JupyterLab started as
`make lab` starts it (python -m d2l_utils.lab), over a copy of this repository's files.

nbval already executes every notebook; this covers what only a browser shows: the start page
rendered, nbgrader's authoring tools hidden from students, a walkthrough run with Run All on
the d2l-io-mxnet kernel without an error, a .py twin opened by double-click as a notebook, and Save
leaving git clean. JupyterLab virtualises cells that are off screen, so text is read with
textContent, never innerText.

Chromium is Debian's (`apt-get install chromium`): Playwright cannot download its own here.
Without it these tests skip, saying so, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from helpers.lab_session import (chromium, copy_repository, git, isolated_env, jupyterlab,
                                 require_chromium)

pytestmark = pytest.mark.slow  # drives Chromium through JupyterLab: not in `make check`

WALKTHROUGH = "notebooks/mxnet/read-write.ipynb"  # the quickest to run
TWIN = "read-write.py"  # in notebooks/pytorch/

require_chromium()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab over a copy of the repository's files, committed in a git repository of its
    own; yields (the URL it prints, the copy)."""
    base = tmp_path_factory.mktemp("lab")
    copy = base / "repo"
    copy_repository(copy)
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    with jupyterlab(copy, isolated_env(base), base / "lab.log") as url:
        yield url, copy


@pytest.fixture(scope="module")
def page(lab):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        yield page


def _notebook(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def _wait_for_kernel(page, kernel):
    panel = _notebook(page)
    page.wait_for_function(
        """kernel => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName')]
                     .some(e => e.textContent.trim() === kernel)""", arg=kernel)
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    return panel


def _save(page, copy, notebook: str):
    """Save the current notebook and wait until JupyterLab has written both files of the pair
    (jupyter_server writes in place after a .~ backup copy: wait until that is gone too)."""
    pair = [(copy / notebook).with_suffix(".ipynb"), (copy / notebook).with_suffix(".py")]
    before = [p.stat().st_mtime_ns for p in pair]
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        written = all(p.stat().st_mtime_ns != b for p, b in zip(pair, before))
        if written and not list(pair[0].parent.glob(".~*")):
            return
        time.sleep(0.1)
    raise AssertionError(f"{notebook}: Save did not write the pair within 30 s")


def test_start_page_then_run_all_then_save(lab, page):
    url, copy = lab
    page.goto(url)
    # The start page, rendered; it links every walkthrough and each framework's exercises.
    start = page.locator(".jp-RenderedMarkdown").first
    start.locator("h1", has_text="Loading and Saving").wait_for()
    links = start.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    # (JupyterLab resolves a relative link to the file's URL, and opens it in a tab on a click.)
    for target in (WALKTHROUGH, "work/pytorch/exercises.ipynb"):
        assert any(f"/files/{target}?" in link for link in links), (target, links)
    # Students see none of nbgrader's authoring tools.
    menus = page.locator(".lm-MenuBar-itemLabel").all_text_contents()
    assert "Kernel" in menus and "Nbgrader" not in menus, menus
    assert page.get_by_text("Create Assignment").count() == 0
    kernels = urllib.request.urlopen(url.replace("/lab/tree/START.md", "/api/kernelspecs"))
    offered = json.loads(kernels.read())["kernelspecs"]
    assert sorted(offered) == ["d2l-io", "d2l-io-mxnet"], sorted(offered)

    start.locator("a", has_text=WALKTHROUGH).click()
    panel = _wait_for_kernel(page, "d2l-io-mxnet")
    assert panel.get_by_text("Validate").count() == 0
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
    page.get_by_text("Run All Cells", exact=True).click()
    page.wait_for_function(
        """() => {
            const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
        }""", timeout=120_000)
    _wait_for_kernel(page, "d2l-io-mxnet")
    text = panel.locator(".jp-Notebook").evaluate("e => e.textContent")
    errors = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.first.text_content()
    assert "Traceback" not in text
    # Saving the run notebook writes the outputs a fresh run gives: the committed ones.
    _save(page, copy, WALKTHROUGH)
    assert git(copy, "status", "--porcelain") == ""


def test_twin_opens_as_notebook_and_saves_clean(lab, page):
    url, copy = lab
    browser_listing = page.locator(".jp-DirListing-content")
    page.locator(".jp-FileBrowser-crumbs .jp-BreadCrumbs-home").click()
    for name in ("notebooks", "pytorch"):
        browser_listing.locator(".jp-DirListing-item", has_text=re.compile(rf"^{name}")).first.dblclick()
    browser_listing.get_by_text(TWIN, exact=True).dblclick()
    tab = page.locator(".lm-TabBar-tab.jp-mod-current .lm-TabBar-tabLabel")
    tab.filter(has_text=TWIN).wait_for()
    panel = _wait_for_kernel(page, "d2l-io")
    assert panel.locator(".jp-Cell").count() > 10  # a notebook, not the text editor
    assert page.locator(".jp-FileEditor:not(.lm-mod-hidden)").count() == 0
    _save(page, copy, f"notebooks/pytorch/{TWIN}")
    assert git(copy, "status", "--porcelain") == ""
