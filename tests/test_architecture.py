"""The import direction of docs/architecture.md, enforced.

Every module of ``mgdm`` belongs to a unit (a sub-package, or a top-level module), and every unit
to a layer. A module may import its own unit and the units of lower layers, never a higher one;
the units' import graph has no cycle. Imports inside functions count too: a lazy import is still
a dependency. The library core (layers 0-4) never imports an application (layers 5 and up).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import mgdm

LAYERS: list[set[str]] = [
    {"random", "checkpoints", "devices", "files", "plotting", "diffusion"},  # 0: ground floor
    {"operators", "data", "metrics"},  # 1: forward models, data sets, metrics
    {"problem", "likelihood", "tasks"},  # 2: problems and the task registry
    {"priors"},  # 3: denoisers, exact priors, loaders, latent priors
    {"samplers", "gmm_problem", "__init__"},  # 4: algorithms; the package's public face
    {"audio", "restore", "image_io"},  # 5: applications: the audio domain, restoring images
    {"train"},  # 6: trainers of the shipped priors
    {"bench", "evaluate", "serve"},  # 7: benchmarks, prior evaluation, model cards; the web app
    {"commands"},  # 8: one module per command
    {"cli", "__main__"},  # 9: the entry point
]
LIBRARY_LAYERS = 5
"""Layers below this index are the library core."""

PACKAGE = Path(mgdm.__file__).parent


def unit_of(module: str) -> str:
    """``mgdm.priors.latent.prior`` -> ``priors``; ``mgdm`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(unit: str) -> int:
    for index, units in enumerate(LAYERS):
        if unit in units:
            return index
    raise AssertionError(f"unit {unit!r} has no layer: add it to LAYERS (docs/architecture.md)")


def module_imports() -> dict[str, set[str]]:
    """Every ``mgdm`` module and the ``mgdm`` modules it imports (anywhere in its body)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names if a.name.startswith("mgdm"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "mgdm":  # from mgdm import devices: the submodules
                    imported.update(f"mgdm.{alias.name}" for alias in node.names)
                elif node.module.startswith("mgdm."):
                    imported.add(node.module)
        graph[name] = imported
    return graph


def test_every_unit_has_a_layer():
    units = {unit_of(name) for name in module_imports()}
    for unit in units:
        layer_of(unit)


def test_imports_point_down():
    wrong = []
    for module, imported in sorted(module_imports().items()):
        here = layer_of(unit_of(module))
        for target in sorted(imported):
            if unit_of(target) != unit_of(module) and layer_of(unit_of(target)) > here:
                wrong.append(f"{module} (layer {here}) imports {target}")
    assert not wrong, "imports pointing up:\n" + "\n".join(wrong)


def test_library_imports_no_application():
    wrong = [
        f"{module} imports {target}"
        for module, imported in module_imports().items()
        if layer_of(unit_of(module)) < LIBRARY_LAYERS
        for target in imported
        if layer_of(unit_of(target)) >= LIBRARY_LAYERS
    ]
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_units():
    edges: dict[str, set[str]] = {}
    for module, imported in module_imports().items():
        source = unit_of(module)
        edges.setdefault(source, set()).update(unit_of(t) for t in imported if unit_of(t) != source)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(unit: str) -> None:
        if unit in done:
            return
        assert unit not in visiting, "cycle: " + " -> ".join([*visiting, unit])
        visiting.append(unit)
        for target in sorted(edges.get(unit, ())):
            visit(target)
        visiting.pop()
        done.add(unit)

    for unit in sorted(edges):
        visit(unit)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The checks above are not vacuous: a core module importing an application is caught."""
    fake = tmp_path / "mgdm"
    (fake / "samplers").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "samplers" / "__init__.py").write_text("from mgdm.bench import audio\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    graph = module_imports()
    assert graph["mgdm.samplers"] == {"mgdm.bench"}
    try:
        test_library_imports_no_application()
    except AssertionError as error:
        assert "mgdm.samplers imports mgdm.bench" in str(error)
    else:
        raise AssertionError("the upward import was not reported")
