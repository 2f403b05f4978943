"""Training DAGMM: minibatch Adam, early stopping, a loss trace.

The training step takes a batch and the estimation network's dropout masks, returns the
four loss terms and applies Adam to the weights. By default it is NumPy with a
hand-written backward pass (:class:`bayesgmm.dagmm.backprop.NumpyTrainStep`): nothing is
compiled. With a PyTensor ``mode`` it is one PyTensor function compiled per fit from the
graph (:mod:`bayesgmm.dagmm.graph`) with PyMC's Adam updates
(:func:`pymc.variational.updates.adam`); the two are tested equal. The validation loss is
computed in NumPy (:func:`bayesgmm.dagmm.mixture.loss_terms`, the same objective without
dropout).

Reproducibility: one ``numpy.random.Generator`` draws the initial weights (before this
module), the batch order of every epoch and every dropout mask; PyTensor's computations
are deterministic, so the same seed gives the same weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesgmm.dagmm.backprop import NumpyTrainStep
from bayesgmm.dagmm.mixture import loss_terms as numpy_loss_terms
from bayesgmm.dagmm.network import Architecture

__all__ = ["LOSS_TERMS", "TrainingResult", "compile_train_step", "make_train_step", "train"]

#: The loss terms recorded in the trace, in the order the training step returns them.
LOSS_TERMS = ("total", "reconstruction", "energy", "covariance_penalty")


@dataclass
class TrainingResult:
    """Weights at the best validation loss (or the last epoch without validation data),
    the per-epoch ``trace`` (columns ``epoch``, ``train_<term>`` and ``val_<term>`` for
    each of :data:`LOSS_TERMS`), the epoch kept, the epochs run, whether early stopping
    ended the run, and the seconds spent compiling and training."""

    weights: list[np.ndarray]
    trace: pd.DataFrame
    best_epoch: int
    n_epochs: int
    stopped_early: bool
    compile_seconds: float
    train_seconds: float


def compile_train_step(
    arch: Architecture,
    weights: list[np.ndarray],
    *,
    lambda_energy: float,
    lambda_cov: float,
    reg_covar: float,
    learning_rate: float,
    mode=None,
):
    """The compiled training step and the shared weights it updates.

    Returns ``(step, shared)``: ``step(x, *masks)`` returns the loss terms (in the order of
    :data:`LOSS_TERMS`) on the batch ``x`` (N, D) before the update, then takes one Adam
    step; ``masks`` are the (N, width) inverted-dropout masks of the estimation network's
    hidden layers. ``shared`` are the PyTensor shared variables holding the weights.
    """
    import pytensor
    import pytensor.tensor as pt
    from pymc.variational.updates import adam

    from bayesgmm.dagmm.graph import loss_terms

    shared = [
        pytensor.shared(np.array(w, dtype=np.float64), name=f"w{i}") for i, w in enumerate(weights)
    ]
    x = pt.matrix("x", dtype="float64")
    masks = [pt.matrix(f"mask{i}", dtype="float64") for i in range(len(arch.estimation_widths))]
    terms = loss_terms(
        x,
        arch,
        shared,
        lambda_energy=lambda_energy,
        lambda_cov=lambda_cov,
        reg_covar=reg_covar,
        dropout_masks=masks,
    )
    updates = adam(terms[0], shared, learning_rate=learning_rate)
    step = pytensor.function([x, *masks], list(terms), updates=updates, mode=mode)
    return step, shared


def make_train_step(arch: Architecture, weights: list[np.ndarray], *, mode=None, **options):
    """The training step and a function returning copies of the current weights:
    :class:`~bayesgmm.dagmm.backprop.NumpyTrainStep` when ``mode`` is None, else the
    PyTensor step compiled with ``mode`` (:func:`compile_train_step`). ``options``: the
    keyword arguments of :func:`compile_train_step` (``lambda_energy``, ``lambda_cov``,
    ``reg_covar``, ``learning_rate``)."""
    if mode is None:
        step = NumpyTrainStep(arch, weights, **options)
        return step, step.current_weights
    step, shared = compile_train_step(arch, weights, mode=mode, **options)
    return step, lambda: [s.get_value() for s in shared]


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random partition of ``range(n)`` into ``n // batch_size`` batches of
    ``batch_size`` to ``2 * batch_size - 1`` rows (no batch is smaller than asked:
    the mixture of a batch is estimated from its rows)."""
    order = rng.permutation(n)
    return np.array_split(order, max(1, n // batch_size))


def _diverged(epoch: int, terms, reg_covar: float) -> FloatingPointError:
    names = ", ".join(f"{k} = {v:.4g}" for k, v in zip(LOSS_TERMS, terms, strict=True))
    return FloatingPointError(
        f"DAGMM training diverged in epoch {epoch}: a loss term is not finite ({names}). "
        "Usually a component covariance of z became singular (its Cholesky factor failed): "
        f"add a diagonal with reg_covar (now {reg_covar:g}; e.g. 1e-6), lower "
        "learning_rate, raise lambda_cov, or use fewer n_components"
    )


def train(
    X_train: np.ndarray,
    X_val: np.ndarray | None,
    arch: Architecture,
    weights: list[np.ndarray],
    rng: np.random.Generator,
    *,
    lambda_energy: float,
    lambda_cov: float,
    reg_covar: float,
    dropout: float,
    learning_rate: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    tol: float,
    progressbar: bool = False,
    mode=None,
) -> TrainingResult:
    """Minibatch Adam from ``weights`` for at most ``max_epochs`` epochs (the step of
    :func:`make_train_step`: NumPy when ``mode`` is None, else compiled by PyTensor).

    With validation data, training stops when the validation objective has not improved
    by more than ``tol`` for ``patience`` epochs, and the weights of the best epoch are
    returned; without, the last epoch's. The training columns of the trace are the means
    of the batch losses of the epoch (with dropout, before each update).
    """
    start = time.perf_counter()
    step, current_weights = make_train_step(
        arch,
        weights,
        lambda_energy=lambda_energy,
        lambda_cov=lambda_cov,
        reg_covar=reg_covar,
        learning_rate=learning_rate,
        mode=mode,
    )
    compile_seconds = time.perf_counter() - start
    keep = 1.0 - dropout
    records = []
    best, best_epoch, best_weights, waited = np.inf, 0, [w.copy() for w in weights], 0
    stopped_early = False
    bar = _progress(max_epochs, progressbar)
    epoch = 0
    try:
        for epoch in range(1, max_epochs + 1):
            sums = np.zeros(len(LOSS_TERMS))
            batches = _batches(len(X_train), batch_size, rng)
            for rows in batches:
                masks = [(rng.random((len(rows), w)) < keep) / keep for w in arch.estimation_widths]
                terms = np.array(step(X_train[rows], *masks), dtype=np.float64)
                if not np.isfinite(terms).all():
                    raise _diverged(epoch, terms, reg_covar)
                sums += terms
            record = {"epoch": epoch}
            record |= {
                f"train_{k}": v for k, v in zip(LOSS_TERMS, sums / len(batches), strict=True)
            }
            current = current_weights()
            if X_val is not None:
                val = numpy_loss_terms(
                    arch,
                    current,
                    X_val,
                    lambda_energy=lambda_energy,
                    lambda_cov=lambda_cov,
                    reg_covar=reg_covar,
                )
                if not np.isfinite(val["total"]):
                    raise _diverged(epoch, [val[k] for k in LOSS_TERMS], reg_covar)
                record |= {f"val_{k}": v for k, v in val.items()}
                monitored = val["total"]
            else:
                monitored = record["train_total"]
            records.append(record)
            if monitored < best - tol:
                best, best_epoch, best_weights, waited = monitored, epoch, current, 0
            else:
                waited += 1
            if X_val is None:
                best_epoch, best_weights = epoch, current
            bar.update(epoch, monitored, best)
            if X_val is not None and waited >= patience:
                stopped_early = True
                break
    finally:
        bar.close()
    return TrainingResult(
        weights=[np.array(w) for w in best_weights],
        trace=pd.DataFrame.from_records(records),
        best_epoch=best_epoch,
        n_epochs=epoch,
        stopped_early=stopped_early,
        compile_seconds=compile_seconds,
        train_seconds=time.perf_counter() - start - compile_seconds,
    )


class _progress:
    """A rich progress bar over epochs showing the monitored loss (rich comes with PyMC),
    or nothing."""

    def __init__(self, total: int, enabled: bool):
        self.progress = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("DAGMM epoch {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("{task.fields[loss]}"),
                TimeElapsedColumn(),
            )
            self.task = self.progress.add_task("fit", total=total, loss="")
            self.progress.start()

    def update(self, epoch: int, loss: float, best: float) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task, completed=epoch, loss=f"loss {loss:.4g} (best {best:.4g})"
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
