"""Mounter against the real kernel, each test inside its own private mount namespace."""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import select
import shutil
import signal
import subprocess
import time
from typing import Any
from unittest import mock

import pytest

from mountkit import _sys, probe
from mountkit.errors import MountError
from mountkit.flags import AT, AT_FDCWD, MOVE_MOUNT, MS, OPEN_TREE, STATX
from mountkit.mounter import Mounter, is_mountpoint
from mountkit.table import MountTable
from tests.support import hangfs
from tests.support.kernelskips import NO_MOVE_MOUNT_BENEATH

pytestmark = pytest.mark.privileged


def _dirs(scratch: str, *names: str) -> list[str]:
    paths = [os.path.join(scratch, n) for n in names]
    for p in paths:
        os.makedirs(p, exist_ok=True)
    return paths


def _err(fn: Any, *args: Any, **kw: Any) -> tuple[str, int | None, str]:
    try:
        fn(*args, **kw)
    except MountError as exc:
        return type(exc).__name__, exc.errno, str(exc)
    return "", None, ""


# --- mount ---------------------------------------------------------------------------------------


def _tmpfs(scratch: str) -> dict[str, Any]:
    m = Mounter()
    [t] = _dirs(scratch, "t")
    m.mount("mk-a", t, "tmpfs", ["size=1m", "nosuid"])
    m.mount("mk-a", t, "tmpfs", ["size=1m", "nosuid"])  # done already: no-op
    entries = MountTable.read().find_all(t)
    return {
        "stack": [(e.source, e.fs_type, "nosuid" in e.options) for e in entries],
        "other_source": _err(m.mount, "mk-b", t, "tmpfs"),
        "other_type": _err(m.mount, "mk-a", t, "ramfs"),
        "now_ro": _err(m.mount, "mk-a", t, "tmpfs", ["size=1m", "nosuid", "ro"]),
        "after": len(MountTable.read().find_all(t)),
    }


def test_tmpfs_mount_is_idempotent_and_reports_conflicts(in_ns) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_tmpfs)
    assert r["stack"] == [("mk-a", "tmpfs", True)]
    kind, err, text = r["other_source"]
    assert (kind, err) == ("MountConflictError", errno.EBUSY)
    assert "tmpfs 'mk-a'" in text and "'mk-b'" in text  # what is there and what was asked
    assert r["other_type"][0] == "MountConflictError" and "ramfs" in r["other_type"][2]
    assert r["now_ro"][:2] == ("MountConflictError", errno.EBUSY)
    assert "it is mounted read-write; asked for tmpfs 'mk-a' read-only" in r["now_ro"][2]
    assert r["after"] == 1


def _secret_never_in_errors(scratch: str) -> str:
    return _err(Mounter().mount, "x", os.path.join(scratch, "missing"), "tmpfs", (), ["size=SECRET1m"])[2]


def test_sensitive_options_stay_out_of_errors(in_ns) -> None:  # type: ignore[no-untyped-def]
    text = in_ns(_secret_never_in_errors)
    assert "ENOENT" in text and "SECRET" not in text


# --- bind ----------------------------------------------------------------------------------------


def _bind(scratch: str) -> dict[str, Any]:
    m = Mounter()
    src, other, tgt, tgt2 = _dirs(scratch, "src", "other", "tgt", "tgt2")
    with open(os.path.join(src, "f"), "w") as f:
        f.write("through the bind")
    m.bind(src, tgt)
    m.bind(src, tgt)  # same source, same state: no-op
    m.bind(src, tgt2)
    with open(os.path.join(tgt, "f")) as f:
        content = f.read()
    return {
        "content": content,
        "stack": len(MountTable.read().find_all(tgt)),
        "other_source": _err(m.bind, other, tgt),
        "now_ro": _err(m.bind, src, tgt, readonly=True),
        "refs": m.refs(tgt),
    }


