"""Mounter against the alternatives: the mount table, mount(8)/umount(8), and bare syscalls.

Run: ``python3 bench/bench_mounter.py`` (root; everything happens in private namespaces).

1. ``is_mountpoint`` (one statx) against a full-table check (``MountTable.read().find``) with
   100 and 10,000 kubelet-like bind mounts in the namespace.
2. bind + unmount through the public API against ``/bin/mount --bind`` + ``/bin/umount``, and a
   read-only bind against ``mount -o bind,ro`` (the helper's bind-then-remount), at 10,000 mounts.
3. 5,000 binds one by one through ``Mounter.bind`` (fresh, then again as idempotent no-ops)
   against 5,000 bare ``_sys.mount(MS_BIND)`` calls (read-only binds against the bare syscalls of an
   atomic read-only bind: open_tree, mount_setattr, move_mount).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

from common import Row, in_private_ns, kubelet_binds, measure, record, report, timing_row

# the bare-syscall rows time the kernel alone, which only the private bindings reach (no public API)
from mountkit import _sys
from mountkit.flags import AT, AT_FDCWD, MNT, MOUNT_ATTR, MOVE_MOUNT, MS, OPEN_TREE
from mountkit.mounter import Mounter, is_mountpoint
from mountkit.table import MountTable


def _probe_rows(scratch: str, n: int) -> list[Row]:
    targets = kubelet_binds(scratch, n)
    target = targets[n // 2]
    assert is_mountpoint(target) and MountTable.read().find(target) is not None
    m = Mounter()
    return [
        timing_row("is_mountpoint (one statx)", measure(lambda: is_mountpoint(target), repeats=2000)),
        timing_row(
            "Mounter.is_mountpoint (deadline, probe pool)",
            measure(lambda: m.is_mountpoint(target), repeats=2000),
            "is_mountpoint (one statx)",
            "target <= 3x",
        ),
        timing_row(
            "MountTable.read().find",
            measure(lambda: MountTable.read().find(target), repeats=30 if n > 1000 else 300),
            "is_mountpoint (one statx)",
        ),
    ]


def _helper_rows(scratch: str, n: int) -> list[Row]:
    kubelet_binds(scratch, n)
    src, tgt = os.path.join(scratch, "volume"), os.path.join(scratch, "pod-target")
    os.mkdir(src)
    os.mkdir(tgt)
    m = Mounter()
    m.mount("tmpfs", src, "tmpfs", "size=1m")  # its own mount: no children slow the bind down

    def api(readonly: bool) -> None:
        m.bind(src, tgt, readonly=readonly)
        m.unmount(tgt)

    def helper(options: str) -> None:
        subprocess.run(["/bin/mount", "-o", options, src, tgt], check=True)
        subprocess.run(["/bin/umount", tgt], check=True)

    return [
        timing_row("bind+unmount Mounter", measure(lambda: api(False), repeats=200)),
        timing_row(
            "mount --bind + umount (exec)",
            measure(lambda: helper("bind"), repeats=15),
            "bind+unmount Mounter",
        ),
        timing_row("ro bind+unmount Mounter", measure(lambda: api(True), repeats=200)),
        timing_row(
            "mount -o bind,ro + umount (exec)",
            measure(lambda: helper("bind,ro"), repeats=15),
            "ro bind+unmount Mounter",
        ),
    ]


def _per_op(fn: Callable[[], None], count: int) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / count


BARE_RO = "bare open_tree+mount_setattr+move_mount"


def _many_binds(scratch: str, count: int) -> list[Row]:
    src = os.path.join(scratch, "volume")
    os.mkdir(src)
    m = Mounter()
    m.mount("tmpfs", src, "tmpfs", "size=1m")
    targets = [os.path.join(scratch, "t", str(i)) for i in range(count)]
    for t in targets:
        os.makedirs(t)
    bind, detach = int(MS.BIND), int(MNT.DETACH)
    clone, empty = int(OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC), int(AT.EMPTY_PATH)
    rdonly, f_empty = int(MOUNT_ATTR.RDONLY), int(MOVE_MOUNT.F_EMPTY_PATH)

    def bare() -> None:
        for t in targets:
            _sys.mount(src, t, None, bind, None)

    def bare_ro() -> None:  # what makes a read-only bind atomic: clone, set read-only, attach
        for t in targets:
            fd = _sys.open_tree(src, clone)
            try:
                _sys.mount_setattr(fd, "", empty, attr_set=rdonly)
                _sys.move_mount(fd, "", AT_FDCWD, t, f_empty)
            finally:
                os.close(fd)

    def unmount_all() -> None:
        for t in targets:
            _sys.umount2(t, detach)

    def api(readonly: bool) -> None:
        for t in targets:
            m.bind(src, t, readonly=readonly)

    rows: list[Row] = []
    for rnd in range(3):  # best of three: the machine is shared
        got = {
            "bare _sys.mount(MS_BIND)": _per_op(bare, count),
            "unmount": _per_op(unmount_all, count),
            "Mounter.bind": _per_op(lambda: api(False), count),
            "Mounter.bind again (no-op)": _per_op(lambda: api(False), count),
        }
        unmount_all()
        got[BARE_RO] = _per_op(bare_ro, count)
        unmount_all()
        got["Mounter.bind ro"] = _per_op(lambda: api(True), count)
        got["Mounter.bind ro again (no-op)"] = _per_op(lambda: api(True), count)
        unmount_all()
        rows = [Row(k, min(v, rows[i].value) if rnd else v) for i, (k, v) in enumerate(got.items())]
    base = "bare _sys.mount(MS_BIND)"

    def against(name: str) -> str | None:
        if name in (base, BARE_RO, "unmount"):
            return None
        return (BARE_RO if " ro" in name else base) + f" x{count}"

    return [Row(r.name + f" x{count}", r.value, "ns", against(r.name), "per bind, best of 3") for r in rows]


def main() -> None:
    for n in (100, 1_000, 10_000, 30_000):
        rows = in_private_ns(_probe_rows, n)
        report(f"is_mountpoint vs a full-table check, {n:,} kubelet-like mounts", rows)
        record("probe", "mounts", n, rows)
    rows = in_private_ns(_helper_rows, 10_000)
    report("bind + unmount vs mount(8)/umount(8), 10,000 mounts", rows)
    record("bind", "mounts", 10_000, rows)
    rows = in_private_ns(_many_binds, 5_000)
    report("5,000 binds one by one vs bare syscalls", rows)
    record("binds", "binds", 5_000, rows)


if __name__ == "__main__":
    main()
