"""The chapter as a static website (`make book`): a Sphinx extension.

At `builder-inited` it writes the pages into Sphinx's source folder (d2l_book.site): START.md
as the landing page, the four walkthroughs interleaved into one page of synced framework tabs
(d2l_book.interleave), the portable and sharded checkpoint notebooks and the exercise
workbooks. Each page then gets links to its notebooks, right under its title: a download of
the .ipynb and, when `d2l_hub` is set, "Open in JupyterHub" (nbgitpuller).

Config values (conf.py, or `-D name=value`): d2l_root (the repository), d2l_hub (a JupyterHub
URL, or empty for no hub links), d2l_repo and d2l_branch (what the hub pulls).
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.errors import ConfigError

from d2l_book.site import DOWNLOADS, WALKTHROUGH, hub_link, write_sources


def _generate(app: Sphinx) -> None:
    config = app.config
    if config.d2l_hub and not (config.d2l_repo and config.d2l_branch):
        raise ConfigError("d2l_hub needs d2l_repo and d2l_branch (make book HUB=... REPO=...)")
    pages = write_sources(Path(config.d2l_root), Path(app.confdir), Path(app.srcdir))
    app.d2l_pages = {p.docname: p.notebooks for p in pages}


def _links(app: Sphinx, doctree: nodes.document) -> None:
    """Links to the page's notebooks, under its title (before Sphinx collects downloads)."""
    notebooks = app.d2l_pages.get(app.env.docname)
    if not notebooks:
        return
    config = app.config
    several = len(notebooks) > 1
    box = nodes.container(classes=["d2l-notebook-links"])
    para = nodes.paragraph("", "Download the notebook" + ("s: " if several else ": "))
    for i, (label, path) in enumerate(notebooks):
        name = f"{label}" if several else Path(path).name
        para += addnodes.download_reference(
            "", "", nodes.literal("", name), reftarget=f"/{DOWNLOADS}/{path}",
            refdoc=app.env.docname, refdomain="", reftype="download", refexplicit=True)
        para += nodes.Text(", " if i < len(notebooks) - 1 else "")
    box += para
    if config.d2l_hub:
        para = nodes.paragraph("", "Open in JupyterHub: ")
        for i, (label, path) in enumerate(notebooks):
            url = hub_link(config.d2l_hub, config.d2l_repo, config.d2l_branch, path)
            para += nodes.reference("", label if several else Path(path).name, refuri=url,
                                    classes=["d2l-hub-link"])
            para += nodes.Text(", " if i < len(notebooks) - 1 else "")
        box += para
    section = next(iter(doctree.findall(nodes.section)))
    title = section.next_node(nodes.title)
    section.insert(section.index(title) + 1, box)


def _cell_classes(app: Sphinx, doctree: nodes.document) -> None:
    """The interleaved page's cells get myst-nb's class names (and so its style): the
    container directive that wraps them turns `cell_input` into `cell-input`."""
    if app.env.docname == WALKTHROUGH:
        for node in doctree.findall(nodes.container):
            node["classes"] = [c.replace("-", "_") if c in ("cell-input", "cell-output") else c
                               for c in node["classes"]]


def setup(app: Sphinx) -> dict:
    app.add_config_value("d2l_root", "", "env", types=[str])
    app.add_config_value("d2l_hub", "", "env", types=[str])
    app.add_config_value("d2l_repo", "", "env", types=[str])
    app.add_config_value("d2l_branch", "main", "env", types=[str])
    app.connect("builder-inited", _generate)
    app.connect("doctree-read", _links, priority=400)
    app.connect("doctree-read", _cell_classes)  # before the download collector (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