def _refs(scratch: str, statmount: bool) -> dict[str, list[str]]:
    """refs of a bind, its source, a bind of a subdirectory and a plain directory, among 200 binds
    of another filesystem; with read_dev, or with statmount marked missing (the whole table)."""
    if not statmount:
        _sys.mark_unsupported("statmount")
    m = Mounter()
    src, other, a, b, sub_bind, plain = _dirs(scratch, "src", "other", "a", "b", "sub", "plain")
    m.mount("mk-refs", src, "tmpfs")
    m.mount("mk-other", other, "tmpfs")
    os.mkdir(os.path.join(src, "d"))
    for target in _dirs(scratch, *(f"o{i}" for i in range(200))):
        m.bind(other, target)
    m.bind(src, a)
    m.bind(src, b, readonly=True)
    m.bind(os.path.join(src, "d"), sub_bind)
    names = {"src": src, "a": a, "sub": sub_bind, "plain": plain, "o7": os.path.join(scratch, "o7")}
    if statmount:  # the whole table must not be read where read_dev can answer
        MountTable.read = _no_whole_table  # type: ignore[method-assign]
    return {k: sorted(os.path.basename(p) for p in m.refs(path)) for k, path in names.items() if k != "plain"}


def _no_whole_table(*args: Any, **kwargs: Any) -> MountTable:
    raise AssertionError("MountTable.read() called")


@pytest.mark.parametrize("statmount", [True, False], ids=["read_dev", "whole-table"])
def test_refs_finds_every_other_mount_of_the_same_root(in_ns, statmount: bool) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_refs, statmount)
    assert r["src"] == ["a", "b"] and r["a"] == ["b", "src"]
    assert r["sub"] == []  # another root of the same filesystem
    assert len(r["o7"]) == 200 and "o7" not in r["o7"] and "other" in r["o7"]


def _refs_plain(scratch: str) -> list[str]:
    return Mounter().refs(_dirs(scratch, "plain")[0])


def test_refs_of_a_directory_that_is_no_mount_point(in_ns) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_refs_plain) == []


def _refs_under_stack(scratch: str) -> tuple[list[str], list[str]] | None:
    """p holds, bottom to top, y:/r1, another tmpfs, y:/r2 (MOVE_MOUNT_BENEATH twice): the mounts of
    y alone cannot order that stack, so refs must start from the mount statx sees, y:/r2."""
    y, z, p, q, s = _dirs(scratch, "y", "z", "p", "q", "s")
    _sys.mount("mk-y", y, "tmpfs", 0, None)
    _sys.mount("mk-z", z, "tmpfs", 0, None)
    r1, r2 = _dirs(y, "r1", "r2")
    _sys.mount(r2, p, None, MS.BIND, None)
    _sys.mount(r2, q, None, MS.BIND, None)
    _sys.mount(r1, s, None, MS.BIND, None)
    for source in (r1, z):
        fd = _sys.open_tree(source, int(OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC))
        try:
            _sys.move_mount(fd, "", AT_FDCWD, p, int(MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.BENEATH))
        except MountError as exc:
            if exc.errno == errno.EINVAL:
                return None  # no MOVE_MOUNT_BENEATH (6.5+)
            raise
        finally:
            os.close(fd)
    return Mounter().refs(p), MountTable.read().refs(p)


def test_refs_starts_from_the_visible_mount_of_a_stack(in_ns) -> None:  # type: ignore[no-untyped-def]
    result = in_ns(_refs_under_stack)
    if result is None:
        pytest.skip(NO_MOVE_MOUNT_BENEATH)
    refs, whole = result
    assert [os.path.basename(p) for p in whole] == ["q"]
    assert refs == whole


def test_bind_is_idempotent_and_reports_conflicts(in_ns) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_bind)
    assert r["content"] == "through the bind" and r["stack"] == 1
    assert r["other_source"][:2] == ("MountConflictError", errno.EBUSY) and "/other" in r["other_source"][2]
    assert r["now_ro"][0] == "MountConflictError" and "read-only" in r["now_ro"][2]
    assert [p.rsplit("/", 1)[1] for p in r["refs"]] == ["tgt2"]


def _recursive(scratch: str) -> tuple[bool, bool, str]:
    m = Mounter()
    src, flat, deep = _dirs(scratch, "src", "flat", "deep")
    child = os.path.join(src, "child")
    os.mkdir(child)
    m.mount("mk-child", child, "tmpfs")
    with open(os.path.join(child, "f"), "w") as f:
        f.write("child mount")
    m.bind(src, flat)
    m.bind(src, deep, recursive=True)
    with open(os.path.join(deep, "child", "f")) as f:
        seen = f.read()
    return is_mountpoint(os.path.join(flat, "child")), is_mountpoint(os.path.join(deep, "child")), seen


def test_recursive_bind_shows_child_mounts(in_ns) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_recursive) == (False, True, "child mount")


