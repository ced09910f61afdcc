"""Sphinx configuration for the collapse_sim documentation.

Build (from the repository root, with ``pip install -e ".[docs]"``)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Generated at build time (all ignored by git): ``docs/api/`` (the API pages, from
``collapse_sim.__all__`` by ``docs/apigen.py``), ``docs/api/generated/`` (autosummary
stubs), ``docs/auto_examples/`` (the sphinx-gallery pages, scripts and notebooks of
``examples/``) and ``docs/_build/``.

sphinx-gallery runs every example with the working directory set to the folder holding
the script, and the examples write their PNG into the working directory. So that a
build writes nothing into ``examples/``, the scripts are mirrored into
``docs/_build/gallery_src/`` first and executed from there.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import apigen  # noqa: E402  (docs/apigen.py)

import collapse_sim  # noqa: E402

# -- project --------------------------------------------------------------------------
project = "collapse_sim"
author = "collapse_sim developers"
copyright = "2026, collapse_sim developers"
release = collapse_sim.__version__
version = ".".join(release.split(".")[:2])

# -- general --------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax 3 shipped in the wheel: copied into _static/mathjax/ and loaded from there
    # (sets ``mathjax_path``), so the maths renders offline, with no CDN.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
root_doc = "index"
default_role = "code"
nitpicky = False

# -- API reference: generated from collapse_sim.__all__ ----------------------------------
apigen.write_api_pages(DOCS / "api")
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"exclude-members": "__init__, __post_init__"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- sphinx-gallery ---------------------------------------------------------------------
GALLERY_SRC = DOCS / "_build" / "gallery_src"


#: What the examples write (left in the mirror, never copied from ``examples/``).
_OUTPUTS = (".png", ".jpg", ".svg", ".gif", ".pdf", ".csv", ".npz", ".parquet")


def _stage_examples(src: Path = ROOT / "examples", dst: Path = GALLERY_SRC) -> None:
    """Mirror ``examples/`` (scripts, gallery header, data files such as TOML specs) into ``dst``.

    Outputs the scripts wrote on earlier builds stay in ``dst``; mirrored files whose
    source has gone are removed, so a deleted example leaves the gallery.
    """
    dst.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in src.iterdir()
              if p.is_file() and not p.name.startswith(".") and p.suffix not in _OUTPUTS}
    for name in wanted:
        s, d = src / name, dst / name
        if not d.exists() or d.read_bytes() != s.read_bytes():
            shutil.copyfile(s, d)
    for p in dst.iterdir():
        if p.is_file() and p.suffix not in _OUTPUTS and p.name not in wanted:
            p.unlink()


_stage_examples()

sphinx_gallery_conf = {
    "examples_dirs": os.path.relpath(GALLERY_SRC, DOCS),  # a mirror of ../examples
    "gallery_dirs": "auto_examples",
    "filename_pattern": re.escape(os.sep) + "plot_",  # execute every plot_*.py
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "reset_modules": ("matplotlib",),
    "remove_config_comments": True,
    "show_memory": False,
    "image_srcset": [],
}

# -- HTML -----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"collapse_sim {release}"
html_theme_options = {
    "logo": {"text": "collapse_sim"},
    "navbar_align": "left",
    "header_links_before_dropdown": 4,  # the longer page titles go in "More"
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "show_prev_next": True,
    # "On this page" everywhere except the page of a single function (one entry, and the
    # space goes to its signature); the patterns do not overlap (``*`` stops at ``/``).
    "secondary_sidebar_items": {
        "*": ["page-toc"],
        "api/*": ["page-toc"],
        "api/generated/*.[A-Z]*": ["page-toc"],  # a class: its methods
        "auto_examples/*": ["page-toc"],
    },
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
    # no "github_url"/"icon_links": pyproject.toml names no repository URL
}


def _leaf_pages(index: Path = DOCS / "index.rst") -> list[str]:
    """The top-level pages (entries of the index page's toctrees) that have no sub-pages."""
    text = index.read_text()
    entries = re.findall(r"^   ([\w/-]+)\s*$", text, flags=re.M)
    return [e for e in entries if (DOCS / f"{e}.rst").exists()
            and ".. toctree::" not in (DOCS / f"{e}.rst").read_text()]


# The left sidebar lists the pages of the current section; a top-level page with no
# sub-pages would get an empty "Section Navigation" box, so it gets no sidebar (the
# text column is wider). Exact names, no wildcards: no page matches two patterns.
html_sidebars = {name: [] for name in ["index", *_leaf_pages()]}
html_static_path = ["_static"]
html_css_files = ["collapse_sim.css"]  # code, tables and maths scroll inside their box
html_show_sourcelink = False


# -- data without a ``#:`` comment --------------------------------------------------------
def _drop_type_docstrings(app, what, name, obj, options, lines):
    """Constants documented by no ``#:`` comment of their module (``__version__``, a
    constant re-exported from another module) would show the docstring of their type
    (``int([x]) -> integer`` …): show nothing instead."""
    import inspect

    doc = inspect.getdoc(type(obj))
    if what == "data" and doc and "\n".join(lines).strip() == doc.strip():
        lines.clear()


# -- the demo figure of the index page ------------------------------------------------------
#: Drawn by the gallery run of examples/plot_gaussian_collapse.py (sphinx-gallery executes the
#: examples at "builder-inited", before any page is read); ``index.rst`` shows it.
INDEX_FIGURE = DOCS / "auto_examples" / "images" / "sphx_glr_plot_gaussian_collapse_001.png"


def _allow_missing_index_figure(app, config):
    """``-D plot_gallery=0`` (a quick build that runs no example) on a fresh checkout has no
    gallery images: the index figure is then left out with a note, not a build error."""
    plot = str(config.plot_gallery).strip().lower() not in ("0", "false", "no", "off", "")
    if not plot and not INDEX_FIGURE.exists():
        config.suppress_warnings = [*config.suppress_warnings, "image.not_readable"]
        print(f"note: {INDEX_FIGURE.name} does not exist (plot_gallery=0): "
              "the index page is built without its figure")


def setup(app):
    # before numpydoc (priority 500) reformats the lines
    app.connect("autodoc-process-docstring", _drop_type_docstrings, priority=400)
    app.connect("config-inited", _allow_missing_index_figure)
