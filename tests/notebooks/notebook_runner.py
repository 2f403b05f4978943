"""Execute a notebook from notebooks/ with nbclient and return its recorded key numbers.

Each notebook's last code cell prints one line ``RESULTS {json}``; the tests assert on it.
"""

import json
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def run_notebook(name: str, timeout: int = 900, env: dict | None = None) -> dict:
    """Run ``notebooks/<name>`` in a fresh kernel (cwd = notebooks/); its RESULTS dict.

    ``env`` adds variables to the kernel's environment (the rest is inherited).
    """
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    )
    client.execute(env={**os.environ, **(env or {})})
    for cell in reversed(nb.cells):
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith("RESULTS "):
                    return json.loads(line[len("RESULTS ") :])
    raise AssertionError(f"{name} printed no 'RESULTS {{json}}' line")
