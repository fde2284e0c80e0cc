"""The package's layers, held against its imports: an import only ever points down.

Layers, top to bottom: entry points, use cases (``application``), services, adapters,
formats (``codec``, ``catalog``, ``config``), the pure domain. A module may import its
own layer or any layer below it. A service's process entry (``__main__``, the module it
runs) wires settings to the service and belongs to the entry-point layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "ecoshare"

LAYER_OF_PACKAGE = {
    "errors": 0,
    "_native": 1,
    "domain": 1,
    "codec": 2,
    "catalog": 2,
    "config": 2,
    "adapters": 3,
    "governance": 4,
    "registry": 4,
    "webhooks": 4,
    "health": 4,
    "sdk": 4,
    "application": 5,
    "cli": 6,
    "api": 6,
    "demo": 6,
    "embedded": 6,
    "terminal": 6,
}
ENTRY_POINT = 6
# Process entries inside a service package: they read settings and start the service.
PROCESS_ENTRIES = {
    "ecoshare.governance.__main__",
    "ecoshare.registry.__main__",
    "ecoshare.api.__main__",
}
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "ecoshare":
        return None
    if module in PROCESS_ENTRIES:
        return ENTRY_POINT
    if len(parts) == 1:
        return 0  # the package itself: its version
    return LAYER_OF_PACKAGE.get(parts[1])


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    packages = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in SOURCES}
    assert packages - {"__init__"} <= set(LAYER_OF_PACKAGE), packages - set(LAYER_OF_PACKAGE)


def test_no_import_points_up_a_layer() -> None:
    upward = []
    for path in SOURCES:
        module = _module_name(path)
        own = _layer(module)
        assert own is not None, module
        for line, imported in _imports(path):
            target = _layer(imported)
            if target is not None and target > own:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {imported}")
    assert upward == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_source_file_is_over_500_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, ``from ecoshare import api`` counted as ecoshare.api."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


# A command that runs another entry point's process may import that process entry,
# as ``ecoshare worker`` runs ``ecoshare.governance.__main__``: ``ecoshare api`` runs
# the API server in its own process, and imports nothing else of the API.
RUNS_THE_PROCESS = {("ecoshare.cli.status", "ecoshare.api.__main__")}


@pytest.mark.parametrize(
    ("importer", "imported"),
    [("ecoshare.cli", "ecoshare.api"), ("ecoshare.api", "ecoshare.cli")],
    ids=["cli-imports-no-api", "api-imports-no-cli"],
)
def test_the_cli_and_the_api_never_import_each_other(importer: str, imported: str) -> None:
    """Entry points share code through the layers below them, never through each other."""
    crossing = []
    for path in SOURCES:
        module = _module_name(path)
        if not _in_package(module, importer):
            continue
        for line, name in _imported_names(path):
            runs_the_process = any(
                module == runner and _in_package(name, entry) for runner, entry in RUNS_THE_PROCESS
            )
            if _in_package(name, imported) and not runs_the_process:
                crossing.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert crossing == []