def _hammer(tgt: str, bare_mnt_id: int, stop: int, out: int, seen: mmap.mmap) -> None:
    """In a second process: keep creating ``tgt/x``; count creations that went through a mount.

    ``seen`` (shared with the parent) gets a byte once an EROFS was met, so the binds go on until
    the race has really happened, however loaded the machine.
    """
    counts = {"writes": 0, "attempts": 0, "erofs": 0}
    probe = os.path.join(tgt, "x")
    while not select.select([stop], [], [], 0)[0]:
        counts["attempts"] += 1
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno == errno.EROFS:
                counts["erofs"] += 1
                seen[0] = 1
            continue
        try:  # the bare directory (between binds) is fine; anything else is a writable bind
            counts["writes"] += _sys.statx("", AT.EMPTY_PATH, STATX.MNT_ID, dfd=fd).mnt_id != bare_mnt_id
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    os.write(out, json.dumps(counts).encode())


def _hammer_ro_binds(scratch: str, legacy: bool) -> dict[str, int]:
    """Repeated ro binds for a second while another process keeps trying to write through the target."""
    if legacy:
        _sys.mark_unsupported("open_tree")
    m = Mounter()
    src, tgt = _dirs(scratch, "src", "tgt")
    bare = _sys.statx(tgt, 0, STATX.MNT_ID).mnt_id
    stop_r, stop_w = os.pipe()
    out_r, out_w = os.pipe()
    seen = mmap.mmap(-1, 1)
    pid = os.fork()
    if pid == 0:
        try:
            _hammer(tgt, bare, stop_r, out_w, seen)
        finally:
            os._exit(0)
    try:
        start, rounds = time.monotonic(), 0
        while (
            time.monotonic() < start + 1.0 or rounds < 300 or not seen[0]
        ) and time.monotonic() < start + 60:
            m.bind(src, tgt, readonly=True)
            m.unmount(tgt, lazy=True)  # the hammer may hold a file open on it
            rounds += 1
    finally:
        os.write(stop_w, b"x")
        os.waitpid(pid, 0)
    os.close(out_w)
    with os.fdopen(out_r) as f:
        counts: dict[str, int] = json.load(f)
    m.bind(src, tgt, readonly=True)
    entry = MountTable.read().find(tgt)
    counts["final_ro"] = int(entry is not None and entry.readonly)
    counts["leaked_into_src"] = int(os.path.exists(os.path.join(src, "x")))
    counts["staging_left"] = len([n for n in os.listdir(scratch) if n.startswith(".mountkit-bind-")])
    return counts


@pytest.mark.parametrize("legacy", [False, True], ids=["new-mount-api", "legacy-fallback"])
def test_read_only_bind_is_never_writable(in_ns, legacy: bool) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_hammer_ro_binds, legacy)
    assert r["attempts"] > 100 and r["erofs"] > 0  # the hammer really raced the binds
    assert r["writes"] == 0 and r["leaked_into_src"] == 0
    assert r["final_ro"] == 1 and r["staging_left"] == 0


def _legacy_file_binds(scratch: str, beneath: bool) -> dict[str, Any]:
    """Read-only binds of a file where the kernel has no open_tree: the one legacy helper, by name or
    pinned."""
    _sys.mark_unsupported("open_tree")
    m = Mounter()
    [pods] = _dirs(scratch, "pods")
    src, tgt = os.path.join(scratch, "secret.txt"), os.path.join(pods, "token")
    with open(src, "w") as f:
        f.write("file content")
    open(tgt, "w").close()
    root = scratch if beneath else None
    m.bind(src, tgt, readonly=True, beneath=root)
    m.bind(src, tgt, readonly=True, beneath=root)  # done already: no-op
    with open(tgt) as f:
        content = f.read()
    try:
        open(tgt, "a").close()
        write = 0
    except OSError as exc:
        write = exc.errno or 0
    entry = MountTable.read().find(tgt)
    return {
        "content": content,
        "write": write,
        "ro": entry is not None and entry.readonly,
        "stack": len(MountTable.read().find_all(tgt)),
        "left": sorted(n for n in os.listdir(pods) if n.startswith(".mountkit-bind-")),
    }


@pytest.mark.parametrize("beneath", [False, True], ids=["by-name", "beneath"])
def test_legacy_read_only_bind_of_a_file(in_ns, beneath: bool) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_legacy_file_binds, beneath)
    assert r["content"] == "file content" and r["write"] == errno.EROFS
    assert r["ro"] and r["stack"] == 1 and r["left"] == []


