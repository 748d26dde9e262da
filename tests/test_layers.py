"""The package keeps one direction of flow (docs/design.md): a module imports only layers to its left,
and no import circle exists, counting imports inside functions (a lazy import is still a dependency).

    base → record → sources → mappers → rules → outputs → evaluation → transports

`record.py` is the contract between the sources and the mappers (as `facts.py` is between mappers and
rules), so the sources may build records. Beyond the order, three edges are refused outright: rules
never see FHIR (no record, source or mapper import), outputs render judgements (they may read the
mappers' code vocabularies, nothing else of the mappers), and transports hold no clinical logic (they
call `fhir_vcf.evaluation`, not the mappers or the rules; loading a policy is not clinical logic).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fhir_vcf"

BASE = {"errors", "levels", "clinical_time", "facts", "frozen", "config", "metrics", "version", "logs", "elements",
        "collector"}
LAYERS = ("base", "record", "sources", "mappers", "rules", "outputs", "evaluation", "transports")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fhir_vcf"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("fhir_vcf"))
    return {m for m in out if m in MODULES}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "transports"  # the package root: a facade (`fhir_vcf.create_app`) nobody inside imports
    head = parts[1]
    if head in BASE:
        return "base"
    if head in {"record", "sources", "mappers", "rules", "outputs", "evaluation"}:
        return head
    return "transports"


def test_the_layer_of_every_module_is_known():
    assert layer("fhir_vcf.mappers.text") == "mappers"
    assert layer("fhir_vcf.service.cds_hooks") == "transports"
    assert layer("fhir_vcf.facts") == "base"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_layers_to_its_left(module: str):
    mine = LAYERS.index(layer(module))
    wrong = sorted(m for m in GRAPH[module] if LAYERS.index(layer(m)) > mine)
    assert not wrong, f"{module} ({layer(module)}) imports layers to its right: {wrong}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_rules_outputs_and_transports_keep_their_distance(module: str):
    kind = layer(module)
    imported = GRAPH[module]
    if kind == "rules":
        bad = [m for m in imported if layer(m) in {"record", "sources", "mappers"}]
    elif kind == "outputs":
        bad = [m for m in imported if layer(m) in {"record", "sources"}
               or (layer(m) == "mappers" and not m.startswith("fhir_vcf.mappers.codes"))]
    elif kind == "transports":
        bad = [m for m in imported if layer(m) == "mappers"
               or (layer(m) == "rules" and m != "fhir_vcf.rules.policy")]
    else:
        bad = []
    assert not bad, f"{module} ({kind}) must not import {sorted(bad)}"


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
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
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert _cycles() == []


def test_the_circle_check_sees_a_circle():
    GRAPH["fhir_vcf.levels"].add("fhir_vcf.facts")  # facts imports levels: a circle
    try:
        assert ["fhir_vcf.facts", "fhir_vcf.levels"] in _cycles()
    finally:
        GRAPH["fhir_vcf.levels"].discard("fhir_vcf.facts")
