"""csi's layering (issue 20): no circle of imports, and the node and controller sides apart.

The node side (``csi.node``) and the controller side (``csi.controller``) share only modules that
import neither (``csi.filestore``, ``csi.volume_id``, ``csi.validation``, ``csi.locks``, ...); only the
commands that start both (``csi.main``, ``csi.demo``) import both sides.
"""

from __future__ import annotations

import pathlib

import pytest

import csi
from tests.support.importgraph import find_cycle, import_graph

PACKAGE = pathlib.Path(csi.__file__).parent
SIDES = ("csi.node", "csi.controller")


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _side(module: str) -> str | None:
    return next((side for side in SIDES if module == side or module.startswith(side + ".")), None)


def test_csi_has_no_import_cycle() -> None:
    assert find_cycle(import_graph(PACKAGE)) is None


@pytest.mark.parametrize("side", SIDES)
def test_one_side_never_imports_the_other(side: str) -> None:
    graph = import_graph(PACKAGE)
    modules = [m for m in graph if _side(m) == side]
    assert len(modules) > 3, modules  # the side's modules were found
    crossing = {m: sorted(r for r in _reach(graph, m) if _side(r) not in (None, side)) for m in modules}
    assert {m: r for m, r in crossing.items() if r} == {}


def test_shared_modules_import_neither_side() -> None:
    graph = import_graph(PACKAGE)
    both = {"csi.main", "csi.demo"}
    shared = [m for m in graph if _side(m) is None and m not in both]
    assert "csi.filestore" in shared and "csi.validation" in shared
    crossing = {m: sorted(r for r in _reach(graph, m) if _side(r)) for m in shared}
    assert {m: r for m, r in crossing.items() if r} == {}


def test_the_check_sees_a_crossing() -> None:
    graph = {
        "csi.node.a": {"csi.filestore"},
        "csi.filestore": {"csi.controller.b"},
        "csi.controller.b": set(),
    }
    assert _reach(graph, "csi.node.a") == {"csi.filestore", "csi.controller.b"}
    assert _side("csi.controller.b") == "csi.controller" and _side("csi.nodes") is None
