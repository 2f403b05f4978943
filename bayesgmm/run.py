"""Reproducible runs from a spec: ``bayesgmm run models/<spec>.toml`` (or :func:`run_spec`).

This is the family-neutral driver.  It looks the spec's family up in the registry
(:data:`bayesgmm.spec.FAMILIES`: module names, imported on use; the families import this
module, never the reverse, see "Families" in :mod:`bayesgmm.spec`), has the family load
the data and fit, and writes what every run has:

- ``report.md``: the spec's name and description, the family's data paragraph (and the
  columns the loader left out), the family's sections, then the figures;
- the family's figures, as PNG;
- ``MANIFEST.json``: the validated spec, package versions, timings, the verdict, the
  family's extra entries, and every file with its SHA-256.  It is written last: a
  directory without it is not a result.

The family writes its own data files (fits, tables) into :attr:`RunContext.directory`;
see :mod:`bayesgmm.gmm.run` and :mod:`bayesgmm.mpma.run` for what each writes.

**Atomicity.** Everything is written to a hidden staging directory beside the target
(``.<name>.partial-<pid>``) that is renamed into place only when complete; an interrupted
run leaves at most the staging directory, never a directory that looks complete, and the
next run into the same target removes the staging directories of processes that are no
longer alive.  An existing result is replaced only with ``overwrite=True``
(``--overwrite``), and only if it is one: a directory holding this driver's
``MANIFEST.json`` and no file that manifest does not list, or an empty directory.  Any
other target (a file, a symbolic link, a directory of other files) is refused before
anything is read, fitted or written.

**Reproducibility.** Every random step is seeded from ``inference.seed`` (families draw
their streams from :meth:`RunContext.seeds`); re-running a spec reproduces the numbers
(EM, MAP and the NUTS draws).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesgmm.datasets import Table, load_table
from bayesgmm.spec import Spec, SpecError, family_module, load_spec

__all__ = [
    "FIGURE_DPI",
    "MANIFEST",
    "REPORT",
    "FamilyOutput",
    "FigureFile",
    "RunContext",
    "RunResult",
    "load_spec_data",
    "run_spec",
]

MANIFEST = "MANIFEST.json"
REPORT = "report.md"
#: Resolution of the figures written, unless a :class:`FigureFile` says otherwise.
FIGURE_DPI = 110
_STAGING = ".{name}.partial-"  # + the pid of the run writing it
_LISTED = 5  # entries named when a target is refused


@dataclass
class RunResult:
    """Where a run wrote its files and its headline outcome."""

    directory: Path
    files: list[str]
    verdict: str | None
    manifest: dict


@dataclass(frozen=True, eq=False)
class FigureFile:
    """A figure for the driver to write as PNG.

    Attributes
    ----------
    name : str
        File name, ending in ``.png``.
    figure : matplotlib.figure.Figure
        Closed by the driver once written.
    dpi : float or "figure"
        Resolution: :data:`FIGURE_DPI` by default, ``"figure"`` for the figure's own
        (ArviZ's figures).
    """

    name: str
    figure: Any
    dpi: float | str = FIGURE_DPI


@dataclass(eq=False)
class FamilyOutput:
    """What a family's ``run`` returns to the driver.

    Attributes
    ----------
    data : str
        One paragraph on the data fitted (markdown), after the title and description.
    sections : list of str
        The report's lines after the data paragraph (markdown), without the figures.
    files : list of str
        The data files the family wrote into :attr:`RunContext.directory`: every entry
        there, none of ``report.md``, ``MANIFEST.json`` or the figures' names.
    figures : list of FigureFile
        In the order the report shows them; none when ``output.figures`` is false.
    verdict : str or None
        The cross-check's verdict, if the run has one.
    manifest : dict
        Extra entries of ``MANIFEST.json`` (after the verdict).
    """

    data: str
    sections: list[str]
    files: list[str]
    figures: list[FigureFile] = field(default_factory=list)
    verdict: str | None = None
    manifest: dict = field(default_factory=dict)


class _Progress:
    """Stage messages with elapsed time on stderr (silent when disabled)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}

    def __call__(self, stage: str, fn: Callable, *args, **kwargs):
        if self.enabled:
            print(f"[bayesgmm run] {stage} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        self.timings[stage] = round(time.perf_counter() - t, 3)
        if self.enabled:
            print(
                f"[bayesgmm run] {stage}: done in {self.timings[stage]:.1f} s "
                f"(total {time.perf_counter() - self.t0:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
        return out


class RunContext:
    """What the driver hands a family's ``run``.

    Attributes
    ----------
    directory : Path
        Where the family writes its data files (the run's staging directory).
    seed : int
        ``inference.seed``.
    progress : bool
        Whether to show progress (e.g. the sampler's progress bar).
    """

    def __init__(self, directory: Path, seed: int, progress: _Progress):
        self.directory = directory
        self.seed = seed
        self.progress = progress.enabled
        self._step = progress

    def step(self, stage: str, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)``, timed into the manifest as ``stage`` and announced."""
        return self._step(stage, fn, *args, **kwargs)

    def seeds(self, n: int) -> list[int]:
        """``n`` independent seeds, the run's random streams, from ``inference.seed``."""
        return [int(s) for s in np.random.SeedSequence(self.seed).generate_state(n)]


def load_spec_data(spec: Spec, *, numeric: bool = True) -> Table:
    """The spec's CSV file (relative to the spec file) or bundled dataset.

    Parameters
    ----------
    spec : Spec
    numeric : bool, default True
        Whether the columns named in ``data.columns`` must be numeric (see
        :func:`bayesgmm.datasets.load_table`).

    Returns
    -------
    bayesgmm.datasets.Table

    Raises
    ------
    SpecError
        If ``data.source`` is neither a file nor a bundled dataset.
    ValueError
        If the file or its columns cannot be used (the message says why).
    """
    base = spec.origin.parent if spec.origin is not None else Path.cwd()
    try:
        return load_table(spec.source, spec.columns, base=base, numeric=numeric)
    except FileNotFoundError as err:
        raise SpecError(f"data.source = {err}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("bayesgmm", "numpy", "scikit-learn", "pymc", "pytensor", "arviz", "nutpie"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _spec_dict(spec: Spec) -> dict:
    out = asdict(spec)
    for key in ("data_path", "directory", "origin"):
        out[key] = None if out[key] is None else str(out[key])
    out["n_components"] = list(spec.n_components)
    out["columns"] = None if spec.columns is None else list(spec.columns)
    return out


# ----------------------------------------------------------------------------- output


def _listing(names: list[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def _not_a_result(directory: Path) -> str | None:
    """Why the existing ``directory`` may not be replaced, or None (empty, or a result)."""
    entries = sorted(p.name for p in directory.iterdir())
    if not entries:
        return None
    if MANIFEST not in entries:
        return f"is not a bayesgmm run result (no {MANIFEST}; it holds {_listing(entries)})"
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict):
        return f"has a {MANIFEST} that is not a bayesgmm run manifest"
    extra = [name for name in entries if name != MANIFEST and name not in files]
    if extra:
        return f"holds files that bayesgmm run did not write ({_listing(extra)})"
    return None


def _check_target(final: Path, overwrite: bool) -> None:
    """Raise FileExistsError unless ``final`` is absent, or a result to ``overwrite``."""
    fix = "pass another output directory (CLI: --out); nothing was changed"
    if final.is_symlink():
        raise FileExistsError(f"{final} is a symbolic link, not a run directory: {fix}")
    if not final.exists():
        return
    if not final.is_dir():
        raise FileExistsError(
            f"{final} is a file, not a directory: bayesgmm run writes a directory of "
            f"results and never replaces a file; {fix}"
        )
    problem = _not_a_result(final)
    if problem is not None:
        raise FileExistsError(
            f"{final} exists and {problem}: bayesgmm run replaces only a directory it "
            f"wrote (with its {MANIFEST}) or an empty one, even with overwrite; move "
            f"those files away or {fix}"
        )
    if not overwrite:
        raise FileExistsError(
            f"{final} exists; pass overwrite=True (CLI: --overwrite) or another directory"
        )


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (True when that cannot be told)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) is no probe there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True
    return True


def _remove_stale_staging(final: Path) -> None:
    """Remove ``.<name>.partial-<pid>`` directories of ``final`` whose process is gone."""
    prefix = _STAGING.format(name=final.name)
    for entry in final.parent.iterdir():
        pid = entry.name.removeprefix(prefix)
        if pid == entry.name or not (pid.isascii() and pid.isdigit()):
            continue
        if int(pid) != os.getpid() and not _alive(int(pid)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)


def _check_files(spec: Spec, output: FamilyOutput, staging: Path) -> None:
    """The family wrote exactly the data files it lists, and no name the driver writes."""
    written = sorted(p.name for p in staging.iterdir())
    reserved = {REPORT, MANIFEST, *(figure.name for figure in output.figures)}
    if sorted(output.files) != written or reserved & set(written):
        raise RuntimeError(
            f"family {spec.family!r} wrote {written} and listed {sorted(output.files)}: a "
            f"family lists every file it writes and writes none of {sorted(reserved)}"
        )
    bad = [figure.name for figure in output.figures if not figure.name.endswith(".png")]
    if bad or len({figure.name for figure in output.figures}) != len(output.figures):
        raise RuntimeError(f"family {spec.family!r}: figure names must be distinct *.png")


def _write_figures(figures: list[FigureFile], directory: Path) -> None:
    for figure in figures:
        figure.figure.savefig(directory / figure.name, dpi=figure.dpi)


def _close_figures(figures: list[FigureFile]) -> None:
    if figures:
        import matplotlib.pyplot as plt

        for figure in figures:
            plt.close(figure.figure)


def _report(spec: Spec, data: Table, output: FamilyOutput, figures: list[FigureFile]) -> str:
    lines = [f"# {spec.name}", "", spec.description, "", output.data, ""]
    if data.note:
        lines += [data.note, ""]
    lines += output.sections
    if figures:
        lines += ["## Figures", ""] + [f"![{f.name}]({f.name})" for f in figures] + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- driver


def run_spec(
    spec: Spec | str | Path,
    *,
    directory: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> RunResult:
    """Fit and report what ``spec`` describes; see the module docstring for the outputs.

    Parameters
    ----------
    spec : Spec or path of a TOML spec
    directory : path, optional
        Output directory (default: the spec's ``output.directory``).
    overwrite : bool
        Replace an existing result; otherwise an existing directory is an error.  Only
        a directory this driver wrote (or an empty one) is ever replaced.
    progress : bool
        Stage messages and the sampler's progress bar.

    Returns
    -------
    RunResult

    Raises
    ------
    FileExistsError
        If the output directory exists and may not be replaced (nothing is touched).
    SpecError, ValueError
        If the spec or its data are invalid.

    Warns
    -----
    UserWarning
        When the data loader left columns out (also said in the report).
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    family = family_module(spec.family)
    final = Path(directory) if directory is not None else spec.directory
    _check_target(final, overwrite)
    step = _Progress(progress)
    data = step("load data", family.load_data, spec)
    if data.note:
        warnings.warn(f"{data.source}: {data.note}", UserWarning, stacklevel=2)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(final)
    staging = final.parent / f"{_STAGING.format(name=final.name)}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        output = family.run(spec, data, RunContext(staging, spec.seed, step))
        figures = output.figures if spec.figures else []
        try:
            _check_files(spec, output, staging)
            _write_figures(figures, staging)
        finally:
            _close_figures(output.figures)
        (staging / REPORT).write_text(_report(spec, data, output, figures))
        files = sorted(p.name for p in staging.iterdir())
        manifest = {
            "complete": True,
            "spec": _spec_dict(spec),
            "verdict": output.verdict,
            **output.manifest,
            "versions": _versions(),
            "timings_s": step.timings,
            "files": {name: _sha256(staging / name) for name in files},
        }
        tmp = staging / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, staging / MANIFEST)
        _check_target(final, overwrite)  # again: the target may have changed meanwhile
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RunResult(final, [*files, MANIFEST], output.verdict, manifest)
