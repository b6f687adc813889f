"""Imports point inward: the domain packages (`hub.events`, `hub.consent`,
`hub.identity`, `hub.plans`) import no store, log, ingest path, entrypoint, SQL driver,
broker client or web framework, and no two top-level parts of `hub` import each other
round a cycle; `hub.auth` keeps no credential in SQL itself (its ports' SQL implementations
live in `hub.store`). Read from the source with `ast`: module-level imports only (also those
under a module-level `if` or `try`); imports under `if TYPE_CHECKING:` name a port's
type and are not run, and imports inside functions are the composition root's late
wiring."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

HUB = Path(__file__).resolve().parents[2] / "hub"
DOMAIN = ("hub.events", "hub.consent", "hub.identity", "hub.plans", "hub.notify")
OUTER = (
    "hub.store",
    "hub.log",
    "hub.ingest",
    "hub.adapters",
    "hub.projections",
    "hub.service_layer",
    "hub.queries",
    "hub.api",
    "hub.web",
    "hub.auth",
    "hub.bootstrap",
    "hub.cli",
    "hub.demo",
    "hub.settings",
)
"""Parts of the hub the domain must not import: adapters, stores, logs, entrypoints."""
IO_FRAMEWORKS = (
    "sqlite3",
    "asyncpg",
    "psycopg",
    "sqlalchemy",
    "alembic",
    "aiokafka",
    "faststream",
    "fastapi",
    "starlette",
    "httpx",
    "uvicorn",
    "jinja2",
)


SQL_DRIVERS = ("sqlite3", "asyncpg", "psycopg", "sqlalchemy", "alembic")
NO_SQL = ("hub.auth",)
"""Parts that declare ports but hold no SQL: no store, no SQL driver, no SQL statement."""
_SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b",
    re.IGNORECASE | re.DOTALL,
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(HUB.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], module: str, is_package: bool) -> Iterator[str]:
    for node in body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[: len(package) - node.level + 1]
                yield ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.module
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from _imports(node.body, module, is_package)
            yield from _imports(node.orelse, module, is_package)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _imports(block, module, is_package)
            for handler in node.handlers:
                yield from _imports(handler.body, module, is_package)


def module_imports() -> dict[str, set[str]]:
    """Every module of `hub` and the modules it imports when it is imported."""
    out: dict[str, set[str]] = {}
    for path in sorted(HUB.rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out[name] = set(_imports(tree.body, name, path.name == "__init__.py"))
    return out


def part_of(module: str) -> str:
    """The top-level part of `hub` a module belongs to (`hub.store.sqlite` -> `hub.store`)."""
    return ".".join(module.split(".")[:2])


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_walk_sees_every_part_and_skips_type_checking_imports() -> None:
    imports = module_imports()
    assert {"hub.consent.crypto", "hub.identity.person_index", "hub.store.person_index"} <= set(
        imports
    )
    assert "hub.store.base" in imports["hub.store.person_index"]
    # bootstrap names its ports' types under TYPE_CHECKING only
    assert not any(i.startswith("hub.service_layer") for i in imports["hub.bootstrap"])


def test_the_domain_imports_no_adapter_store_log_or_io_framework() -> None:
    wrong = sorted(
        f"{module} imports {imported}"
        for module, imported_set in module_imports().items()
        if within(module, DOMAIN)
        for imported in imported_set
        if within(imported, OUTER) or within(imported, IO_FRAMEWORKS)
    )
    assert wrong == []


def test_no_two_parts_of_the_hub_import_each_other_round_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for module, imported_set in module_imports().items():
        graph.setdefault(part_of(module), set())
        for imported in imported_set:
            if imported.split(".")[0] == "hub" and part_of(imported) != part_of(module):
                graph[part_of(module)].add(part_of(imported))

    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert [" -> ".join(c) for c in cycles] == []


def _strings(tree: ast.AST) -> Iterator[str]:
    """Every string literal of a module but docstrings (f-strings' constant parts too)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield node.value


def test_the_sql_check_sees_sql_in_a_string_and_not_in_prose() -> None:
    tree = ast.parse(
        'def f():\n    """Select the keys from the store; update it."""\n'
        '    return "SELECT key_id FROM api_key WHERE name = ?"\n'
    )
    assert [s for s in _strings(tree) if _SQL.search(s)] == [
        "SELECT key_id FROM api_key WHERE name = ?"
    ]
    path = HUB / "store" / "api_keys.py"
    found = [s for s in _strings(ast.parse(path.read_text(encoding="utf-8"))) if _SQL.search(s)]
    assert any("INSERT INTO api_key" in s for s in found)


def test_auth_holds_no_sql_and_imports_no_store() -> None:
    wrong = sorted(
        f"{module} imports {imported}"
        for module, imported_set in module_imports().items()
        if within(module, NO_SQL)
        for imported in imported_set
        if within(imported, ("hub.store", "hub.log")) or within(imported, SQL_DRIVERS)
    )
    assert wrong == []
    statements = sorted(
        f"{path.relative_to(HUB.parent)}: {text[:60]!r}"
        for path in sorted(HUB.rglob("*.py"))
        if within(module_name(path), NO_SQL)
        for text in _strings(ast.parse(path.read_text(encoding="utf-8")))
        if _SQL.search(text)
    )
    assert statements == []
