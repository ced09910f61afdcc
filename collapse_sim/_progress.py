"""The progress bar of a run: tqdm, made to leave nothing behind when it closes.

In a terminal (and in a notebook without ipywidgets) this is tqdm's text bar, which
``leave=False`` erases. In a Jupyter notebook with ipywidgets tqdm shows a widget; closing
it hides the widget, but the notebook file keeps the output it was displayed as, with a
plain-text copy of the bar *as it was when first shown* ("generations:   7%|▋ …"), which
is what an exported notebook (HTML, GitHub, nbviewer without the widget state) shows. The
notebook bar here is displayed under a display id and that output is emptied when a
finished bar closes, so the saved notebook keeps nothing either; a bar closed early (an
error, an interrupt) stays, red, with its last state as text.

tqdm is imported on the first bar, not when ``collapse_sim`` is imported (``tqdm.auto``
warns at import in a notebook without ipywidgets).
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _in_notebook() -> bool:
    """An IPython kernel that renders widgets (not a Qt console or Spyder): tqdm.autonotebook's
    test."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    if any(k == "QT_API" or k.startswith("SPYDER") for k in os.environ):
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    name = type(shell).__name__.lower()
    return shell is not None and "qt" not in name and "spyder" not in name


def progress_bar(**kwargs):
    """A tqdm bar (``tqdm(**kwargs)``) that leaves no output behind, also in a saved notebook.

    ``leave`` must not be given: the bar never stays after a finished run.
    """
    if _in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        return _notebook_bar_class()(leave=False, **kwargs)
    from tqdm.std import tqdm

    return tqdm(leave=False, **kwargs)


def _notebook_bar_class():
    from IPython.display import display
    from tqdm.notebook import tqdm as notebook_tqdm

    class NotebookBar(notebook_tqdm):
        """tqdm's widget bar, shown under a display id that is emptied when it closes."""

        def __init__(self, *args, **kwargs):
            self._handle = None
            super().__init__(*args, display=False, **kwargs)
            if not self.disable and self.delay <= 0:
                self._show()

        def _show(self):
            self._handle = display(self.container, display_id=True)
            self.displayed = True

        def display(self, *args, check_delay=True, **kwargs):
            if check_delay and self.delay > 0 and not self.displayed:
                self._show()  # tqdm would call display() itself, without an id
            return super().display(*args, check_delay=False, **kwargs)

        def close(self):
            if self.disable:
                return
            finished = not (self.total and self.n < self.total)
            super().close()
            if self._handle is not None:
                # finished: no output at all; stopped early: the widget with its last state
                self._handle.update({} if finished else self.container, raw=finished)
                self._handle = None

    return NotebookBar
