"""mountkit's modules import one another without a circle (issue 20), TYPE_CHECKING and in-function
imports included."""

from __future__ import annotations

import pathlib

import mountkit
from tests.support.importgraph import find_cycle, import_graph

PACKAGE = pathlib.Path(mountkit.__file__).parent


def test_the_graph_sees_imports_of_every_kind() -> None:
    graph = import_graph(PACKAGE)
    assert "mountkit.nfsroute" in graph["mountkit.nfs"]  # in a function
    assert "mountkit.table" in graph["mountkit.rules"]  # under TYPE_CHECKING
    assert "mountkit.nfsaddr" in graph["mountkit.nfsroute"]  # relative
    assert "mountkit._c.syscalls" in graph["mountkit._sys"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_mountkit_has_no_import_cycle() -> None:
    assert find_cycle(import_graph(PACKAGE)) is None