def _one_call_binds(scratch: str) -> dict[str, Any]:
    """Binds beneath a root: the usual one (nothing at the target) is one C call, the rest the general way."""
    from mountkit import bind as bind_module

    m = Mounter()
    src, ro, rw, rec, busy, other = _dirs(
        scratch, "src", "pods/ro", "pods/rw", "pods/rec", "pods/busy", "other"
    )
    m.mount("mk-src", src, "tmpfs")
    os.mkdir(os.path.join(src, "child"))
    m.mount("mk-child", os.path.join(src, "child"), "tmpfs")
    with open(os.path.join(src, "data"), "w") as f:
        f.write("share content")
    calls: list[bool] = []
    real = _sys.bind_beneath

    def counted(*args: Any) -> bool:
        calls.append(real(*args))
        return calls[-1]

    def no_general_way(*args: Any) -> Any:
        raise AssertionError("the general way ran for a bind the one call makes")

    with mock.patch.object(_sys, "bind_beneath", counted):
        with mock.patch.object(bind_module, "_spot", no_general_way):
            m.bind(src, ro, readonly=True, beneath=scratch)
            m.bind(src, rw, beneath=scratch)
            m.rbind(src, rec, readonly=True, beneath=scratch)
        one_call = list(calls)
        m.bind(src, ro, readonly=True, beneath=scratch)  # done already: the general way's no-op
        conflict = _err(m.bind, src, ro, beneath=scratch)  # read-write asked, read-only there
        m.mount("mk-busy", busy, "tmpfs")
        busy_err = _err(m.bind, src, busy, beneath=scratch)
        missing = _err(m.bind, src, os.path.join(scratch, "pods", "gone"), beneath=scratch)
        os.symlink(other, os.path.join(scratch, "pods", "link"))
        through_link = _err(m.bind, src, os.path.join(scratch, "pods", "link"), beneath=scratch)
        outside = _err(m.bind, src, "/tmp", beneath=scratch)
    writes = {}
    for name, path in (("ro", ro), ("rw", rw), ("rec", rec)):
        try:
            open(os.path.join(path, "new"), "w").close()
            writes[name] = 0
        except OSError as exc:
            writes[name] = exc.errno
    table = MountTable.read()
    return {
        "one_call": one_call,
        "later": calls[len(one_call) :],
        "writes": writes,
        "content": open(os.path.join(ro, "data")).read(),
        "rec_child": table.find(os.path.join(rec, "child")) is not None,
        "ro_child": table.find(os.path.join(ro, "child")) is not None,
        "stack": len(table.find_all(ro)),
        "conflict": conflict[:2],
        "busy": busy_err[:2],
        "missing": missing[:2],
        "through_link": through_link[:2],
        "outside": outside[:2],
        "other_mounted": table.find(other) is not None,
    }


def test_bind_beneath_is_one_call_and_failures_stay_the_general_ways(in_ns) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_one_call_binds)
    assert r["one_call"] == [True, True, True]  # bound by the one C call; _spot never ran
    assert r["writes"] == {"ro": errno.EROFS, "rw": 0, "rec": errno.EROFS} and r["content"] == "share content"
    assert r["rec_child"] and not r["ro_child"] and r["stack"] == 1
    assert r["later"] == [False] * 6  # each of the rest did nothing in C and was judged as before
    assert r["conflict"] == ("MountConflictError", errno.EBUSY)
    assert r["busy"] == ("MountConflictError", errno.EBUSY)
    assert r["missing"][1] == errno.ENOENT and r["through_link"][1] == errno.ELOOP
    assert r["outside"][1] == errno.EXDEV and not r["other_mounted"]


