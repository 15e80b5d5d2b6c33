"""Package boundaries and the layout's rules from ARCHITECTURE.md, checked on the source.

The stage folders are subpackages mapped from the repository's top level (see
pyproject.toml), which import-linter's module discovery cannot follow; this test reads each
module's imports with ``ast`` instead. Besides the layer contracts it holds the layout's
rules: no import cycle between top-level packages, no simulator in production code, no
private name imported across modules, no product module over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {
    "citywatch.edge": REPO / "edge",
    "citywatch.hardware": REPO / "hardware",
    "citywatch.models": REPO / "models",
    "citywatch.stream": REPO / "stream",
    "citywatch.center": REPO / "center",
    "citywatch.contracts": REPO / "citywatch" / "contracts",
    "citywatch.config": REPO / "citywatch" / "config",
    "citywatch.stack": REPO / "citywatch" / "stack",
    "citywatch.workorder": REPO / "citywatch" / "workorder",
    "citywatch.storage": REPO / "citywatch" / "storage",
    "citywatch.cli": REPO / "citywatch" / "cli",
}
"""Every top-level package, by import name (``citywatch.mqtt_client`` is a module of the root)."""
STAGES = (
    "citywatch.edge",
    "citywatch.stream",
    "citywatch.center",
    "citywatch.hardware",
    "citywatch.models",
)

# (importing package, forbidden prefixes, why)
CONTRACTS = [
    (
        "citywatch.edge",
        ("citywatch.stream", "citywatch.center", "faust", "psycopg", "aiokafka"),
        "gateways do not install the stream tier",
    ),
    (
        "citywatch.hardware",
        ("citywatch.stream", "citywatch.center", "citywatch.edge", "faust", "psycopg", "paho"),
        "adapters return plain domain values, never MQTT messages",
    ),
    (
        "citywatch.models",
        ("citywatch.stream", "citywatch.center", "citywatch.edge", "faust", "psycopg"),
        "detectors know nothing of transport",
    ),
    (
        "citywatch.contracts",
        (*STAGES, "citywatch.config", "citywatch.stack", "citywatch.cli"),
        "the contract module is imported by every tier and imports none",
    ),
    ("citywatch.config", (*STAGES, "citywatch.stack", "citywatch.cli"), "config imports no stage"),
    (
        "citywatch.center",
        ("citywatch.edge", "citywatch.stream"),
        "only the CLI and tests import edge or stream",
    ),
    (
        "citywatch.stack",
        ("citywatch.edge", "citywatch.stream", "citywatch.center"),
        "the stack is infrastructure",
    ),
    (
        "citywatch.stream",
        ("citywatch.edge", "citywatch.center"),
        "the stream tier does not run gateway code",
    ),
    (
        "citywatch.workorder",
        (
            *STAGES,
            "citywatch.stack",
            "citywatch.cli",
            "citywatch.storage",
            "faust",
            "fastapi",
            "psycopg",
        ),
        "the work order is pure domain logic shared by the stream tier and the center: no I/O",
    ),
    (
        "citywatch.storage",
        (*STAGES, "citywatch.stack", "citywatch.cli", "faust", "fastapi"),
        "the work-order SQL is shared by the stream tier and the center, and imports neither",
    ),
]

SIMULATORS = (
    "citywatch.hardware.camera.synthetic_capture",
    "citywatch.hardware.camera.street",
    "citywatch.hardware.water.sim",
    "citywatch.hardware.water.modbus_server",
    "citywatch.hardware.dock.sim",
    "citywatch.hardware.dock.aerial",
)
"""Modules that imitate devices: the CLI, the demo, tests and offline evaluation use them."""
OFFLINE = (REPO / "edge" / "camera" / "evaluation",)
"""Offline evaluation (back-test, scenario suite, replay) runs on a workstation, not a gateway."""
MAX_MODULE_LINES = 500


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    return {module for module, _ in imported_names(path)}


def imported_names(path: Path) -> set[tuple[str, str | None]]:
    """``(module, name)`` for each import of ``path``; ``name`` is None for ``import x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module, None))
            found |= {(node.module, alias.name) for alias in node.names}
    return found


