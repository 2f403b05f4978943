"""Same spec, same seed, fresh processes: the same posterior draws, bit for bit.

Each run is a fresh ``bayesgmm run`` process. The cold runs get their own empty numba
cache and PyTensor compile directories (everything is new to the caches, as on a fresh
machine or for a new dataset); the warm runs reuse the caches of the first.

Guaranteed, and tested: two cold runs give identical draws, and so do two warm runs. Not
guaranteed: a cold run and a warm run. The numba kernel compiled in the cold process and
the one loaded from its cache differ in the last bits of the gradient at some points
(a fast-math reassociation of the blocked likelihood pass; measured, see the README),
L-BFGS-B's path to the MAP then differs in the last bits, and NUTS turns that into another
(equally valid) chain. Their posterior summaries agree within Monte Carlo error, which is tested.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayesgmm import BayesGMM

ROOT = Path(__file__).resolve().parents[2]


def _run(out: Path, cache: Path) -> dict[str, np.ndarray]:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    env["PYTENSOR_FLAGS"] = f"compiledir={cache / 'pytensor'}"
    subprocess.run(
        [sys.executable, "-m", "bayesgmm", "run", "models/faithful.toml", "--out", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    posterior = BayesGMM.load(out / "posterior.nc").idata_["posterior"].to_dataset()
    return {name: posterior[name].values for name in ("weights", "means", "sigmas")}


@pytest.mark.slow
def test_fresh_processes_give_identical_draws(tmp_path):
    cold_a = _run(tmp_path / "a", tmp_path / "cache_a")
    cold_b = _run(tmp_path / "b", tmp_path / "cache_b")
    warm_a = _run(tmp_path / "c", tmp_path / "cache_a")
    warm_b = _run(tmp_path / "d", tmp_path / "cache_a")
    for name, draws in cold_a.items():
        assert draws.shape[:2] == (4, 1000)
        np.testing.assert_array_equal(draws, cold_b[name], err_msg=f"{name}: cold vs cold")
        np.testing.assert_array_equal(warm_a[name], warm_b[name], err_msg=f"{name}: warm")
        # cold vs warm: the same posterior within Monte Carlo error (4000 draws, ESS > 1000)
        flat_cold = draws.reshape(-1, *draws.shape[2:])
        flat_warm = warm_a[name].reshape(flat_cold.shape)
        mcse = np.sqrt(flat_cold.var(axis=0) / 1000 + flat_warm.var(axis=0) / 1000)
        assert np.all(np.abs(flat_cold.mean(axis=0) - flat_warm.mean(axis=0)) < 5 * mcse), name