def _cleanups_beneath(scratch: str) -> dict[str, Any]:
    """cleanup_mountpoint(beneath=root): one probe job; refusals of the parent named; the rest by name."""
    from mountkit import mounter as mounter_module

    m = Mounter()
    src, stacked, full, other = _dirs(scratch, "src", "pods/a/mount", "pods/b/mount", "other/mount")
    m.mount("mk-src", src, "tmpfs")
    m.bind(src, stacked, readonly=True)
    _sys.mount(
        "mk-over", stacked, "tmpfs", 0, None
    )  # a second mount stacked on the first (bare: mountkit refuses)
    m.bind(src, other)
    os.symlink(os.path.join(scratch, "other"), os.path.join(scratch, "pods", "link"))
    started = _sys.probe_jobs()[0]

    def by_name(*args: Any, **kw: Any) -> None:
        raise AssertionError("the general way ran for a cleanup the one job does")

    with mock.patch.object(mounter_module, "remove_mountpoint_dir", by_name):
        m.cleanup_mountpoint(stacked, timeout=5.0, beneath=scratch)
        m.cleanup_mountpoint(os.path.join(scratch, "pods", "gone", "mount"), timeout=5.0, beneath=scratch)
    one_job = _sys.probe_jobs()[0] - started
    through_link = _err(
        m.cleanup_mountpoint, os.path.join(scratch, "pods", "link", "mount"), timeout=5.0, beneath=scratch
    )
    m.bind(src, full)
    _sys.umount2(full, 0)
    with open(os.path.join(full, "kept"), "w") as f:  # written while nothing was mounted there
        f.write("pod data")
    m.bind(src, full)
    not_empty = _err(m.cleanup_mountpoint, full, timeout=5.0, beneath=scratch)
    table = MountTable.read()
    return {
        "one_job": one_job,
        "stacked_gone": not os.path.exists(stacked) and table.find(stacked) is None,
        "through_link": (through_link[1], "open_beneath" in through_link[2]),
        "other_mounted": table.find(other) is not None and os.path.isdir(other),
        "not_empty": not_empty[1],
        "full_unmounted": table.find(full) is None,
        "kept": open(os.path.join(full, "kept")).read(),
    }


def test_cleanup_beneath_is_one_job_and_refuses_a_redirected_parent(in_ns) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_cleanups_beneath)
    assert r["one_job"] == 2  # one hand-off each, for the stacked target and for the missing parent
    assert r["stacked_gone"]
    assert r["through_link"] == (errno.ELOOP, True) and r["other_mounted"]
    assert r["not_empty"] == errno.ENOTEMPTY and r["full_unmounted"] and r["kept"] == "pod data"


def _tree_verbs(scratch: str, legacy: bool) -> dict[str, Any]:
    if legacy:
        for op in ("open_tree", "move_mount", "mount_setattr"):
            _sys.mark_unsupported(op)
    m = Mounter()
    src, copy, moved, elsewhere = _dirs(scratch, "src", "copy", "moved", "elsewhere")
    child = os.path.join(src, "child")
    os.mkdir(child)
    m.mount("mk-src", src, "tmpfs")
    os.makedirs(os.path.join(src, "child", "deep"))
    m.mount("mk-child", child, "tmpfs")
    os.mkdir(os.path.join(child, "deep"))
    m.mount("mk-deep", os.path.join(child, "deep"), "tmpfs")
    m.rbind(src, copy, readonly=True)
    m.rbind(src, copy, readonly=True)  # done already: no-op
    under = [(e.mount_point[len(scratch) :], e.readonly) for e in MountTable.read().under(copy)]
    m.move(copy, moved)
    m.move(copy, moved)  # done already: no-op
    after_move = [
        e.mount_point[len(scratch) :] for e in MountTable.read().under(scratch) if e.mount_point != scratch
    ]
    r: dict[str, Any] = {"under": under, "after_move": after_move}
    r["move_nothing"] = _err(m.move, copy, elsewhere)[:2]
    r["move_conflict"] = _err(m.move, src, moved)[:2]
    r["busy"] = _err(m.unmount, moved)[:2]
    m.unmount(moved, recursive=True)
    m.unmount(moved, recursive=True)  # nothing left: success
    r["left"] = [
        e.mount_point[len(scratch) :] for e in MountTable.read().under(scratch) if e.mount_point != scratch
    ]
    return r


@pytest.mark.parametrize("legacy", [False, True], ids=["new-mount-api", "ms-flags"])
def test_rbind_move_and_recursive_unmount(in_ns, legacy: bool) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_tree_verbs, legacy)
    if legacy:  # MS_BIND|MS_REC then a remount: only the top mount of the copy is read-only
        assert r["under"][0] == ("/copy", True) and len(r["under"]) == 3
    else:  # the detached clone is read-only throughout before it is attached
        assert r["under"] == [("/copy", True), ("/copy/child", True), ("/copy/child/deep", True)]
    assert r["after_move"] == [
        "/src",
        "/src/child",
        "/src/child/deep",
        "/moved",
        "/moved/child",
        "/moved/child/deep",
    ]
    assert r["move_nothing"] == ("MountError", errno.EINVAL)
    assert r["move_conflict"] == ("MountConflictError", errno.EBUSY)
    assert r["busy"] == ("MountError", errno.EBUSY)
    assert r["left"] == ["/src", "/src/child", "/src/child/deep"]


