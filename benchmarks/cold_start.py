"""Time to first posterior: what a user waits for on a fresh machine, stage by stage.

Every measurement runs in a fresh Python process. "cold" processes get an empty numba
cache directory (``NUMBA_CACHE_DIR``) and an empty PyTensor compile directory
(``PYTENSOR_FLAGS=compiledir=...``), both temporary, so nothing compiled earlier is reused:
that is a first call after installation. "warm" processes share caches filled by an
earlier process (the usual case from the second call on). Printed:

- ``bare fit``: ``BayesGMM(2).fit(load_faithful())`` (4 chains x (1000 + 1000)), total,
  and the stages of the same work done one after the other in one process: import of
  bayesgmm, of the Bayesian API (PyMC), EM + MAP (``fit_point_estimates``), then the whole
  fit again (NUTS and post-processing; EM and MAP now warm in-process);
- ``second fit``: the same fit again in the same process;
- ``main job``: README command 1's run, ``bayesgmm run models/faithful.toml`` (wall time of
  the command, and the driver's own stage timings from ``MANIFEST.json``).

    python benchmarks/cold_start.py                  # cold and warm, both jobs
    python benchmarks/cold_start.py --repeats 3      # best of 3 warm runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Run in the child process: stage timings as one JSON line.
CHILD = r"""
import json, time
t = {}
t0 = time.perf_counter()
import bayesgmm
from bayesgmm.datasets import load_faithful
t["import bayesgmm"] = time.perf_counter() - t0
s = time.perf_counter()
from bayesgmm import BayesGMM
from bayesgmm.gmm.estimator import fit_point_estimates
t["import Bayesian API (PyMC)"] = time.perf_counter() - s
X = load_faithful()
s = time.perf_counter()
fit_point_estimates(X, 2, em_seed=0, map_seed=0)
t["EM + MAP"] = time.perf_counter() - s
s = time.perf_counter()
model = BayesGMM(2, random_state=1, progressbar=False).fit(X)
t["fit after EM + MAP (NUTS, post-processing)"] = time.perf_counter() - s
s = time.perf_counter()
BayesGMM(2, random_state=1, progressbar=False).fit(X)
t["second fit, same process"] = time.perf_counter() - s
t["verdict"] = model.crosscheck_.verdict
print("STAGES " + json.dumps(t))
"""

#: A bare first fit in a fresh process, nothing else.
BARE = r"""
import time
t0 = time.perf_counter()
from bayesgmm import BayesGMM
from bayesgmm.datasets import load_faithful
BayesGMM(2, random_state=1, progressbar=False).fit(load_faithful())
print(f"TOTAL {time.perf_counter() - t0:.3f}")
"""


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and "compiledir" not in f]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"compiledir={cache / 'pytensor'}"])
    return env


def _python(code: str, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    return wall, out.stdout


def bare_fit(env: dict[str, str]) -> float:
    """Wall time of a fresh process doing only the first fit (interpreter start included)."""
    wall, _ = _python(BARE, env)
    return wall


def stages(env: dict[str, str]) -> dict:
    _, out = _python(CHILD, env)
    line = next(x for x in out.splitlines() if x.startswith("STAGES "))
    return json.loads(line[len("STAGES ") :])


def main_job(env: dict[str, str]) -> tuple[float, dict]:
    """README command 1's run (after installation): wall time and the driver's timings."""
    with tempfile.TemporaryDirectory() as out:
        cli = Path(sys.executable).with_name("bayesgmm")
        cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "bayesgmm"]
        start = time.perf_counter()
        subprocess.run(
            [*cmd, "run", "models/faithful.toml", "--out", f"{out}/run", "--quiet"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - start
        manifest = json.loads((Path(out) / "run" / "MANIFEST.json").read_text())
    return wall, manifest.get("timings_s", {})


def _print_stages(title: str, values: dict) -> None:
    print(f"  {title}")
    for name, value in values.items():
        shown = f"{value:8.2f} s" if isinstance(value, float | int) else f"{value:>10}"
        print(f"    {name:<45}{shown}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="warm repeats (best kept)")
    args = parser.parse_args(argv)
    print(
        f"# cold start, {platform.node()} ({os.cpu_count()} cores), Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("bare", "stages", "job"):
            (Path(tmp) / name).mkdir()
        # each cold measurement on its own empty caches
        cold_bare = bare_fit(_env(Path(tmp) / "bare"))
        cold_stages = stages(_env(Path(tmp) / "stages"))
        cold_job, cold_job_steps = main_job(_env(Path(tmp) / "job"))
        # warm: the caches those runs filled
        warm_bare = min(bare_fit(_env(Path(tmp) / "bare")) for _ in range(args.repeats))
        warm_stages = stages(_env(Path(tmp) / "stages"))
        warm_job, warm_job_steps = min(
            (main_job(_env(Path(tmp) / "job")) for _ in range(args.repeats)), key=lambda r: r[0]
        )
    print("\nBayesGMM(2).fit(load_faithful()) in a fresh process (process start included)")
    print(f"  cold {cold_bare:8.2f} s    warm {warm_bare:8.2f} s")
    _print_stages("cold, by stage:", cold_stages)
    _print_stages("warm, by stage:", warm_stages)
    print("\nbayesgmm run models/faithful.toml (README command 1 after installation)")
    print(f"  cold {cold_job:8.2f} s    warm {warm_job:8.2f} s")
    _print_stages("cold, driver stages:", cold_job_steps)
    _print_stages("warm, driver stages:", warm_job_steps)


if __name__ == "__main__":
    main()
