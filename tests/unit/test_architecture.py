"""Package boundaries from ARCHITECTURE.md, checked on the source, not by hope.

The stage folders are subpackages mapped from the repository's top level (see
pyproject.toml), which import-linter's module discovery cannot follow; this test reads each
module's imports with ``ast`` instead.
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
}
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
        (*STAGES, "citywatch.stack", "citywatch.cli", "faust", "fastapi"),
        "the work order is shared by the stream tier and the center, and imports neither",
    ),
]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


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