# --- remount, loop ext4, overlay, propagation ----------------------------------------------------


def _remount(scratch: str, legacy: bool) -> list[bool]:
    if legacy:
        _sys.mark_unsupported("mount_setattr")
    m = Mounter()
    [t] = _dirs(scratch, "t")
    m.mount("mk", t, "tmpfs", ["nosuid"])
    states = []
    for opts in ("ro", "ro", "rw"):
        m.remount(t, opts)
        e = MountTable.read().find(t)
        assert e is not None and "nosuid" in e.options  # flags not named are kept
        states.append(e.readonly)
    m.remount(t, "size=2m")
    e = MountTable.read().find(t)
    assert e is not None and "size=2048k" in e.super_options
    os.mkdir(os.path.join(scratch, "plain"))
    kind2, err2, text2 = _err(m.remount, os.path.join(scratch, "plain"), "ro")
    assert (kind2, err2) == ("MountError", errno.EINVAL) and "not a mount point" in text2
    return states


@pytest.mark.parametrize("legacy", [False, True], ids=["mount_setattr", "ms-remount"])
def test_remount_ro_rw(in_ns, legacy: bool) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_remount, legacy) == [True, True, False]


def _loop_ext4(scratch: str) -> tuple[str, str, str]:
    image = os.path.join(scratch, "fs.img")
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)  # setup only
    dev = subprocess.run(["losetup", "--find", "--show", image], check=True, capture_output=True, text=True)
    loop = dev.stdout.strip()
    try:
        m = Mounter()
        [t] = _dirs(scratch, "ext4")
        m.mount(loop, t, "ext4", ["noatime"])
        m.mount(loop, t, "ext4", ["noatime"])
        with open(os.path.join(t, "f"), "w") as f:
            f.write("on ext4")
        e = MountTable.read().find(t)
        assert e is not None
        m.unmount(t)
        assert not is_mountpoint(t)
        return e.fs_type, e.source, "noatime" if "noatime" in e.options else ""
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


@pytest.mark.skipif(not os.path.exists("/dev/loop-control"), reason="no /dev/loop-control (loop devices)")
@pytest.mark.skipif(
    not shutil.which("mkfs.ext4") or not shutil.which("losetup"), reason="needs e2fsprogs, losetup"
)
def test_loop_mounted_ext4(in_ns) -> None:  # type: ignore[no-untyped-def]
    fs_type, source, noatime = in_ns(_loop_ext4)
    assert fs_type == "ext4" and source.startswith("/dev/loop") and noatime == "noatime"


def _overlay(scratch: str) -> tuple[str, str, bool, str]:
    lower, upper, work, merged = _dirs(scratch, "lower", "upper", "work", "merged")
    with open(os.path.join(lower, "f"), "w") as f:
        f.write("from lower")
    opts = [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"]
    m = Mounter()
    m.mount("overlay", merged, "overlay", opts)
    m.mount("overlay", merged, "overlay", opts)
    with open(os.path.join(merged, "f")) as f:
        seen = f.read()
    with open(os.path.join(merged, "g"), "w") as f:
        f.write("to upper")
    e = MountTable.read().find(merged)
    assert e is not None
    return (
        seen,
        e.fs_type,
        os.path.exists(os.path.join(upper, "g")),
        str(len(MountTable.read().find_all(merged))),
    )


def test_overlay(in_ns) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_overlay) == ("from lower", "overlay", True, "1")


def _propagation(scratch: str) -> tuple[bool, bool]:
    m = Mounter()
    shared, slave = _dirs(scratch, "shared", "slave")
    m.mount("mk-shared", shared, "tmpfs", ["shared"])
    m.bind(shared, slave, options=["slave"])
    os.mkdir(os.path.join(shared, "new"))
    m.mount("mk-new", os.path.join(shared, "new"), "tmpfs")  # propagates master -> slave
    os.mkdir(os.path.join(slave, "back"))
    m.mount("mk-back", os.path.join(slave, "back"), "tmpfs")  # never slave -> master
    return is_mountpoint(os.path.join(slave, "new")), is_mountpoint(os.path.join(shared, "back"))


