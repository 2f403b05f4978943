"""Guards of the package layout, read from the source (AST), nothing executed but one import.

- no import cycle between bayesgmm's modules, counting imports inside functions too (a
  function-level import hides a cycle from Python, not from a reader);
- no private name (``_x``) imported from, or read off, another bayesgmm module;
- each vocabulary constant assigned in exactly one module;
- the public API listed in ``__all__`` and ``dir(bayesgmm)``, and ``import bayesgmm`` without
  PyMC.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bayesgmm

PACKAGE = Path(bayesgmm.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + is_package]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in ``module``."""
    found = []
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from package import submodule`
                    found.append((sub, None, node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return [f for f in found if f[0].split(".")[0] == "bayesgmm"]


def import_graph() -> dict[str, set[str]]:
    """Module -> the bayesgmm modules it imports (anywhere in its body)."""
    graph = {}
    for module in MODULES:
        edges = set()
        for target, _, _ in _imports(module):
            while target and target not in MODULES:  # `import bayesgmm.em.gaussian as g`
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.add(target)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert find_cycles(import_graph()) == []


def _private(name: str | None) -> bool:
    return bool(name) and name.startswith("_") and not name.startswith("__")


def test_no_private_name_imported_across_modules():
    offences = [
        f"{module}:{line} imports {name} from {target}"
        for module in MODULES
        for target, name, line in _imports(module)
        if _private(name) and target != module
    ]
    assert offences == []


def test_no_private_attribute_read_off_another_module():
    offences = []
    for module, tree in TREES.items():
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("bayesgmm") and alias.asname:
                        aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, node)
                for alias in node.names:
                    if f"{target}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
            ):
                offences.append(f"{module}:{node.lineno} reads {node.value.id}.{node.attr}")
    assert offences == []


#: Vocabulary constants: each is assigned at module level in exactly one module.
VOCABULARY = (
    "COVARIANCE_TYPES",
    "COMPONENT_DIM",
    "FEATURE_DIM",
    "FEATURE2_DIM",
    "INIT_METHODS",
    "LOG_2PI",
    "OBS_VAR",
    "SAMPLE_DIMS",
    "SAMPLERS",
    "VERDICTS",
    "MANIFEST",
    "BUNDLED_DATASETS",
    "FAMILIES",
    "REQUIRED_COLUMNS",
    "HEADER_SIZE",
    "FORMAT_ATTR",
)


def _module_level_assignments() -> dict[str, list[str]]:
    owners: dict[str, list[str]] = {}
    for module, tree in TREES.items():
        for node in tree.body:
            targets = []
            if isinstance(node, ast.Assign):
                targets = [t for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target]
            for target in targets:
                owners.setdefault(target.id.lstrip("_"), []).append(module)
    return owners


@pytest.mark.parametrize("name", VOCABULARY)
def test_vocabulary_constant_defined_once(name):
    owners = _module_level_assignments().get(name, [])
    assert len(owners) <= 1, f"{name} is defined in {owners}: define it once and import it"


def test_covariance_type_tuple_written_once():
    literal = ("full", "tied", "diag", "spherical")
    places = [
        f"{module}:{node.lineno}"
        for module, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Tuple | ast.List)
        and all(isinstance(e, ast.Constant) for e in node.elts)
        and tuple(e.value for e in node.elts) == literal
    ]
    assert len(places) == 1, places


def test_covariance_type_check_defined_once():
    owners = [
        module
        for module, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "check_covariance_type"
    ]
    assert owners == ["bayesgmm.em.gaussian"]


def test_every_module_lists_its_public_api():
    missing = [
        module
        for module, tree in TREES.items()
        if not module.endswith("__main__")
        and MODULES[module].name != "__init__.py"
        and any(
            isinstance(n, ast.FunctionDef | ast.ClassDef) and not n.name.startswith("_")
            for n in tree.body
        )
        and not any(
            isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
            for n in tree.body
        )
    ]
    assert missing == []


PUBLIC = (
    "GaussianMixture",
    "ConjugatePrior",
    "BayesGMM",
    "MPMA",
    "GibbsMPMA",
    "build_gmm_model",
    "build_mpma_model",
    "run_spec",
    "crosscheck",
    "select_n_components",
    "anomaly_scores",
    "datasets",
    "DAGMM",
)


def test_public_api_listed_in_all_and_dir():
    assert set(PUBLIC) <= set(bayesgmm.__all__)
    assert set(bayesgmm.__all__) <= set(dir(bayesgmm))
    for name in bayesgmm.__all__:
        assert getattr(bayesgmm, name) is not None


def test_import_bayesgmm_does_not_import_pymc():
    """Nor dask: the optional extra is imported only for dask input (bayesgmm.em.dask)."""
    code = (
        "import sys, bayesgmm; dir(bayesgmm); bayesgmm.GaussianMixture; "
        "print(sorted(m for m in ('pymc', 'pytensor', 'nutpie', 'arviz', 'dask', 'distributed', "
        "'jax') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