def package_of(module: str) -> str | None:
    """The top-level package (a key of FOLDERS) that ``module`` belongs to."""
    for package in FOLDERS:
        if module == package or module.startswith(package + "."):
            return package
    return None


def product_modules() -> list[tuple[str, Path]]:
    return [
        (package, path)
        for package, folder in FOLDERS.items()
        for path in sorted(folder.rglob("*.py"))
    ]


@pytest.mark.parametrize(("package", "forbidden", "why"), CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_package_boundary(package: str, forbidden: tuple[str, ...], why: str) -> None:
    """No module of the package imports what its layer must not depend on."""
    violations = []
    for path in sorted(FOLDERS[package].rglob("*.py")):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                violations.append(f"{path.relative_to(REPO)} imports {name}")
    assert not violations, f"{why}:\n" + "\n".join(violations)


def test_checker_sees_real_imports() -> None:
    """The checker itself finds the imports of a known module (guards against a vacuous pass)."""
    assert "citywatch.contracts" in imports_of(REPO / "edge" / "session.py")
    assert "citywatch.hardware.water.sim" in imports_of(REPO / "citywatch" / "cli" / "demo.py")


@pytest.mark.slow
def test_no_import_cycle_between_top_level_packages() -> None:
    """Top-level packages import each other in one direction only (models → hardware, never
    back), so each layer can be read, tested and shipped without the ones above it."""
    graph: dict[str, set[str]] = {package: set() for package in FOLDERS}
    for package, path in product_modules():
        for name in imports_of(path):
            target = package_of(name)
            if target is not None and target != package:
                graph[package].add(target)
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" → ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not cycles, "import cycles between top-level packages:\n" + "\n".join(sorted(cycles))


def test_no_production_module_imports_a_simulator() -> None:
    """Gateway agents, the stream tier and the center run real devices only: simulators are
    plugged in by the CLI, the demo and tests (or loaded when a ``synthetic:`` URL asks)."""
    violations = []
    for package in ("citywatch.edge", "citywatch.stream", "citywatch.center", "citywatch.models"):
        for path in sorted(FOLDERS[package].rglob("*.py")):
            if any(path.is_relative_to(folder) for folder in OFFLINE):
                continue
            if package == "citywatch.models" and path.name in {
                "street_dataset.py",
                "train_street.py",
            }:
                continue  # training renders its own synthetic dataset
            for name in imports_of(path):
                if any(name == s or name.startswith(s + ".") for s in SIMULATORS):
                    violations.append(f"{path.relative_to(REPO)} imports {name}")
    assert not violations, "\n".join(violations)


@pytest.mark.slow
def test_no_private_name_is_imported_across_modules() -> None:
    """A leading underscore means "this module only": nothing imports one from elsewhere."""
    folders = [*(folder for _, folder in FOLDERS.items()), REPO / "benchmarks"]
    violations = [
        f"{path.relative_to(REPO)} imports {name} from {module}"
        for folder in folders
        for path in sorted(folder.rglob("*.py"))
        for module, name in imported_names(path)
        if module.startswith("citywatch")
        and name is not None
        and name.startswith("_")
        and not name.startswith("__")  # dunders (__version__) are public by convention
    ]
    assert not violations, "\n".join(violations)


def test_no_product_module_is_longer_than_one_sitting() -> None:
    """Modules stay small enough to read in one sitting; one that grows two jobs is split."""
    folders = [*(folder for _, folder in FOLDERS.items()), REPO / "benchmarks"]
    long = [
        f"{path.relative_to(REPO)}: {lines} lines"
        for folder in folders
        for path in sorted(folder.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, f"over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)
