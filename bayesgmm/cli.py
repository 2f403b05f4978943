"""Command-line interface: ``bayesgmm fit``, ``bayesgmm run`` and ``bayesgmm datasets``.

Examples
--------
::

    bayesgmm fit faithful -k 2
    bayesgmm fit data.csv -k 3 --covariance diag --columns x,y --json
    bayesgmm run models/faithful.toml            # spec -> runs/faithful/
    bayesgmm run models/galaxies.toml --out results/galaxies --overwrite
    bayesgmm datasets
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from bayesgmm.datasets import BUNDLED_DATASETS, ignored_columns_note, load_dataset, load_table
from bayesgmm.em.driver import INIT_METHODS
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.em.gaussian import COVARIANCE_TYPES, full_covariances, n_parameters


@dataclass(frozen=True)
class Data:
    """A data matrix with where it came from and its feature names."""

    X: np.ndarray
    features: list[str]
    source: str
    kind: str  # "dataset" or "csv"
    ignored: list[str]  # non-numeric columns left out


def load_source(source: str, columns: str | None = None) -> Data:
    """Read a CSV file or a bundled dataset and select its numeric (or named) columns.

    Parameters
    ----------
    source : str
        Path of a CSV file with a header row, or the name of a bundled dataset. An
        existing path wins over a dataset of the same name.
    columns : str or None
        Comma-separated column names to use; by default every numeric column.

    Returns
    -------
    Data

    Raises
    ------
    FileNotFoundError
        If `source` is neither an existing file nor a bundled dataset name.
    ValueError
        If the file cannot be read (empty, binary, no data rows, ...), a column is unknown
        or not numeric, a numeric column has unparseable cells, or no numeric column is
        left (see :func:`bayesgmm.datasets.load_table`).
    """
    names = None
    if columns is not None:
        names = [name.strip() for name in columns.split(",")]
        if "" in names or len(set(names)) != len(names):
            raise ValueError(f"--columns must be distinct, non-empty names, got {columns!r}")
    table = load_table(source, names, numeric=True)
    X = table.frame.to_numpy(dtype=np.float64)
    return Data(X, list(table.frame.columns), source, table.kind, list(table.ignored))


def summarize(model: GaussianMixture, data: Data) -> dict:
    """The fit's numbers as a JSON-ready dict (floats at full precision)."""
    log_density = model.score_samples(data.X)
    full = full_covariances(model.covariances_, model.covariance_type, *model.means_.shape)
    sds = np.sqrt(np.diagonal(full, axis1=1, axis2=2))
    correlated = model.covariance_type in ("full", "tied")
    return {
        "data": {
            "source": data.source,
            "kind": data.kind,
            "n_samples": int(data.X.shape[0]),
            "n_features": int(data.X.shape[1]),
            "features": data.features,
            "ignored_columns": data.ignored,
        },
        "model": {
            "n_components": model.n_components,
            "covariance_type": model.covariance_type,
            "estimator": "ML" if model.prior is None else "MAP",
            "prior": model.prior_,
            "init": model.init_params,
            "n_init": model.n_init,
            "max_iter": model.max_iter,
            "tol": model.tol,
            "reg_covar": model.reg_covar,
            "seed": model.random_state,
        },
        "weights": model.weights_.tolist(),
        "means": model.means_.tolist(),
        "covariances": model.covariances_.tolist(),
        "sds": sds.tolist(),
        "correlations": (full / (sds[:, :, None] * sds[:, None, :])).tolist()
        if correlated
        else None,
        "log_likelihood": float(log_density.sum()),
        "log_likelihood_per_sample": float(log_density.mean()),
        "bic": model.bic(data.X),
        "aic": model.aic(data.X),
        "icl": model.icl(data.X),
        "n_parameters": n_parameters(*model.means_.shape, model.covariance_type),
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        "lower_bound": float(model.lower_bound_),
        "degenerate_components": model.degenerate_components_.tolist(),
    }


def _table(rows: list[tuple[str, list[str]]], header: list[str]) -> list[str]:
    """Cells right-aligned under `header` (at least 10 wide), row labels left-aligned."""
    label_width = max(len(label) for label, _ in rows)
    widths = [max(10, len(h), *(len(cells[j]) for _, cells in rows)) for j, h in enumerate(header)]
    lines = []
    for label, cells in [("", header), *rows]:
        row = "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        lines.append(f"  {label.ljust(label_width)}  {row}".rstrip())
    return lines


