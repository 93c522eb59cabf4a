"""The layering rule of DESIGN.md: a module imports only modules of the layers below its own.

Read from the source (imports inside functions count too), so a shortcut upward cannot hide
in a lazy import. The frontend is pure: it may use only the error types.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dockyard"

# Bottom to top (docs/ARCHITECTURE.md). Packages on one rank may not import each other.
RANK = {
    "errors": 0,
    "statefile": 0,  # atomic writes of small state files: used from every layer
    "content": 1,
    "metadata": 2,
    "image": 3,
    "snapshot": 4,
    "diff": 5,
    "store": 6,
    "registry": 7,
    "runtime": 8,
    "frontend": 9,
    "builder": 10,
    "session": 11,
    "engine": 12,
    "api": 13,
    "cli": 14,
}
FRONTEND_MAY_USE = {"errors", "frontend"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "dockyard" or len(parts) < 2:
        return None
    return parts[1].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
    return out


def test_every_module_imports_only_lower_layers() -> None:
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        own = rel.parts[0].removesuffix(".py")
        if own not in RANK:
            continue
        for lineno, module in _imports(path):
            other = _layer(module)
            if other is None or other == own or other not in RANK:
                continue
            if own == "frontend" and other not in FRONTEND_MAY_USE:
                violations.append(f"{rel}:{lineno}: the frontend is pure, but imports {module}")
            elif RANK[other] >= RANK[own]:
                violations.append(f"{rel}:{lineno}: {own} imports {module} (layer {other})")
    assert not violations, "\n".join(violations)


def test_the_check_sees_imports() -> None:
    # A guard against the check passing vacuously: the builder does import the runtime.
    builder = SRC / "builder" / "runner.py"
    assert any(_layer(m) == "runtime" for _, m in _imports(builder))


_SQL_VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "PRAGMA", "BEGIN"}


def test_only_the_metadata_package_speaks_sql() -> None:
    # metadata/schema.py owns every table; the rest of dockyard calls typed methods.
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "metadata":
            continue
        tree = ast.parse(path.read_text())
        for lineno, module in _imports(path):
            if module.split(".")[0] == "sqlite3":
                offenders.append(f"{rel}:{lineno}: imports sqlite3")
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            sql_text = (
                node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and node.args[0].value.lstrip().split(" ")[0].upper() in _SQL_VERBS
            )
            if node.func.attr == "transaction" or (
                node.func.attr in ("execute", "executemany", "executescript") and sql_text
            ):
                offenders.append(f"{rel}:{node.lineno}: runs SQL (.{node.func.attr})")
    assert not offenders, "\n".join(offenders)
