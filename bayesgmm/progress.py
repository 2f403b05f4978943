"""Progress bars for long fits and protocols, drawn with rich (PyMC's own progress library).

One context manager, :func:`progress_bar`, serves every long loop in the package: MPMA's
MAP-EM and Gibbs fits and ``cross_validate``. It yields an object with ``advance(n,
status)``; with ``enabled=False`` (every ``progressbar=False``) that object does nothing
and rich is not imported. Output goes to standard error, so it never mixes with a
program's results on standard output. In a terminal the bar redraws in place; elsewhere
(a log file, a captured stream) rich prints the final state once when the loop ends;
in Jupyter it is a live widget (with ipywidgets installed; without it rich warns once and
draws nothing, as PyMC's bars do).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ProgressBar", "progress_bar"]


class ProgressBar:
    """Handle on one bar: ``advance(n, status)`` moves it ``n`` steps and sets the status.

    A disabled bar (``progress=None``) accepts the same calls and does nothing.
    """

    def __init__(self, progress=None, task=None):
        self._progress = progress
        self._task = task

    def advance(self, n: int = 1, status: str | None = None) -> None:
        """Move ``n`` steps forward; ``status`` replaces the text shown after the bar."""
        if self._progress is None:
            return
        fields = {} if status is None else {"status": status}
        self._progress.update(self._task, advance=n, **fields)

    def finish(self, status: str | None = None) -> None:
        """Mark the bar complete (a loop that stopped early, e.g. on convergence)."""
        if self._progress is None:
            return
        fields = {} if status is None else {"status": status}
        total = self._progress.tasks[0].total
        self._progress.update(self._task, completed=total, **fields)


@contextmanager
def progress_bar(total: int, description: str, *, enabled: bool = True) -> Iterator[ProgressBar]:
    """A progress bar of ``total`` steps labelled ``description`` on standard error.

    Parameters
    ----------
    total : int
        Number of steps (an upper bound where a loop may stop early; call ``finish``).
    description : str
        Shown before the bar.
    enabled : bool, default True
        False yields a bar that draws nothing (and imports nothing).

    Yields
    ------
    ProgressBar
    """
    if not enabled:
        yield ProgressBar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=max(int(total), 1), status="")
        yield ProgressBar(progress, task)
