"""Write the API reference pages from ``collapse_sim.__all__`` at build time.

``conf.py`` calls :func:`write_api_pages` before Sphinx reads the sources, so a name
added to ``collapse_sim.__all__`` (or a public function added to one of the public
submodules) appears in the reference without editing the docs. The generated files
live in ``docs/api/`` (ignored by git); autosummary then writes one stub page per
class or function under ``docs/api/generated/``.

What counts as public
---------------------
* every name in ``collapse_sim.__all__``: classes and functions get a page of their
  own, modules get a module page, other objects (``__version__``) are listed as data;
* the public submodules :data:`PUBLIC_SUBMODULES` (and any module in ``__all__``): their
  ``__all__`` if they define one, plus every function or class *defined* in the module
  whose name does not start with an underscore, plus module-level data documented
  with a ``#:`` comment.

``tests/test_docs.py`` imports this file and checks that every name in
``collapse_sim.__all__`` is covered.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

PACKAGE = "collapse_sim"
#: Submodules documented even when they are not re-exported in ``__all__``.
PUBLIC_SUBMODULES = ("metrics", "sampling", "stages", "theory", "theory.categorical",
                     "theory.stages", "theory.ppca", "plotting",
                     "experiments", "protocol", "registry", "testing")

#: Section of the top-level page for each defining module; unknown modules get their own.
#: A family module (``collapse_sim/families/<name>.py``) holds models and fitters: its
#: :class:`~collapse_sim.protocol.Fitter` subclasses go to "Fitters" (see :func:`section_of`).
SECTIONS = {
    "models": "Distributions (truths and models)",
    "fitting": "Fitters",
    "sgd": "Fitters",
    "gaussian": "Distributions (truths and models)",
    "mixture": "Distributions (truths and models)",
    "regression": "Distributions (truths and models)",
    "sklearn": "Distributions (truths and models)",
    "categorical": "Distributions (truths and models)",
    "ngram": "Distributions (truths and models)",
    "custom": "Distributions (truths and models)",
    "policies": "Policies: what each generation trains on",
    "stages": "Generation stages: how synthetic data is made and chosen",
    "engine": "Running a simulation",
    "results": "Results",
    "sweeps": "Parameter sweeps",
}
SECTION_ORDER = (
    "Running a simulation",
    "Distributions (truths and models)",
    "Fitters",
    "Policies: what each generation trains on",
    "Generation stages: how synthetic data is made and chosen",
    "Results",
    "Parameter sweeps",
)


def _package():
    return importlib.import_module(PACKAGE)


def _kind(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "data"


def top_level_names() -> dict[str, str]:
    """``{name: kind}`` for every name in ``collapse_sim.__all__``."""
    pkg = _package()
    return {name: _kind(getattr(pkg, name)) for name in pkg.__all__}


def public_modules() -> list[str]:
    """Short names of the documented submodules, in a stable order."""
    names = [n for n, k in top_level_names().items() if k == "module"]
    return sorted(set(names) | set(PUBLIC_SUBMODULES))


def _documented_data(module) -> list[str]:
    """Public module-level names documented with a ``#:`` comment (which autodoc shows).

    The comment is on the line(s) right above the assignment or after it on the same
    line. Parsed with :mod:`ast`, so the tests need no Sphinx.
    """
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):  # pragma: no cover - source not available
        return []
    lines = source.splitlines()
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        else:
            continue
        above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
        inline = "#:" in lines[node.lineno - 1]
        if above.startswith("#:") or inline:
            names += [t for t in targets if not t.startswith("_") and hasattr(module, t)]
    return sorted(set(names))


def module_members(short: str) -> dict[str, str]:
    """``{name: kind}`` of the public members of ``collapse_sim.<short>``."""
    module = importlib.import_module(f"{PACKAGE}.{short}")
    names = set(getattr(module, "__all__", ()))
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(
            obj, "__module__", None
        ) == module.__name__:
            names.add(name)
    out = {name: _kind(getattr(module, name)) for name in sorted(names)}
    for name in _documented_data(module):
        out.setdefault(name, "data")
    return out


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _autosummary(names: list[str], template: str | None = None) -> str:
    lines = [".. autosummary::", "   :toctree: generated", "   :nosignatures:"]
    if template:
        lines.append(f"   :template: {template}")
    lines.append("")
    lines += [f"   {name}" for name in names]
    return "\n".join(lines) + "\n"


def _members_block(prefix: str, members: dict[str, str]) -> str:
    parts = []
    classes = [n for n, k in members.items() if k == "class"]
    funcs = [n for n, k in members.items() if k == "function"]
    data = [n for n, k in members.items() if k == "data"]
    if classes:
        parts.append(_autosummary([f"{prefix}{n}" for n in classes], "class.rst"))
    if funcs:
        parts.append(_autosummary([f"{prefix}{n}" for n in funcs], "function.rst"))
    for name in data:
        parts.append(f".. autodata:: {prefix}{name}\n   :no-value:\n")
    return "\n".join(parts)


def section_of(obj) -> str:
    """Section of the top-level page for ``obj``, by its defining module.

    A fitter (a subclass of :class:`collapse_sim.protocol.Fitter`) defined in a module
    whose section is "Distributions (truths and models)" — a family module holding both
    models and fitters — goes to "Fitters", and a generation stage (a subclass of
    :class:`collapse_sim.stages.Stage`, such as PPCA's ``NoiseFree``) to the stages; a
    module under ``collapse_sim.families`` that :data:`SECTIONS` does not list is treated
    as a family module too.
    """
    from collapse_sim.protocol import Fitter
    from collapse_sim.stages import Stage

    module = obj.__module__
    short = module.rsplit(".", 1)[-1]
    section = SECTIONS.get(short)
    if section is None and module.startswith(f"{PACKAGE}.families."):
        section = SECTIONS["models"]
    if section == SECTIONS["models"] and inspect.isclass(obj) and issubclass(obj, Fitter):
        return SECTIONS["fitting"]
    if section == SECTIONS["models"] and inspect.isclass(obj) and issubclass(obj, Stage):
        return SECTIONS["stages"]
    return section or f"``{PACKAGE}.{short}``"


def index_page() -> str:
    """The top-level API page: every name in ``collapse_sim.__all__``."""
    pkg = _package()
    names = top_level_names()
    sections: dict[str, list[str]] = {}
    data = []
    for name, kind in names.items():
        if kind == "module":
            continue
        if kind == "data":
            data.append(name)
            continue
        sections.setdefault(section_of(getattr(pkg, name)), []).append(name)
    order = [s for s in SECTION_ORDER if s in sections]
    order += sorted(s for s in sections if s not in SECTION_ORDER)

    out = [
        ".. This file is generated by docs/apigen.py at build time; do not edit.\n",
        ".. _api:\n",
        _title("API reference"),
        ".. currentmodule:: collapse_sim\n",
        "Everything below is importable as ``import collapse_sim as cs`` followed by "
        "``cs.<name>``. The page is generated from ``collapse_sim.__all__`` when the "
        "documentation is built.\n",
    ]
    for section in order:
        members = {n: names[n] for n in sorted(sections[section])}
        out.append(_title(section, "-"))
        out.append(_members_block("", members))
    out.append(_title("Submodules", "-"))
    out.append(".. toctree::\n   :maxdepth: 1\n\n" + "".join(
        f"   {PACKAGE}.{m}\n" for m in public_modules()))
    if data:
        out.append(_title("Package data", "-"))
        for name in data:
            out.append(f".. autodata:: {PACKAGE}.{name}\n")
    return "\n".join(out)


def module_page(short: str) -> str:
    """The page of ``collapse_sim.<short>``: its docstring, then its public members."""
    full = f"{PACKAGE}.{short}"
    members = module_members(short)
    out = [
        ".. This file is generated by docs/apigen.py at build time; do not edit.\n",
        _title(f"``{full}``"),
        f".. automodule:: {full}\n   :no-members:\n",
        f".. currentmodule:: {full}\n",
    ]
    if members:
        out.append(_title("Members", "-"))
        out.append(_members_block("", members))
    return "\n".join(out)


def pages() -> dict[str, str]:
    """``{file name: rst text}`` of every generated API page."""
    out = {"index.rst": index_page()}
    for short in public_modules():
        out[f"{PACKAGE}.{short}.rst"] = module_page(short)
    return out


def write_api_pages(outdir: str | Path) -> list[Path]:
    """Write :func:`pages` into ``outdir``; rewrite a file only when its text changed.

    Pages of modules that are no longer public are removed.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    texts = pages()
    for name, text in texts.items():
        path = outdir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    for stale in outdir.glob(f"{PACKAGE}.*.rst"):
        if stale.name not in texts:
            stale.unlink()
    # autosummary stubs of names that are no longer public (else: "not in any toctree")
    expected = set(stub_names())
    for stub in (outdir / "generated").glob("*.rst"):
        if stub.stem not in expected:
            stub.unlink()
    return written


def stub_names() -> list[str]:
    """Full names of the autosummary stub pages the generated pages ask for."""
    names = []
    for name, kind in top_level_names().items():
        if kind in ("class", "function"):
            names.append(f"{PACKAGE}.{name}")
    for short in public_modules():
        for name, kind in module_members(short).items():
            if kind in ("class", "function"):
                names.append(f"{PACKAGE}.{short}.{name}")
    return names


def documented_names(outdir: str | Path) -> set[str]:
    """Names that the generated rst in ``outdir`` documents (for the tests)."""
    import re

    found = set()
    for path in Path(outdir).glob("*.rst"):
        text = path.read_text()
        found |= set(re.findall(r"^   ([A-Za-z_][\w.]*)$", text, flags=re.M))
        found |= set(re.findall(r"^\.\. auto\w+:: ([\w.]+)", text, flags=re.M))
        found |= set(re.findall(r"^   (collapse_sim\.\w+)$", text, flags=re.M))
    return found
