"""The documentation, checked without building it.

* every name in ``collapse_sim.__all__`` (and every public function of the documented
  submodules) is on a page written by ``docs/apigen.py``, the generator ``docs/conf.py``
  runs at build time;
* every ``.. code-block:: python`` of the hand-written pages in ``docs/`` runs (the blocks of
  a page in order, in one namespace, like a notebook), and where a block is followed by a
  ``.. code-block:: text`` block, that block is exactly what the code printed: every number
  quoted next to code in the docs comes from running it;
* the teaching guide has at least five exercises, each with a question, the functions to
  use and what students should observe.

To refresh the printed output of a page after a change, run
``python tests/test_docs.py docs/<page>.rst``: it prints each block's actual output.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. code-block:: *(?P<lang>\w+)[ \t]*$")


def _load_apigen():
    spec = importlib.util.spec_from_file_location("apigen", DOCS / "apigen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_blocks(path: Path) -> list[tuple[str, int, str, str | None]]:
    """``(language, line, code, expected output or None)`` for every code block of a page.

    A ``python`` block directly followed (blank lines aside) by a ``text`` block gets that
    block as its expected output.
    """
    lines = path.read_text().splitlines()
    raw = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m["indent"])
        start = i
        i += 1
        while i < len(lines) and re.match(r"^[ \t]*:\w[\w-]*:", lines[i]):  # options
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        width = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
        text = "\n".join(b[width:] for b in body)
        raw.append((m["lang"], start + 1, text, i))
    out = []
    for j, (lang, line, text, end) in enumerate(raw):
        if lang == "text":
            continue
        expected = None
        if j + 1 < len(raw) and raw[j + 1][0] == "text":
            between = lines[end:raw[j + 1][1] - 1]
            if all(not s.strip() for s in between):
                expected = raw[j + 1][2]
        out.append((lang, line, text, expected))
    return out


def doc_pages() -> list[Path]:
    """Hand-written pages (generated API and gallery pages excluded) with python blocks."""
    return sorted(p for p in DOCS.glob("*.rst")
                  if any(lang == "python" for lang, *_ in code_blocks(p)))


def run_page(path: Path, check: bool = True) -> list[tuple[int, str]]:
    """Run the python blocks of ``path`` in order; return ``(line, printed output)``.

    With ``check``, assert each output equals the text block that follows the code.
    """
    namespace: dict = {"__name__": "__main__"}
    results = []
    for lang, line, code, expected in code_blocks(path):
        if lang != "python":
            continue
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
        printed = "\n".join(s.rstrip() for s in buffer.getvalue().rstrip().splitlines())
        results.append((line, printed))
        if check and expected is not None:
            want = "\n".join(s.rstrip() for s in expected.splitlines())
            assert printed == want, (
                f"{path.name}, code block at line {line} printed\n{printed}\n"
                f"but the page shows\n{want}"
            )
    return results


# -- API reference --------------------------------------------------------------------


def test_every_public_name_is_on_a_generated_api_page(tmp_path):
    import collapse_sim

    apigen = _load_apigen()
    apigen.write_api_pages(tmp_path)
    documented = apigen.documented_names(tmp_path)
    for name in collapse_sim.__all__:
        kind = apigen.top_level_names()[name]
        target = f"collapse_sim.{name}" if kind in ("module", "data") else name
        assert target in documented, f"collapse_sim.{name} is missing from the API pages"
    for short in apigen.public_modules():
        text = (tmp_path / f"collapse_sim.{short}.rst").read_text()
        assert f".. automodule:: collapse_sim.{short}" in text
        for member in apigen.module_members(short):
            assert member in documented, f"collapse_sim.{short}.{member} is not documented"


def test_api_generator_lists_theory_functions():
    apigen = _load_apigen()
    members = apigen.module_members("theory")
    for name in ("gaussian_variance_mean", "gaussian_variance_quantiles",
                 "gaussian_variance_cdf", "gaussian_w2_squared_mean",
                 "best_gaussian_approximation", "gaussian_mismatch_floor"):
        assert members.get(name) == "function"
    assert not any(name.startswith("_") for name in members)


# -- code on the pages ----------------------------------------------------------------


def test_doc_pages_have_code():
    names = {p.name for p in doc_pages()}
    assert {"getting_started.rst", "concepts.rst", "theory.rst", "teaching.rst"} <= names


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: p.name)
def test_code_blocks_run_and_print_what_the_page_shows(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    try:
        run_page(page)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")


def test_code_block_parser(tmp_path):
    page = tmp_path / "p.rst"
    page.write_text(
        "Title\n=====\n\n.. code-block:: python\n\n    print(1 + 1)\n\n"
        ".. code-block:: text\n\n    2\n\nText.\n\n.. code-block:: python\n   :caption: x\n\n"
        "    x = 3\n\n    print(x)\n"
    )
    blocks = code_blocks(page)
    assert blocks == [("python", 4, "print(1 + 1)", "2"),
                      ("python", 14, "x = 3\n\nprint(x)", None)]
    assert run_page(page) == [(4, "2"), (14, "3")]


# -- the teaching guide ---------------------------------------------------------------


def test_teaching_guide_has_five_complete_exercises():
    text = (DOCS / "teaching.rst").read_text()
    exercises = re.split(r"^Exercise \d+", text, flags=re.M)[1:]
    assert len(exercises) >= 5
    for body in exercises:
        assert "**Question.**" in body
        assert "**Use.**" in body
        assert "**Observe.**" in body
        assert ".. code-block:: python" in body


# -- the gallery ----------------------------------------------------------------------


def test_every_example_has_a_gallery_title():
    # sphinx-gallery needs a module docstring whose first line is a title (underlined)
    for script in sorted((ROOT / "examples").glob("plot_*.py")):
        doc = script.read_text().split('"""')[1]
        lines = [s for s in doc.strip().splitlines()]
        assert len(lines) >= 2 and set(lines[1]) == {"="}, script.name
    assert (ROOT / "examples" / "GALLERY_HEADER.rst").exists()


def update_outputs(path: Path) -> None:
    """Rewrite the ``text`` block after every python block with what the code prints."""
    actual = dict(run_page(path, check=False))
    lines = path.read_text().splitlines()
    blocks = code_blocks(path)
    # work bottom-up so earlier line numbers stay valid
    for lang, line, _code, expected in reversed(blocks):
        if lang != "python" or expected is None:
            continue
        j = line  # first line after the python directive (0-based index of the next line)
        while not lines[j].lstrip().startswith(".. code-block:: text"):
            j += 1
        indent = lines[j][: len(lines[j]) - len(lines[j].lstrip())] + "    "
        k = j + 1
        while k < len(lines) and (not lines[k].strip() or lines[k].startswith(indent)):
            k += 1
        while not lines[k - 1].strip():
            k -= 1
        new = [lines[j], ""] + [indent + s if s else "" for s in actual[line].splitlines()]
        lines[j:k] = new
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    # python tests/test_docs.py [--update] docs/page.rst ...: print the actual output of every
    # python block (with --update, also write it into the page's text blocks)
    import tempfile

    os.environ.setdefault("MPLBACKEND", "Agg")
    update = "--update" in sys.argv[1:]
    pages = [Path(arg).resolve() for arg in sys.argv[1:] if arg != "--update"]
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        for page in pages:
            if update:
                update_outputs(page)
            for line, printed in run_page(page, check=False):
                print(f"--- {page.name}:{line}")
                print(printed)
