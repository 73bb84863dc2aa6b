"""The site's pages, written into Sphinx's source folder from the repository's files.

Nothing here is committed as a page: the landing page is START.md with its links turned into
the site's, the walkthrough page is interleaved from the four notebooks
(d2l_book.interleave), and the other pages are the committed notebooks, copied with their
stored outputs. Unchanged files are not rewritten, so Sphinx rebuilds only what changed.
"""

from __future__ import annotations

import copy
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import nbformat

from d2l_book.interleave import Same, render

WALKTHROUGH = "notebooks/read-write"
DOWNLOADS = "_notebooks"  # pristine copies of the notebooks, for the download links


@dataclass
class Page:
    docname: str
    notebooks: list[tuple[str, str]]  # (label, the notebook's path in the repository)


def hub_link(hub: str, repo: str, branch: str, path: str) -> str:
    """nbgitpuller's link: the hub clones (or updates) `repo` at `branch` into a folder named
    after it, then opens `path` (repository-relative) in JupyterLab."""
    folder = repo.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    query = urlencode({"repo": repo, "urlpath": f"lab/tree/{folder}/{path}", "branch": branch},
                      safe="/")
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def _write(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _notebook_text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def load_config(confdir: Path) -> dict:
    with open(confdir / "book.toml", "rb") as f:
        return tomllib.load(f)


def _start_page(root: Path, config: dict, toctree: str) -> str:
    """START.md, its links to JupyterLab's files turned into links to the site's pages, and
    book.toml's [start] note under its title."""
    text = (root / "START.md").read_text()
    links = {}
    for old, new in config["start"]["links"].items():
        for fw in config["frameworks"]:
            links[old.format(fw=fw)] = new.format(fw=fw)

    def link(m: re.Match) -> str:
        label, target = m.group(1), m.group(2)
        if target not in links:
            return m.group(0)
        new = links[target]
        if label == target and new.endswith(".ipynb"):  # the path shown is the page's
            label = new
        if "?" in new:  # a query (`?framework=`): past MyST's resolver, as the browser gets it
            return f'<a href="{new}">{label}</a>'
        return f"[{label}]({new})"

    text = re.sub(r"\[([^\]]*)\]\(([^)\s]+)\)", link, text)
    title, _, rest = text.partition("\n")  # the site's note goes right under the title
    note = config["start"].get("note", "").strip()
    text = f"{title}\n\n:::{{note}}\n{note}\n:::\n{rest}" if note else text
    return text.rstrip("\n") + "\n\n" + toctree


def _with_figure(nb: nbformat.NotebookNode, figure: dict, srcdir: Path, root: Path):
    nb = copy.deepcopy(nb)
    image = Path(figure["image"])
    _write(srcdir / Path(figure["page"]).parent / image.name, (root / image).read_bytes())
    after = " ".join(figure["after"].split())
    at = next(i for i, c in enumerate(nb.cells)
              if c.cell_type == "markdown" and after in " ".join(c.source.split()))
    caption = " ".join(figure["caption"].split())
    cell = nbformat.v4.new_markdown_cell(
        f"```{{figure}} {image.name}\n:alt: {figure['alt']}\n\n{caption}\n```")
    cell.id = "d2l-book-figure"
    nb.cells.insert(at + 1, cell)
    return nb


def write_sources(root: Path, confdir: Path, srcdir: Path) -> list[Page]:
    """Every page of the site into `srcdir`; returns each page with the notebooks it shows."""
    config = load_config(confdir)
    labels = config["frameworks"]
    pages = [Page(WALKTHROUGH, [(labels[fw], f"notebooks/{fw}/read-write.ipynb") for fw in labels])]
    for name in ("portable-checkpoints", "sharded-checkpoints"):
        pages.append(Page(f"notebooks/{name}", [(name, f"notebooks/{name}.ipynb")]))
    for fw in labels:
        pages.append(Page(f"notebooks/{fw}/exercises", [(labels[fw], f"notebooks/{fw}/exercises.ipynb")]))

    for page in pages:
        for _, path in page.notebooks:
            _write(srcdir / DOWNLOADS / path, (root / path).read_bytes())

    same = [Same(s["shown"], {fw: s[fw] for fw in labels}) for s in config["same"]]
    walks = {fw: nbformat.read(root / path, as_version=4) for fw, (_, path)
             in zip(labels, pages[0].notebooks)}
    _write(srcdir / f"{WALKTHROUGH}.md",
           render(walks, labels, same, config["alignment"]["shown_from"]))

    figure = config["figure"]
    for page in pages[1:]:
        path = page.notebooks[0][1]
        nb = nbformat.read(root / path, as_version=4)
        if path == figure["page"]:
            nb = _with_figure(nb, figure, srcdir, root)
        _write(srcdir / path, _notebook_text(nb))

    toctree = "\n\n".join(
        f"```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + "\n".join(docs) + "\n```"
        for caption, docs in (
            ("The chapter", [WALKTHROUGH]),
            ("Exercises", [f"notebooks/{fw}/exercises" for fw in labels]),
            ("Beyond the book", ["notebooks/portable-checkpoints", "notebooks/sharded-checkpoints"])))
    _write(srcdir / "index.md", _start_page(root, config, toctree + "\n"))
    return pages
