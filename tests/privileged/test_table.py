"""The mount table against the kernel: findmnt (libmount) and statmount agree with our mountinfo parse.

Each test builds a namespace full of awkward mount point names and sources (spaces, tabs, newlines,
backslashes, non-ASCII, non-UTF-8, control characters), stacked mounts, binds and every kind of
propagation, inside a private mount namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from mountkit import _sys
from mountkit.errors import UnsupportedError
from mountkit.flags import MS
from mountkit.table import MountInfo, MountTable, find_mount
from tests.support.kernelskips import NO_STATMOUNT

pytestmark = pytest.mark.privileged

NAMES = [
    b"sp ace",
    b"ta\tb",
    b"new\nline",
    b"back\\slash",
    b"\\040literal",
    "ünï cödé".encode(),
    b"bad\xff\xfe",
    b'quo"te',
    b"ctl\x01\x7f",
    b"-",
    b"- x -",
    b"comma,s",
]

FINDMNT_COLUMNS = (
    "ID,PARENT,MAJ:MIN,FSROOT,TARGET,FSTYPE,SOURCE,VFS-OPTIONS,FS-OPTIONS,PROPAGATION,OPT-FIELDS"
)


def _mkdir(*parts: bytes) -> bytes:
    path = os.path.join(*parts)
    os.makedirs(path, exist_ok=True)
    return path


def _populate(scratch: str) -> dict[str, str]:
    """Awkward mounts under ``scratch``; the paths the tests look at, by role."""
    s = os.fsencode(scratch)
    flags = [0, MS.NOSUID | MS.NODEV, MS.NOEXEC | MS.NOATIME, MS.RDONLY, MS.STRICTATIME | MS.NODIRATIME]
    for i, name in enumerate(NAMES):
        _sys.mount(b"src " + name, _mkdir(s, name), "tmpfs", flags[i % len(flags)], "size=1m")
    _sys.mount("tmpfs", _mkdir(s, b"sync"), "tmpfs", MS.SYNCHRONOUS | MS.DIRSYNC | MS.LAZYTIME, "mode=700")
    # a read-only bind of a subdirectory of an awkward mount, twice (refs)
    sub = _mkdir(s, NAMES[0], b"sub dir")
    for target in (b"bind one", b"bind two"):
        _sys.mount(sub, _mkdir(s, target), None, MS.BIND, None)
    _sys.mount(None, os.path.join(s, b"bind two"), None, MS.REMOUNT | MS.BIND | MS.RDONLY, None)
    # a stack of two mounts at one point
    _sys.mount("lower", _mkdir(s, b"stack"), "tmpfs", 0, None)
    _sys.mount("upper", os.path.join(s, b"stack"), "tmpfs", 0, None)
    # a mount shadowed by a later mount over its parent directory
    _sys.mount("shadowed", _mkdir(s, b"shadow", b"inner"), "tmpfs", 0, None)
    _sys.mount("cover", os.path.join(s, b"shadow"), "tmpfs", 0, None)
    # propagation: shared peers, a slave (master:N), a slave of a slave's peer group, unbindable
    shared = _mkdir(s, b"shared")
    _sys.mount("peers", shared, "tmpfs", 0, None)
    _sys.mount(None, shared, None, MS.SHARED, None)
    _sys.mount(shared, _mkdir(s, b"peer"), None, MS.BIND, None)
    _sys.mount(shared, _mkdir(s, b"slave"), None, MS.BIND, None)
    _sys.mount(None, os.path.join(s, b"slave"), None, MS.SLAVE, None)
    _sys.mount(None, os.path.join(s, b"slave"), None, MS.SHARED, None)
    _sys.mount(os.path.join(s, b"slave"), _mkdir(s, b"slave2"), None, MS.BIND, None)
    _sys.mount(None, os.path.join(s, b"slave2"), None, MS.SLAVE, None)
    _sys.mount("unbind", _mkdir(s, b"unbindable"), "tmpfs", 0, None)
    _sys.mount(None, os.path.join(s, b"unbindable"), None, MS.UNBINDABLE, None)
    os.symlink(os.path.join(s, b"stack"), os.path.join(s, b"link"))
    return {
        role: os.path.join(scratch, role)
        for role in ("bind one", "bind two", "stack", "shadow", "shadow/inner", "link", "sp ace")
    }


def _findmnt_view(e: MountInfo) -> dict[str, Any]:
    """What findmnt -J shows for an entry: libmount unescapes; PROPAGATION is
    shared|private[,slave][,unbindable]."""
    fields = e.optional_fields
    words = ["shared" if any(f.startswith("shared:") for f in fields) else "private"]
    if any(f.startswith("master:") for f in fields):
        words.append("slave")
    if "unbindable" in fields:
        words.append("unbindable")
    return {
        "id": e.mount_id,
        "parent": e.parent_id,
        "maj:min": f"{e.major}:{e.minor}",
        "fsroot": e.root,
        "target": e.mount_point,
        "fstype": e.fs_type,
        "source": e.source,
        "vfs-options": ",".join(e.options),
        "fs-options": ",".join(e.super_options),
        "propagation": ",".join(words),
        "opt-fields": " ".join(fields) or None,
    }


def _against_findmnt(scratch: str) -> tuple[list[MountInfo], bytes]:
    _populate(scratch)
    table = list(MountTable.read())
    out = subprocess.run(
        ["findmnt", "-J", "--list", "--kernel", "--nofsroot", "-o", FINDMNT_COLUMNS],
        check=True,
        capture_output=True,
    ).stdout
    return table, out


@pytest.mark.skipif(shutil.which("findmnt") is None, reason="needs util-linux findmnt")
def test_table_agrees_with_findmnt_entry_for_entry(in_ns) -> None:  # type: ignore[no-untyped-def]
    table, out = in_ns(_against_findmnt)
    # findmnt writes names as raw bytes (non-UTF-8 too) with JSON escapes for control characters
    theirs = json.loads(out.decode("utf-8", "surrogateescape"))["filesystems"]
    assert len(table) == len(theirs) > len(NAMES)
    for ours, their in zip(table, theirs, strict=True):
        assert _findmnt_view(ours) == their
    assert {os.fsencode(e.mount_point).rsplit(b"/", 1)[-1] for e in table} >= set(NAMES)


def _both_backends(scratch: str) -> tuple[list[MountInfo], list[MountInfo]] | None:
    _populate(scratch)
    try:
        by_statmount = list(MountTable.read(backend="statmount"))
    except UnsupportedError:
        return None
    return list(MountTable.read()), by_statmount


def test_statmount_backend_agrees_with_mountinfo(in_ns) -> None:  # type: ignore[no-untyped-def]
    result = in_ns(_both_backends)
    if result is None:
        pytest.skip(NO_STATMOUNT)
    mountinfo, statmount = result
    assert len(mountinfo) > len(NAMES)
    for a, b in zip(mountinfo, statmount, strict=True):
        assert a == b


def _threads_and_vanished(scratch: str) -> tuple[list[MountInfo], list[MountInfo], list[MountInfo]] | None:
    """2,100 binds (enough for two threads), a third of them unmounted between listmount and statmount."""
    if not _sys.supported("statmount"):
        return None
    staging = _mkdir(os.fsencode(scratch), b"staging")
    _sys.mount("tmpfs", staging, "tmpfs", 0, "size=1m")
    targets = [_mkdir(os.fsencode(scratch), b"t%d" % i) for i in range(2100)]
    for target in targets:
        _sys.mount(staging, target, None, MS.BIND, None)
    ids = _sys.listmount()
    for target in targets[::3]:  # in both halves of the ids: each thread skips its own
        _sys.umount2(target)
    by_ids = list(MountTable._of(_sys.statmount_table(ids, threads=2)))
    return list(MountTable.read()), by_ids, list(MountTable.read(backend="statmount", threads=4))


def test_statmount_threads_skip_vanished_mounts_and_keep_kernel_order(in_ns) -> None:  # type: ignore[no-untyped-def]
    result = in_ns(_threads_and_vanished)
    if result is None:
        pytest.skip(NO_STATMOUNT)
    mountinfo, by_ids, threaded = result
    assert len(mountinfo) > 1400
    assert by_ids == mountinfo
    assert threaded == mountinfo


def _lookups(scratch: str) -> dict[str, Any]:
    paths = _populate(scratch)
    table = MountTable.read()
    top = table.find(scratch)
    assert top is not None
    return {
        "stack": [e.source for e in table.find_all(paths["stack"])],
        "stack_top": find_mount(paths["stack"]),
        "stack_top_table": table.find(paths["stack"]),
        "refs_one": table.refs(paths["bind one"]),
        "refs_two": table.refs(paths["bind two"]),
        "bind_two": table.find(paths["bind two"]),
        "children": sorted(e.mount_point for e in table.children(top)),
        "under_space": [e.mount_point for e in table.under(paths["sp ace"])],
        "shadowed": find_mount(paths["shadow/inner"]),
        "shadowed_table": table.find(paths["shadow/inner"]),
        "link": find_mount(paths["link"]),
        "awkward": [(find_mount(e.mount_point), e) for e in table.under(scratch)],
        "under_scratch": len(table.under(scratch)),
    }


def test_lookups_on_stacked_bind_and_shadowed_mounts(in_ns) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_lookups)
    assert r["stack"] == ["lower", "upper"]
    assert r["stack_top"] == r["stack_top_table"] and r["stack_top"].source == "upper"
    assert [os.path.basename(p) for p in r["refs_one"]] == ["bind two"]
    assert [os.path.basename(p) for p in r["refs_two"]] == ["bind one"]
    assert r["bind_two"].root == "/sub dir" and r["bind_two"].readonly
    names = {os.fsencode(os.path.basename(p)) for p in r["children"]}
    assert names >= set(NAMES) | {b"stack", b"shadow", b"shared", b"bind one"}
    assert b"inner" in names and b"sub dir" not in names  # the shadowed mount still hangs off scratch
    assert [os.path.basename(p) for p in r["under_space"]] == ["sp ace"]
    # a shadowed mount is not visible at its path: find_mount (statx) says none, the table lists it
    assert r["shadowed"] is None
    assert r["shadowed_table"] is not None and r["shadowed_table"].source == "shadowed"
    assert r["link"] is None  # a symlink to a mount point is not one
    assert len(r["awkward"]) == r["under_scratch"]
    for found, entry in r["awkward"]:
        if entry.mount_point.endswith(("/stack", "/shadow")) and entry.source in ("lower", "shadowed"):
            continue  # not the top of its stack
        if entry.source == "shadowed":
            assert found is None  # hidden under "cover"
            continue
        assert found == entry


def _by_device(scratch: str) -> list[tuple[tuple[int, int], list[MountInfo], list[MountInfo]]] | None:
    """Each device of the awkward namespace: its mounts by read_dev, and picked from the mountinfo table."""
    if not _sys.supported("statmount"):
        return None
    _populate(scratch)
    table = list(MountTable.read())
    devices = {(e.major, e.minor) for e in table}
    try:
        return [
            (dev, list(MountTable.read_dev(*dev)), [e for e in table if (e.major, e.minor) == dev])
            for dev in sorted(devices)
        ]
    except UnsupportedError:
        return None


def test_read_dev_is_the_mountinfo_table_picked_by_device(in_ns) -> None:  # type: ignore[no-untyped-def]
    result = in_ns(_by_device)
    if result is None:
        pytest.skip(NO_STATMOUNT)
    assert len(result) > len(NAMES)  # every awkward tmpfs is a device of its own
    for dev, picked, expected in result:
        assert expected, dev
        assert picked == expected, dev
    assert any(len(expected) > 1 for _dev, _picked, expected in result)  # binds share a device
