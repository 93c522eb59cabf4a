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
    "rootperms": 0,  # modes under the storage root (issue 9 §1): used from every layer
    "threadlite": 0,  # an event and a thread on `_thread`: the CLI's and the session's
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
    "local": 13,  # the Python API (dockyard.Dockyard): the engine in-process, beside the daemon's
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


# Module graph -------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _type_checking_imports(tree: ast.Module) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (type-only back references)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        ):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _module_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported dockyard module, names taken from it) for every import that runs
    (at import time or lazily inside a function); `from pkg import submodule` names the
    submodule."""
    tree = ast.parse(path.read_text())
    type_only = _type_checking_imports(tree)
    out: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name in MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES and node.level == 0:
            names = []
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in MODULES:
                    out.append((node.lineno, sub, []))
                else:
                    names.append(alias.name)
            if names:
                out.append((node.lineno, node.module, names))
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules() -> None:
    # A lazy import inside a function is still a dependency: a cycle through one means two
    # modules that cannot be understood (or tested) apart. Type-only imports under
    # TYPE_CHECKING may point back (a helper module naming the manager that calls it).
    graph = {
        name: {m for _, m, _ in _module_imports(path) if m != name}
        for name, path in MODULES.items()
    }
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_names() -> None:
    # `_name` is its module's own: share it under a public name in the module that owns it.
    offenders = []
    for name, path in sorted(MODULES.items()):
        for lineno, module, names in _module_imports(path):
            for n in names:
                if module != name and n.startswith("_") and not n.startswith("__"):
                    offenders.append(f"{path.relative_to(SRC)}:{lineno}: {module}.{n}")
    assert not offenders, "\n".join(offenders)
