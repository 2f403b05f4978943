"""A toy family of ``bayesgmm run`` for the registry tests (registered by the tests only).

It has no keys of its own, writes one data file and returns one figure; ``MODE`` makes
it misbehave: ``"stray"`` writes a file it does not list, ``"report"`` writes the
driver's ``report.md`` itself.
"""

from __future__ import annotations

from bayesgmm.datasets import Table
from bayesgmm.run import FamilyOutput, FigureFile, RunContext, load_spec_data
from bayesgmm.spec import Spec

KEYS: dict[str, tuple[str, ...]] = {"model": (), "inference": ()}
MODE = "ok"


def check_spec(spec: Spec, model: dict, inference: dict) -> Spec:
    assert model == {} and inference == {}
    return spec


def load_data(spec: Spec) -> Table:
    return load_spec_data(spec)


def run(spec: Spec, data: Table, context: RunContext) -> FamilyOutput:
    import matplotlib.pyplot as plt

    data.frame.describe().to_csv(context.directory / "describe.csv")
    files = ["describe.csv"]
    if MODE == "stray":
        (context.directory / "stray.txt").write_text("not listed")
    elif MODE == "report":
        (context.directory / "report.md").write_text("the family's own report")
        files.append("report.md")
    fig, ax = plt.subplots()
    ax.plot(data.frame.iloc[:, 0])
    return FamilyOutput(
        data=f"Toy data: {len(data.frame)} rows.",
        sections=["## Toy", "", f"seeds {context.seeds(2)}", ""],
        files=files,
        figures=[FigureFile("toy.png", fig)],
        verdict="agree",
        manifest={"toy": True},
    )
