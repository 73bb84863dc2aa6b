"""Sphinx configuration of the chapter's website: `make book` (see the README, "The chapter as
a website"). The pages are written into the source folder by the d2l_book extension."""

from pathlib import Path

project = "Loading and Saving"
author = "Dive into Deep Learning, File I/O"
copyright = "the authors of Dive into Deep Learning and of this workbook"

extensions = ["myst_nb", "sphinx_design", "d2l_book"]
d2l_root = str(Path(__file__).resolve().parent.parent)

root_doc = "index"
exclude_patterns = ["_notebooks"]  # the notebooks' copies that the download links serve
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 2

# The pages show the stored outputs, which strict nbval checks: no notebook is run.
nb_execution_mode = "off"
# Nothing from another host: no require.js or ipywidgets from a CDN (no notebook has widgets).
nb_ipywidgets_js = {}

html_theme = "sphinx_book_theme"
html_title = "Loading and Saving"
html_static_path = ["_static"]
html_css_files = ["d2l-book.css"]
html_favicon = "_static/favicon.svg"  # without one, browsers ask for /favicon.ico (a 404)
html_context = {"default_mode": "auto"}  # else the theme logs "invalid theme mode" (an error)
html_theme_options = {
    # d2l_book puts the notebook's own download (and hub) links under each title; the
    # theme's button would offer the interleaved page's generated .md.
    "use_download_button": False,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
}