def test_shared_to_slave_propagation(in_ns) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_propagation) == (True, False)


# --- unmount, cleanup, is_mountpoint, check ------------------------------------------------------


def _stacked(scratch: str, timeout: float | None) -> tuple[int, int, bool, str]:
    m = Mounter()
    [t] = _dirs(scratch, "t")
    for i in range(3):
        _sys.mount(f"mk-{i}", t, "tmpfs", 0, None)
    before = len(MountTable.read().find_all(t))
    m.unmount(t, timeout=timeout)
    m.unmount(t, timeout=timeout)  # nothing left: success
    m.unmount(os.path.join(scratch, "missing"), timeout=timeout)  # missing: success
    after = len(MountTable.read().find_all(t))
    m.mount("mk-p", t, "tmpfs")
    os.mkdir(os.path.join(t, "sub"))
    m.mount("mk-c", os.path.join(t, "sub"), "tmpfs")
    busy = _err(m.unmount, t, timeout=timeout)
    m.unmount(t, lazy=True, timeout=timeout)
    return before, after, is_mountpoint(t), f"{busy[0]} {busy[1]} {busy[2]}"


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["direct", "on-a-probe-worker"])
def test_unmount_takes_every_stacked_mount(in_ns, timeout: float | None) -> None:  # type: ignore[no-untyped-def]
    before, after, still, busy = in_ns(_stacked, timeout)
    assert (before, after, still) == (3, 0, False)
    assert busy.startswith(f"MountError {errno.EBUSY} unmount ") and busy.split()[3].endswith("/t:")


def _cleanup(scratch: str) -> dict[str, Any]:
    m = Mounter()
    empty, full = _dirs(scratch, "empty", "full")
    m.mount("mk", empty, "tmpfs")
    m.cleanup_mountpoint(empty)
    m.cleanup_mountpoint(empty)  # gone: success
    m.mount("mk", full, "tmpfs")
    with open(os.path.join(full, "on-mount"), "w") as f:
        f.write("goes with the tmpfs")
    _sys.umount2(full, 0)
    with open(os.path.join(full, "keep"), "w") as f:
        f.write("left in the directory")
    m.mount("mk", full, "tmpfs")
    err = _err(m.cleanup_mountpoint, full)
    with open(os.path.join(full, "keep")) as f:
        kept = f.read()
    return {"empty_gone": not os.path.exists(empty), "err": err, "kept": kept, "mounted": is_mountpoint(full)}


def test_cleanup_never_deletes_contents(in_ns) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_cleanup)
    assert r["empty_gone"] and not r["mounted"]
    assert r["err"][:2] == ("MountError", errno.ENOTEMPTY) and "/full" in r["err"][2]
    assert r["kept"] == "left in the directory"


def _same_fs_bind(scratch: str) -> tuple[bool, bool, bool, bool]:
    src, tgt = _dirs(scratch, "src", "tgt")
    Mounter().bind(src, tgt)  # same tmpfs on both sides: st_dev does not change
    same_dev = os.stat(tgt).st_dev == os.stat(scratch).st_dev
    return same_dev, os.path.ismount(tgt), is_mountpoint(tgt), Mounter().is_mountpoint(tgt)


def test_is_mountpoint_sees_a_same_filesystem_bind(in_ns) -> None:  # type: ignore[no-untyped-def]
    same_dev, ismount, ours, with_deadline = in_ns(_same_fs_bind)
    if ismount:
        pytest.skip("os.path.ismount got this one right on this Python (it now uses statx?)")
    assert same_dev and ours and with_deadline


def _fallbacks(scratch: str, unsupported: tuple[str, ...]) -> list[bool]:
    src, tgt, plain = _dirs(scratch, "src", "tgt", "plain")
    Mounter().bind(src, tgt)
    for op in unsupported:
        _sys.mark_unsupported(op)
    with mock.patch.object(_sys, "is_mount_root", return_value=None):  # a kernel before 5.8
        return [is_mountpoint(tgt), is_mountpoint(plain), is_mountpoint("/")]


@pytest.mark.parametrize("unsupported", [(), ("openat2",)], ids=["openat2", "table"])
def test_is_mountpoint_fallbacks(in_ns, unsupported: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_fallbacks, unsupported) == [True, False, True]


