"""The package's shape: its modules import one another without a circle; every public annotation resolves."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

import engagelab_sms_async

PACKAGE = Path(engagelab_sms_async.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Which of the package's modules each one imports: at load, inside functions, or for a type checker
    alone (a circle through any of them is one a reader must hold in mind)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{node.module}" if node.module else anchor
                submodules = [
                    f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules
                ]
                targets = submodules or [base]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_package_imports_without_a_circle() -> None:
    graph = import_graph()
    assert len(graph) > 40 and "engagelab_sms_async._errors" in graph["engagelab_sms_async._report"]
    assert circles(graph) == []


def test_the_circle_finder_finds_one() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


@pytest.mark.parametrize("name", engagelab_sms_async.__all__)
def test_every_public_class_and_its_constructor_have_annotations_that_resolve(name: str) -> None:
    value = getattr(engagelab_sms_async, name)
    if not inspect.isclass(value):
        return
    typing.get_type_hints(value)
    if "__init__" in vars(value):
        typing.get_type_hints(value.__init__)
