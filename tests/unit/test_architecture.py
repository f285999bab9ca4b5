"""The package map of docs/CONTRIBUTING.md, enforced on the import graph.

Every import inside the core (`iamguard`, the Lambda layer) runs from a higher
layer to a lower one or stays inside its own package; nothing in the core
imports the command line, the local runtime or their libraries. Imports are
read with `ast` (type-only imports under `if TYPE_CHECKING:` included: they
are still a dependency a reader must follow).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "iamguard" / "iamguard"
CLI = ROOT / "cli" / "iamguard_cli"

# Lowest first; a package may import only from its own rank or below. Same rank = siblings
# that must not import each other.
LAYERS: list[set[str]] = [
    {"iamguard.domain"},
    {"iamguard.settings", "iamguard.aws"},
    {"iamguard.iam", "iamguard.organization"},
    {"iamguard.checks"},
    {"iamguard.persistence"},
    {"iamguard.notify", "iamguard.enforcement"},
    {"iamguard.audit", "iamguard.realtime"},
    {"iamguard.api"},
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
# Only the local runtime and the command line may use these.
LOCAL_ONLY_LIBRARIES = {"moto", "pyotp", "qrcode", "werkzeug", "yaml", "iamguard_cli"}


def module_name(path: Path, root: Path, top: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([top, *parts])


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return found


def core_modules() -> dict[str, Path]:
    return {module_name(path, CORE, "iamguard"): path for path in CORE.rglob("*.py")}


def package_of(module: str) -> str | None:
    """The map entry a module belongs to (the longest matching prefix)."""
    candidates = [p for p in RANK if module == p or module.startswith(p + ".")]
    return max(candidates, key=len) if candidates else None


def test_every_core_module_is_on_the_map() -> None:
    unmapped = sorted(m for m in core_modules() if m != "iamguard" and package_of(m) is None)
    assert unmapped == [], "add these to docs/CONTRIBUTING.md's package map and LAYERS"


def test_core_imports_run_downwards_only() -> None:
    upward = []
    for module, path in core_modules().items():
        source = package_of(module)
        if source is None:
            continue
        for target in imports_of(path, module):
            destination = package_of(target)
            if destination is None or destination == source:
                continue
            if RANK[destination] >= RANK[source]:
                upward.append(f"{module} -> {target} ({source} may not import {destination})")
    assert upward == []


def test_core_package_graph_has_no_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in core_modules().items():
        source = package_of(module)
        for target in imports_of(path, module):
            destination = package_of(target)
            if source and destination and destination != source:
                edges[source].add(destination)
    seen: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        seen[node] = 1
        for nxt in edges[node]:
            if seen.get(nxt) == 1:
                pytest.fail("cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in seen:
                visit(nxt, [*trail, node])
        seen[node] = 2

    for node in list(edges):
        if node not in seen:
            visit(node, [])


def test_core_never_imports_the_local_runtime_or_cli() -> None:
    leaks = sorted(
        f"{module} imports {target}"
        for module, path in core_modules().items()
        for target in imports_of(path, module)
        if target.split(".")[0] in LOCAL_ONLY_LIBRARIES
    )
    assert leaks == []


def test_cli_package_is_outside_the_layer_directory() -> None:
    assert CLI.is_dir()
    assert not (CORE / "local").exists()
    assert not (CORE / "cli").exists()
