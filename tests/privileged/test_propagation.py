"""make_private/shared/slave/unbindable against the kernel, checked with findmnt's PROPAGATION column.

A differential test: util-linux's libmount reads the same namespace, so what findmnt says and what
mountkit's table says (and what each verb was asked to do) must agree after every step, through
mount_setattr and through the mount(2) MS_* fallback alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from mountkit import _sys
from mountkit.errors import MountError
from mountkit.mounter import Mounter
from mountkit.table import MountTable

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(shutil.which("findmnt") is None, reason="needs util-linux findmnt"),
]

Snapshot = dict[str, tuple[frozenset[str], frozenset[str], str]]


def _kinds(fields: tuple[str, ...]) -> frozenset[str]:
    """mountinfo's optional fields as findmnt's words (it adds "private" to whatever is not shared)."""
    kinds = {
        "shared" if f.startswith("shared:") else "slave" if f.startswith("master:") else f for f in fields
    }
    return frozenset(kinds & {"shared", "slave", "unbindable"})


def _snapshot(scratch: str, names: tuple[str, ...]) -> Snapshot:
    """path -> (findmnt's words, mountkit's words, mountkit's peer/master fields) for each name."""
    out = subprocess.run(
        ["findmnt", "-n", "-r", "-o", "TARGET,PROPAGATION", "-R", scratch],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    findmnt = dict(line.split(" ", 1) for line in out.splitlines())
    table = MountTable.read()
    snap: Snapshot = {}
    for name in names:
        path = os.path.join(scratch, name)
        entry = table.find(path)
        assert entry is not None, path
        snap[name] = (
            frozenset(findmnt[path].split(",")) - {"private"},
            _kinds(entry.optional_fields),
            " ".join(entry.optional_fields),
        )
    return snap


def _steps(scratch: str, legacy: bool) -> list[tuple[str, Snapshot]]:
    if legacy:
        _sys.mark_unsupported("mount_setattr")
    m = Mounter()
    a, sub, b = (os.path.join(scratch, n) for n in ("a", "a/sub", "b"))
    os.mkdir(a)
    m.mount("mk-a", a, "tmpfs")
    os.mkdir(sub)
    os.mkdir(b)
    m.mount("mk-sub", sub, "tmpfs")
    names: tuple[str, ...] = ("a", "a/sub")
    steps: list[tuple[str, Snapshot]] = [("start", _snapshot(scratch, names))]

    def step(label: str, fn: Any, *args: Any, **kw: Any) -> None:
        fn(*args, **kw)
        fn(*args, **kw)  # every verb again: idempotent, so nothing changes
        steps.append((label, _snapshot(scratch, names)))

    step("shared -R a", m.make_shared, a, recursive=True)
    m.bind(a, b)  # b joins a's peer group
    names = ("a", "a/sub", "b")
    steps.append(("bind a b", _snapshot(scratch, names)))
    step("slave b", m.make_slave, b)
    step("unbindable a/sub", m.make_unbindable, sub)
    step("shared b", m.make_shared, b)
    step("private -R a", m.make_private, a, recursive=True)
    step("slave a", m.make_slave, a)
    try:
        m.make_private(os.path.join(scratch, "plain"))
    except MountError as exc:
        steps.append((f"error {exc.errno} {exc.detail}", {}))
    return steps


@pytest.mark.parametrize("legacy", [False, True], ids=["mount_setattr", "ms-flags"])
def test_propagation_verbs_agree_with_findmnt(in_ns: Any, legacy: bool) -> None:
    steps = dict(in_ns(_steps, legacy))
    for label, snap in steps.items():
        for name, (findmnt, ours, _) in snap.items():
            assert findmnt == ours, f"after {label!r}, {name}: findmnt {set(findmnt)} vs mountkit {set(ours)}"
    words = {label: {name: set(v[0]) for name, v in snap.items()} for label, snap in steps.items()}
    assert words["start"] == {"a": set(), "a/sub": set()}
    assert words["shared -R a"] == {"a": {"shared"}, "a/sub": {"shared"}}
    assert words["bind a b"]["b"] == {"shared"}
    assert steps["bind a b"]["a"][2] == steps["bind a b"]["b"][2]  # one peer group
    assert steps["shared -R a"]["a"][2] != steps["shared -R a"]["a/sub"][2]  # each its own
    assert words["slave b"]["b"] == {"slave"}
    assert steps["slave b"]["b"][2] == "master:" + steps["slave b"]["a"][2].split(":")[1]
    assert words["unbindable a/sub"]["a/sub"] == {"unbindable"}
    assert words["shared b"]["b"] == {"shared", "slave"}
    # a private master has no slaves: b keeps its own peer group and loses its master
    assert words["private -R a"] == {"a": set(), "a/sub": set(), "b": {"shared"}}
    assert words["slave a"]["a"] == set()  # a private mount made slave stays private
    assert [label for label in steps if label.startswith("error")] == ["error 22 not a mount point"]


def _cli(scratch: str) -> dict[str, Any]:
    from mountkit.cli import main

    a, sub, copy, moved = (os.path.join(scratch, n) for n in ("a", "a/sub", "copy", "moved"))
    for d in (a, copy, moved):
        os.mkdir(d)
    codes = [main(["mount", "mk-a", a, "-t", "tmpfs"])]
    os.mkdir(sub)
    codes += [
        main(["mount", "mk-sub", sub, "-t", "tmpfs"]),
        main(["make-shared", a, "--recursive"]),
        main(["make-unbindable", sub]),
    ]
    shared = _snapshot(scratch, ("a", "a/sub"))
    codes += [
        main(["make-private", a, "--recursive"]),
        main(["rbind", a, copy, "--ro"]),
        main(["move", copy, moved]),
    ]
    tree = [(e.mount_point[len(scratch) :], e.readonly) for e in MountTable.read().under(scratch)][1:]
    codes.append(main(["umount", moved, "--recursive"]))
    left = [e.mount_point[len(scratch) :] for e in MountTable.read().under(scratch)][1:]
    return {
        "codes": codes,
        "shared": shared,
        "private": _snapshot(scratch, ("a", "a/sub")),
        "tree": tree,
        "left": left,
    }


def test_the_command_line_verbs(in_ns: Any) -> None:
    r = in_ns(_cli)
    assert r["codes"] == [0] * 8
    assert {name: set(v[0]) for name, v in r["shared"].items()} == {"a": {"shared"}, "a/sub": {"unbindable"}}
    assert {name: set(v[0]) for name, v in r["private"].items()} == {"a": set(), "a/sub": set()}
    assert r["tree"] == [("/a", False), ("/a/sub", False), ("/moved", True), ("/moved/sub", True)]
    assert r["left"] == ["/a", "/a/sub"]