def _sick_fuse(scratch: str) -> dict[str, Any]:
    m = Mounter(probe_timeout=0.5)
    out: dict[str, Any] = {}
    pids = []
    try:
        stale, hung, ctl = _dirs(scratch, "stale", "hung", "ctl")
        stale_ctl, hung_ctl = os.path.join(ctl, "stale.mode"), os.path.join(ctl, "hung.mode")
        pids.append(hangfs.start(stale, stale_ctl))
        m.check(stale)
        out["ok_mounted"] = m.is_mountpoint(stale)
        hangfs.set_mode(stale_ctl, "ESTALE")
        out["stale"] = _err(m.check, stale)[:2]
        m.unmount(stale)  # a stale mount is still unmounted
        out["stale_gone"] = not is_mountpoint(stale)

        pids.append(hangfs.start(hung, hung_ctl))
        hangfs.set_mode(hung_ctl, "hang")
        out["hung"] = _err(m.check, hung)[:2]
        hangfs.abort(hung)  # frees the abandoned probe
        m.unmount(hung, lazy=True)  # the abandoned probe may still hold it busy for a moment
        out["hung_gone"] = not is_mountpoint(hung)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return out


def test_check_reports_stale_and_hung_mounts(in_ns) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("fuse", reason="fusepy is needed for the FUSE stand-in")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    r = in_ns(_sick_fuse)
    assert r["ok_mounted"] is True
    assert r["stale"] == ("CorruptedMountError", errno.ESTALE)
    assert r["stale_gone"]
    assert r["hung"] == ("CorruptedMountError", errno.ETIMEDOUT)
    assert r["hung_gone"]


def _refs_of_hung(scratch: str) -> dict[str, Any]:
    m = Mounter(probe_timeout=5.0)  # refs waits at most REFS_PROBE_TIMEOUT (0.5 s)
    hung, bind, ctl = _dirs(scratch, "hung", "bind", "ctl")
    control = os.path.join(ctl, "hung.mode")
    pid = hangfs.start(hung, control)
    try:
        m.bind(hung, bind)
        hangfs.set_mode(control, "hang")
        start, abandoned = time.monotonic(), probe.abandoned_probes()
        out: dict[str, Any] = {"root": m.refs(hung), "inside": m.refs(os.path.join(hung, "x"))}
        out["seconds"] = time.monotonic() - start
        out["abandoned"] = probe.abandoned_probes() - abandoned
        hangfs.abort(hung)  # frees the abandoned probe
        m.unmount(bind, lazy=True)
        m.unmount(hung, lazy=True)
        return out
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_refs_answers_from_the_table_when_the_path_hangs(in_ns) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("fuse", reason="fusepy is needed for the FUSE stand-in")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    r = in_ns(_refs_of_hung)
    assert [os.path.basename(p) for p in r["root"]] == ["bind"]  # statx asks a mount root nothing
    assert r["inside"] == []  # the lookup below hangs: bounded, then the whole table, not an error
    assert r["abandoned"] >= 1  # the probe of "inside" did hang
    assert r["seconds"] < 4


# --- no helper processes -------------------------------------------------------------------------


def _no_subprocess(scratch: str) -> str:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"Mounter spawned a process: {args!r}")

    for mod, name in [
        (os, "fork"),
        (os, "posix_spawn"),
        (os, "posix_spawnp"),
        (os, "execv"),
        (os, "execve"),
        (os, "system"),
        (os, "popen"),
        (subprocess, "Popen"),
        (subprocess, "run"),
    ]:
        setattr(mod, name, refuse)
    m = Mounter()
    src, tgt, t = _dirs(scratch, "src", "tgt", "t")
    m.mount("mk", t, "tmpfs", ["size=1m"])
    m.bind(src, tgt, readonly=True, recursive=True)
    m.remount(t, "ro")
    m.check(t)
    assert m.is_mountpoint(tgt) and m.refs(tgt) == []
    m.list()
    m.unmount(tgt)
    m.cleanup_mountpoint(t)
    kind = _err(m.mount, "10.0.0.1:/x", tgt, "nfs", ["vers=3"])[0]  # no NFS client here: ENODEV
    return kind


def test_mounter_never_spawns_a_process(in_ns) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_no_subprocess) in ("MountError", "UnsupportedError", "")
