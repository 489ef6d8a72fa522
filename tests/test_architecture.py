"""The package's modules import each other without cycles, counting every import
statement (at module level, inside functions and under ``TYPE_CHECKING``), so
that no function-level import hides a cycle."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "streamgmm"


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package modules that ``path`` imports anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            relative = node.level == 1
            if not relative and not (node.module or "").startswith("streamgmm"):
                continue
            parts = (node.module or "").split(".")
            if not relative:
                parts = parts[1:]
            if parts and parts[0]:
                found.add(parts[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "streamgmm" and len(parts) > 1:
                    found.add(parts[1])
    return found & modules


def import_graph(package: Path) -> dict[str, set[str]]:
    modules = {path.stem for path in package.glob("*.py")}
    return {stem: imported_modules(package / f"{stem}.py", modules) for stem in modules}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (or a module importing
    itself), by Tarjan's algorithm."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_the_package():
    graph = import_graph(PACKAGE)
    assert {"engine", "mixture", "io", "state"} <= set(graph)
    assert cycles(graph) == []


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder(graph, expected):
    assert cycles(graph) == expected


def test_function_level_imports_count(tmp_path):
    (tmp_path / "first.py").write_text("from .second import f\n")
    (tmp_path / "second.py").write_text("def f():\n    from .first import g\n")
    assert cycles(import_graph(tmp_path)) == [["first", "second"]]


KERNELS = PACKAGE / "kernels"


def test_kernel_modules_are_a_page_or_two():
    lengths = {path.name: len(path.read_text().splitlines()) for path in KERNELS.glob("*.py")}
    assert lengths and max(lengths.values()) <= 400, lengths


def test_no_kernel_takes_more_than_eight_arguments():
    """Kernels take records, not long argument lists (issue 26)."""
    checked = 0
    for path in KERNELS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            decorators = [ast.unparse(decorator) for decorator in
                          getattr(node, "decorator_list", ())]
            if isinstance(node, ast.FunctionDef) and any(
                    name in ("kernel", "shared", "part") or name.startswith("njit")
                    for name in decorators):
                checked += 1
                assert len(node.args.args) <= 8, f"{path.name}:{node.name}"
    assert checked > 30


def test_no_kernel_result_is_read_by_position():
    """Callers read kernel results by field name: no ``result[4:8]`` on a kernel's
    outcome anywhere in the package."""
    import re

    by_position = re.compile(r"\b(outcome|operands)\[")
    for path in PACKAGE.rglob("*.py"):
        found = by_position.findall(path.read_text())
        assert not found, f"{path.relative_to(PACKAGE)} indexes {found}"


# ------------------------------------------------------------ the public API
API = PACKAGE.parent / "docs" / "api.md"
KERNEL_REWRITE: set[str] = set()
"""Top-level modules left out (none). The kernels/ subpackage of issue 26 is not
walked here: nothing in it is public API."""


def package_modules() -> list[str]:
    return sorted(
        "streamgmm" if path.stem == "__init__" else f"streamgmm.{path.stem}"
        for path in PACKAGE.glob("*.py")
        if path.stem not in KERNEL_REWRITE
    )


def documented_names() -> set[str]:
    """Every ``module.name`` that docs/api.md has a section for."""
    import re

    return set(re.findall(r"^### `(streamgmm(?:\.\w+)*\.\w+)`$", API.read_text(), re.M))


def test_every_module_declares_its_public_names_and_they_are_what_the_docs_document():
    import importlib

    public = set()
    for name in package_modules():
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} has no __all__"
        for item in module.__all__:
            assert hasattr(module, item), f"{name}.__all__ names {item!r}, which it lacks"
            public.add(f"{name}.{item}")
    assert public == documented_names()


def test_the_reference_documents_every_module_with_public_names_in_order():
    import importlib
    import sys

    sys.path.insert(0, str(API.parent))
    try:
        from make_api import MODULES
    finally:
        sys.path.pop(0)
    with_names = [name for name in package_modules() if importlib.import_module(name).__all__]
    assert sorted(MODULES) == with_names


def test_no_function_or_class_of_the_package_is_used_only_outside_it():
    """A top-level function or class is used by the package's own code or is
    public (``__all__``): nothing in the package exists for benchmarks or tests
    alone (they keep such code themselves)."""
    import importlib

    used, defined = set(), {}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined[(path.stem, node.name)] = path
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.ImportFrom):
                used.update(alias.name for alias in node.names)
    commands = {name for module, name in defined if module == "cli"} & {
        command.callback.__name__
        for command in importlib.import_module("streamgmm.cli").main.commands.values()
    }
    unused = {
        (module, name) for module, name in defined
        if name not in used and not name.startswith("__") and name not in commands
        and name not in getattr(importlib.import_module(
            "streamgmm" if module == "__init__" else f"streamgmm.{module}"), "__all__", ())
    }
    assert not unused, sorted(unused)


def _compiled_functions() -> dict[str, tuple[str, set[str]]]:
    """Every compiled function of kernels/: its name, decorator and the names it calls."""
    functions = {}
    for path in KERNELS.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            decorators = [ast.unparse(decorator) for decorator in node.decorator_list] if (
                isinstance(node, ast.FunctionDef)) else []
            kinds = [name for name in ("kernel", "shared", "part") if name in decorators]
            if kinds:
                calls = {call.func.id if isinstance(call.func, ast.Name) else call.func.attr
                         for call in ast.walk(node) if isinstance(call, ast.Call)
                         and isinstance(call.func, ast.Name | ast.Attribute)}
                functions[node.name] = (kinds[0], calls)
    return functions


def test_a_kernel_with_one_compiled_caller_is_inlined_into_it():
    """numba compiles each ``kernel`` into a library of its own, then links and
    optimises it again inside every compiled caller; a function with a single
    compiled caller pays that twice for nothing, so it is a ``part``, inlined
    into its caller (issue 26's compile budget). A function's compiled callers
    are the kernels that call it, directly or through parts. Entries (called
    from Python) are ``kernel``s, compiled with the wrappers Python calls them
    through; every other function several kernels call is ``shared``, compiled
    without them."""
    import re

    entries = set(re.findall(r'Tiered\("\w+", "(\w+)"\)', (KERNELS / "entries.py").read_text()))
    functions = _compiled_functions()
    callers = {name: {caller for caller, (_, calls) in functions.items() if name in calls}
               for name in functions}

    def compiled_callers(name: str, seen: frozenset = frozenset()) -> set[str]:
        found = set()
        for caller in callers[name] - seen:
            found |= ({caller} if functions[caller][0] != "part"
                      else compiled_callers(caller, seen | {name}))
        return found

    for name, (decorator, _) in functions.items():
        if decorator == "part":
            assert len(compiled_callers(name)) == 1 and name not in entries, (
                name, compiled_callers(name))
        elif decorator == "shared":
            assert len(compiled_callers(name)) > 1 and name not in entries, (
                name, compiled_callers(name))
        else:
            assert name in entries, name
    assert sum(decorator == "part" for decorator, _ in functions.values()) > 30
