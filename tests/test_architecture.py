"""The package layout as DESIGN.md draws it, held by the code: no import cycle, and imports only
run ``api`` -> ``transformer`` -> ``cache``.

Every ``import``/``from ... import`` statement of our modules is read with ``ast`` (also the ones
inside functions, which a runtime check would miss), so a cycle hidden behind a deferred import
fails here too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "transformer", "cache")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts and "versions" in path.parts:
                continue  # alembic revisions are loaded by alembic, not imported
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that an imported dotted name lands in (``a.b.c`` may be a name in a.b)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    yield target
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = _resolve(f"{base}.{alias.name}") or _resolve(base)
                if target:
                    yield target


GRAPH = {module: sorted(set(_imports(module, path)) - {module})
         for module, path in MODULES.items()}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_our_imports() -> None:
    """A guard on the guard: the graph holds edges we know exist."""
    assert "cache" in GRAPH["transformer.origin.app"]
    assert "transformer.originals.protocol" in GRAPH["transformer.originals.s3"]
    assert "api.serving.v1_app" in GRAPH["api.serving.app"]  # a deferred import inside a function


def test_cycle_detection_finds_a_cycle() -> None:
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert _cycles({"a": ["b"], "b": []}) == []


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


LIBRARY_PARTS = ("transformer.origin", "transformer.originals", "transformer.renditions")


def _is_library(module: str) -> bool:
    return module.startswith("transformer") and not module.startswith(LIBRARY_PARTS)


@pytest.mark.parametrize(("importer", "forbidden"), [
    ("cache", ("api", "transformer")),
    ("transformer", ("api",)),
])
def test_import_direction(importer: str, forbidden: tuple[str, ...]) -> None:
    wrong = [(module, target) for module, targets in GRAPH.items()
             if module.split(".")[0] == importer
             for target in targets if target.split(".")[0] in forbidden]
    assert wrong == []


def test_the_library_imports_nothing_of_the_server() -> None:
    """The embedded library: no origin server, no stores, no caches."""
    wrong = [(module, target) for module, targets in GRAPH.items() if _is_library(module)
             for target in targets
             if target.startswith(LIBRARY_PARTS) or target.split(".")[0] == "cache"]
    assert wrong == []


def test_outside_the_library_only_its_public_surface_is_used() -> None:
    """``transformer/__init__.py`` is the library's surface: nobody reaches into ``_private``."""
    wrong = [(module, target) for module, targets in GRAPH.items()
             if not _is_library(module)
             for target in targets if _is_library(target) and target != "transformer"]
    assert wrong == []


SERVER_DEPENDENCIES = ("starlette", "uvicorn", "aiobotocore", "botocore", "aiohttp",
                       "prometheus_client", "sqlalchemy", "httpx", "aiofiles", "cachetools",
                       "orjson", "api", "cache", "transformer.origin", "transformer.originals",
                       "transformer.renditions")


def test_import_transformer_loads_no_server_dependency() -> None:
    code = ("import sys, transformer\n"
            "for name in transformer.__all__: getattr(transformer, name)  # load it all\n"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assert "transformer" in loaded and "pyvips" in loaded  # the check sees what it loads
    heavy = [m for m in loaded if any(m == d or m.startswith(d + ".") for d in SERVER_DEPENDENCIES)]
    assert heavy == []


SUPERVISOR_MUST_NOT_LOAD = ("pyvips", "numpy", "PIL", "simplejpeg", "sqlalchemy", "httpx", "rich",
                            "prometheus_client", "aiobotocore", "mcp", "transformer", "cache")


def test_the_serve_supervisor_stays_light() -> None:
    """``imgpro serve --workers N`` keeps one supervisor process up beside the workers: what
    it imports (the serve parser, start-up, settings, the protocol class) must not drag in
    libvips, the database layer or the clients, or every node pays their memory once more."""
    code = ("import sys; from api import cli; cli.build_parser(serve_only=True); "
            "import api.serving.server; from api.settings import Settings; Settings(); "
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assert "uvicorn" in loaded and "api.serving.http_protocol" in loaded
    heavy = [m for m in loaded
             if any(m == d or m.startswith(d + ".") for d in SUPERVISOR_MUST_NOT_LOAD)]
    assert heavy == []
    everything = code.replace("serve_only=True", "serve_only=False")
    loaded = subprocess.run([sys.executable, "-c", everything], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assert "sqlalchemy" in loaded  # the full parser does import them: the check can fail
