"""The package's shape: layers respected, no import cycle, evaluation on public names only.

The layer contract itself lives in pyproject.toml (``[tool.importlinter]``) and is checked by
``lint-imports`` in ``make test``; these tests read the same import graph (grimp, which
import-linter uses) for what a layer contract does not say.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import ClassVar

import grimp
import pytest
from importlinter.cli import lint_imports

PACKAGE = Path(__file__).resolve().parents[1] / "assistant"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("assistant", cache_dir=None, exclude_type_checking_imports=True)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph.find_modules_directly_imported_by(module)):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle(graph: grimp.ImportGraph) -> None:
    # Package __init__ modules hold docstrings only, so they take part in no cycle.
    assert _cycles(graph) == []


def test_layer_contract_holds() -> None:
    assert lint_imports(config_filename=str(PACKAGE.parent / "pyproject.toml")) == 0


def test_nothing_imports_the_app_or_the_cli(graph: grimp.ImportGraph) -> None:
    for top in ("assistant.app", "assistant.cli"):
        importers = {
            m
            for m in graph.find_downstream_modules(top, as_package=top != "assistant.cli")
            if not m.startswith(top) and m != "assistant.__main__"
        }
        assert importers == set(), f"{top} is imported by {importers}"


def test_evaluation_uses_public_names_only() -> None:
    offenders = []
    for path in (PACKAGE / "evaluation").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("assistant."):
                if node.module.startswith("assistant.evaluation"):
                    continue
                offenders += [
                    f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")
                ]
    assert offenders == []


def test_a_cycle_is_detected() -> None:
    """The cycle finder itself finds a cycle (so an empty result above means something)."""

    class Fake:
        modules: ClassVar[set[str]] = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(module: str) -> set[str]:
            return {"a": {"b"}, "b": {"a"}, "c": set()}[module]

    assert _cycles(Fake()) == [["a", "b"]]  # type: ignore[arg-type]


def test_every_word_list_says_where_it_comes_from_and_what_it_does() -> None:
    """data/lexicon.toml: each list names its reader, its source and its measured effect."""
    import tomllib
    from importlib import resources

    lexicon = tomllib.loads(resources.files("assistant.data").joinpath("lexicon.toml").read_text("utf-8"))
    assert lexicon
    for name, entry in lexicon.items():
        assert {"used_by", "source", "effect"} <= entry.keys(), name
        assert "retirée" in entry["effect"] and not entry["effect"].startswith("EFFECT"), name
        words = entry.get("words") or " ".join(entry.get("classes", []))
        assert words.split(), name