def format_summary(summary: dict) -> str:
    """Human-readable report of `summary` (from `summarize`)."""
    data, model = summary["data"], summary["model"]
    features = data["features"]
    where = "bundled dataset" if data["kind"] == "dataset" else "CSV"
    estimator = (
        "maximum likelihood (EM)"
        if model["estimator"] == "ML"
        else "MAP (EM with the default conjugate prior)"
    )
    lines = [
        f"data:  {data['source']} ({where}), {data['n_samples']} samples, "
        f"{data['n_features']} feature(s): {', '.join(features)}",
        f"model: K = {model['n_components']}, covariance '{model['covariance_type']}', {estimator}",
    ]
    if data["ignored_columns"]:
        lines.append(f"       {ignored_columns_note(data['ignored_columns'])}")
    for k, weight in enumerate(summary["weights"]):
        rows = [
            ("mean", [f"{v:.6g}" for v in summary["means"][k]]),
            ("sd", [f"{v:.6g}" for v in summary["sds"][k]]),
        ]
        if summary["correlations"] is not None:
            corr = summary["correlations"][k]
            for i in range(1, len(features)):
                cells = [f"{corr[i][j]:+.3f}" if j < i else "" for j in range(len(features))]
                rows.append((f"corr {features[i]}", cells))
        lines += ["", f"component {k}  weight {weight:.6g}", *_table(rows, features)]
    lines += [
        "",
        f"log-likelihood  {summary['log_likelihood']:.6f} "
        f"({summary['log_likelihood_per_sample']:.6f} per sample)",
        f"BIC             {summary['bic']:.6f}",
        f"AIC             {summary['aic']:.6f}",
        f"ICL             {summary['icl']:.6f}",
        f"parameters      {summary['n_parameters']}",
        f"converged       {'yes' if summary['converged'] else 'no'} "
        f"({summary['n_iter']} iterations)",
    ]
    if summary["degenerate_components"]:
        lines.append(
            f"degenerate      components {summary['degenerate_components']} "
            "(covariance set by reg_covar, not by the data)"
        )
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser with its ``fit`` and ``datasets`` commands."""
    parser = argparse.ArgumentParser(
        prog="bayesgmm", description="Gaussian mixture models by EM and by NUTS."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = commands.add_parser("fit", help="fit a Gaussian mixture by EM and report it")
    fit.add_argument("source", metavar="SOURCE", help="CSV file (with header) or dataset name")
    fit.add_argument(
        "-k",
        "--n-components",
        type=_positive_int,
        required=True,
        metavar="K",
        help="number of components",
    )
    fit.add_argument("--covariance", choices=COVARIANCE_TYPES, default="full")
    fit.add_argument(
        "--n-init", type=_positive_int, default=1, metavar="N", help="EM restarts, best kept"
    )
    fit.add_argument("--init", choices=INIT_METHODS, default="kmeans")
    fit.add_argument("--max-iter", type=_positive_int, default=100, metavar="N", help="default 100")
    fit.add_argument("--tol", type=float, default=1e-3, metavar="T", help="default 1e-3")
    fit.add_argument("--reg-covar", type=float, default=1e-6, metavar="R", help="default 1e-6")
    fit.add_argument(
        "--prior", choices=("none", "default"), default="none", help="none: ML; default: MAP"
    )
    fit.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    fit.add_argument("--columns", metavar="A,B", help="comma-separated columns to use")
    fit.add_argument("--json", action="store_true", help="print a JSON object instead")
    run = commands.add_parser(
        "run", help="run a model spec (TOML) and write posterior, tables, report, figures"
    )
    run.add_argument("spec", metavar="SPEC", help="path of a spec, e.g. models/faithful.toml")
    run.add_argument("--out", metavar="DIR", help="output directory (default: the spec's)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing result")
    run.add_argument("--quiet", action="store_true", help="no progress messages")
    commands.add_parser("datasets", help="list the bundled datasets")
    return parser


def _fit(args: argparse.Namespace) -> None:
    data = load_source(args.source, args.columns)
    model = GaussianMixture(
        args.n_components,
        covariance_type=args.covariance,
        tol=args.tol,
        reg_covar=args.reg_covar,
        max_iter=args.max_iter,
        n_init=args.n_init,
        init_params=args.init,
        prior=None if args.prior == "none" else args.prior,
        random_state=args.seed,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(data.X)
    for warning in caught:  # converged/degenerate are in the report; repeat them on stderr
        print(f"bayesgmm: warning: {warning.message}", file=sys.stderr)
    summary = summarize(model, data)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as one ``bayesgmm: warning: ...`` line on stderr."""
    print(f"bayesgmm: warning: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> None:
    from bayesgmm.run import run_spec

    with warnings.catch_warnings():
        warnings.showwarning = _print_warning
        result = run_spec(
            args.spec, directory=args.out, overwrite=args.overwrite, progress=not args.quiet
        )
    verdict = f"; cross-check verdict: {result.verdict}" if result.verdict else ""
    print(f"wrote {len(result.files)} files to {result.directory}{verdict}")
    print(f"report: {result.directory / 'report.md'}")


def _datasets() -> None:
    rows = [(name, load_dataset(name)) for name in BUNDLED_DATASETS]
    width = max(len(name) for name in BUNDLED_DATASETS)
    print(f"{'name'.ljust(width)}  samples  features  columns")
    for name, frame in rows:
        n, d = frame.shape
        print(f"{name.ljust(width)}  {n:7d}  {d:8d}  {', '.join(frame.columns)}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default ``sys.argv[1:]``); return the exit status.

    Errors in the input (unreadable file, unknown column, too many components, ...)
    are printed as ``bayesgmm: error: <message>`` with exit status 2.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        if args.command == "fit":
            _fit(args)
        elif args.command == "run":
            _run(args)
        else:
            _datasets()
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, OSError) as err:
        print(f"bayesgmm: error: {err}", file=sys.stderr)
        return 2
    return 0


__all__ = ["build_parser", "format_summary", "load_source", "main", "summarize"]

if __name__ == "__main__":
    sys.exit(main())
