"""mountkit.Mounter mounts real kernel NFS (v3, v4.0, v4.1, v4.2) by itself: no mount.nfs, no process.

Each case runs in a private mount namespace in which /sbin/mount.nfs and /sbin/mount.nfs4 are hidden
under empty files, and every way of starting a process raises while the mount runs, so a pass
proves the options built by mountkit.nfs are all the kernel needed.  Every case goes through
fsopen/fsconfig/fsmount with mount(2) made to raise; two also go through the mount(2) fallback
(fsopen marked missing).  A bad NFS option comes back with the NFS client's own message, and a
remount with filesystem options goes through fspick with the kernel's NFS rules deciding.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from mountkit import MountConflictError, Mounter, MountError, MountTable, _sys, find_mount
from mountkit.flags import MS

pytestmark = pytest.mark.privileged

HELPERS = ("/sbin/mount.nfs", "/sbin/mount.nfs4")
_SPAWNERS = (
    "fork",
    "forkpty",
    "posix_spawn",
    "posix_spawnp",
    "system",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "execl",
)

# case id: (fstype, options, the kernel's fstype, the vers= mountinfo shows)
CASES: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "v3-nolock": ("nfs", ("vers=3", "nolock", "proto=tcp"), "nfs", "3"),
    "v3-nlm": ("nfs", ("vers=3", "proto=tcp"), "nfs", "3"),
    "v4.0": ("nfs4", ("vers=4.0", "proto=tcp"), "nfs4", "4.0"),
    "v4.1": ("nfs", ("vers=4.1", "proto=tcp"), "nfs4", "4.1"),
    "v4.2": ("nfs4", ("vers=4.2", "proto=tcp"), "nfs4", "4.2"),
}


#: the cases also run through the mount(2) fallback
LEGACY_CASES = ("v3-nolock", "v4.2")


class Spawned(AssertionError):
    """A process was about to be started during a mount."""


@contextlib.contextmanager
def no_processes(*, fsopen: bool = False) -> Iterator[None]:
    """Make every process-starting call raise for the duration (``fsopen``: mount(2) too)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise Spawned(f"a process was started: {args[:1]!r}")

    def no_mount2(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"mount(2) was called: {args[:2]!r}")

    with contextlib.ExitStack() as stack:
        if fsopen:
            stack.enter_context(mock.patch.object(_sys, "mount", side_effect=no_mount2))
        stack.enter_context(mock.patch.object(subprocess, "Popen", side_effect=refuse))
        for name in _SPAWNERS:
            if hasattr(os, name):
                stack.enter_context(mock.patch.object(os, name, side_effect=refuse))
        yield


def _hide_helpers(scratch: str) -> list[str]:
    """Bind an empty file over each mount.nfs helper present (inside this namespace only)."""
    empty = os.path.join(scratch, "empty")
    open(empty, "w").close()
    hidden = []
    for helper in HELPERS:
        if os.path.exists(helper):
            _sys.mount(empty, helper, None, MS.BIND, None)
            assert os.path.getsize(helper) == 0
            hidden.append(helper)
    return hidden


def _table(pid: int | None = None) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(m.mount_point, m.fs_type, m.source, m.super_options) for m in MountTable.read(pid)]


def _case(
    scratch: str, server: str, export: str, fstype: str, options: tuple[str, ...], api: str
) -> dict[str, Any]:
    hidden = _hide_helpers(scratch)
    if api == "mount2":
        _sys.mark_unsupported("fsopen")
    fsopen = api == "fsopen"
    target = os.path.join(scratch, "mnt")
    os.mkdir(target)
    mounter = Mounter(probe_timeout=30)
    source = f"{server}:{export}"
    out: dict[str, Any] = {"hidden": hidden}
    started = time.monotonic()
    with no_processes(fsopen=fsopen):
        mounter.mount(source, target, fstype, options)
    out["mount_s"] = time.monotonic() - started
    info = find_mount(target)
    assert info is not None
    out["fs_type"], out["source"], out["super"] = (
        info.fs_type,
        info.source,
        dict(o.partition("=")[::2] for o in info.super_options),
    )
    with open(os.path.join(target, "through-mount"), "w") as f:
        f.write(f"written via {fstype} {' '.join(options)}")
    if "nolock" not in options:
        with open(os.path.join(target, "locked"), "w") as f:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.write("held an NLM/v4 lock")
            fcntl.lockf(f, fcntl.LOCK_UN)
        out["locked"] = True
    before = _table()
    with no_processes(fsopen=fsopen):
        mounter.mount(source, target, fstype, options)  # the same again: a no-op
    out["idempotent"] = _table() == before
    try:
        with no_processes(fsopen=fsopen):
            mounter.mount(f"{server}:/", target, fstype, options)
        out["conflict"] = None
    except MountConflictError as exc:
        out["conflict"] = exc.errno
    out["unchanged_after_conflict"] = _table() == before
    with no_processes():
        mounter.unmount(target)
    out["unmounted"] = not mounter.is_mountpoint(target) and find_mount(target) is None
    return out


@pytest.mark.parametrize(
    ("case", "api"), [(c, "fsopen") for c in CASES] + [(c, "mount2") for c in LEGACY_CASES]
)
def test_mounter_mounts_real_nfs(case: str, api: str, nfs_server: str, export_dir: str, in_ns: Any) -> None:
    fstype, options, kernel_type, vers = CASES[case]
    started = time.monotonic()
    got = in_ns(_case, nfs_server, export_dir, fstype, options, api, timeout=180)
    print(f"{case} via {api}: mount {got['mount_s']:.2f} s, case {time.monotonic() - started:.1f} s")
    assert got["hidden"], "no mount.nfs helper to hide: the no-helper claim would prove nothing"
    assert got["fs_type"] == kernel_type
    assert got["source"] == f"{nfs_server}:{export_dir}"
    opts = got["super"]
    assert opts["vers"] == vers and opts["addr"] == nfs_server and opts["proto"] == "tcp"
    if "nolock" in options:
        assert "nolock" in opts or opts.get("local_lock") == "all"
    else:
        assert got["locked"]
    assert got["idempotent"], "a repeated mount changed the mount table"
    assert got["conflict"] == errno.EBUSY and got["unchanged_after_conflict"]
    assert got["unmounted"]
    with open(os.path.join(export_dir, "through-mount")) as f:
        assert f.read() == f"written via {fstype} {' '.join(options)}"


def _bad_options(scratch: str, server: str, export: str) -> dict[str, str]:
    """Options mountkit passes on but the NFS client refuses: what each error says."""
    target = os.path.join(scratch, "mnt")
    os.mkdir(target)
    mounter = Mounter(probe_timeout=30)
    out: dict[str, str] = {}
    attempts = {
        "range": (("vers=3", "timeo=4294967295"), ()),  # within mountkit's uint32 check, past the kernel's
        "unknown": (("vers=4.2",), ("bogus=1",)),  # sensitive options are the kernel's to judge
    }
    for name, (options, sensitive) in attempts.items():
        try:
            with no_processes(fsopen=True):
                mounter.mount(f"{server}:{export}", target, "nfs", options, sensitive)
            out[name] = "mounted"
        except MountError as exc:
            out[name] = f"{errno.errorcode.get(exc.errno or 0)} {exc}"
    out["mounted_after"] = str(find_mount(target) is not None)
    return out


def test_a_bad_nfs_option_comes_back_with_the_kernels_message(
    nfs_server: str, export_dir: str, in_ns: Any
) -> None:
    got = in_ns(_bad_options, nfs_server, export_dir, timeout=120)
    print(got)
    assert got["mounted_after"] == "False"
    assert got["unknown"].startswith("EINVAL mount ")
    assert "fsconfig (new mount API): key 'bogus'" in got["unknown"]
    assert got["unknown"].endswith("key 'bogus'; nfs4: Unknown parameter 'bogus'")  # vers=4.2: the nfs4 type
    assert got["range"].startswith("EINVAL mount ")
    assert got["range"].endswith("key 'timeo'; NFS: Value for 'timeo' out of range")  # the NFS client's words


def _remount(scratch: str, server: str, export: str) -> dict[str, Any]:
    """Remount a real NFS v4.2 mount with filesystem options through fspick (mount(2) made to raise).

    NFS lets no connection or cache option change on a remount (nfs_compare_remount_data): restating
    the options in force is accepted, a changed one is refused with EINVAL and changes nothing.
    """
    target = os.path.join(scratch, "mnt")
    os.mkdir(target)
    mounter = Mounter(probe_timeout=30)
    with no_processes(fsopen=True):
        mounter.mount(f"{server}:{export}", target, "nfs4", ("vers=4.2", "proto=tcp", "acregmax=33"))
    with open(os.path.join(target, "kept"), "w") as f:
        f.write("kept across remounts")
    before = _table()
    out: dict[str, Any] = {"super": find_mount(target).super_options}  # type: ignore[union-attr]
    with no_processes(fsopen=True):
        mounter.remount(target, ("acregmax=33",))  # what is in force: accepted, nothing changes
    out["same_unchanged"] = _table() == before
    try:
        with no_processes(fsopen=True):
            mounter.remount(target, ("acregmax=34",))
        out["changed"] = "remounted"
    except MountError as exc:
        out["changed"] = (exc.errno, exc.operation, exc.filename, str(exc))
    out["changed_unchanged"] = _table() == before
    with no_processes(fsopen=True):
        mounter.remount(target, ("ro",))  # a per-mount flag: mount_setattr, the superblock stays rw
    info = find_mount(target)
    assert info is not None
    out["ro"], out["sb_rw"] = info.readonly, "rw" in info.super_options
    with open(os.path.join(target, "kept")) as f:
        out["content"] = f.read()
    mounter.unmount(target)
    return out


def test_nfs_remount_goes_through_fspick_and_the_kernel_judges_it(
    nfs_server: str, export_dir: str, in_ns: Any
) -> None:
    got = in_ns(_remount, nfs_server, export_dir, timeout=120)
    print(got)
    assert "acregmax=33" in got["super"]
    assert got["same_unchanged"], "restating the options in force changed the mount table"
    errno_, operation, target, message = got["changed"]
    assert (errno_, operation) == (errno.EINVAL, "remount") and target.endswith("/mnt"), message
    assert got["changed_unchanged"], "a refused remount changed the mount table"
    assert got["ro"] and got["sb_rw"]
    assert got["content"] == "kept across remounts"


def _refs(scratch: str, server: str, export: str) -> dict[str, list[str]]:
    """Mounter.refs of a staged NFS share bound into two pods (what a ReadWriteOncePod publish asks)
    and of a bind of one of its subdirectories; on a kernel before 6.8 (the guest's 6.1) it answers
    from the whole table."""
    staging, a, b, sub = (os.path.join(scratch, d) for d in ("staging", "a", "b", "sub"))
    for d in (staging, a, b, sub):
        os.mkdir(d)
    mounter = Mounter(probe_timeout=30)
    mounter.mount(f"{server}:{export}", staging, "nfs4", ("vers=4.2", "proto=tcp"))
    os.makedirs(os.path.join(staging, "d"), exist_ok=True)
    mounter.bind(staging, a)
    mounter.bind(staging, b, readonly=True)
    mounter.bind(os.path.join(staging, "d"), sub)
    out = {
        name: sorted(os.path.basename(p) for p in mounter.refs(path))
        for name, path in (("staging", staging), ("a", a), ("sub", sub))
    }
    for path in (sub, b, a, staging):
        mounter.unmount(path)
    return out


def test_refs_of_a_staged_nfs_share(nfs_server: str, export_dir: str, in_ns: Any) -> None:
    got = in_ns(_refs, nfs_server, export_dir, timeout=120)
    # NFS shows every mount's root as "/" (its show_path), the subdirectory going into the source
    # instead: by (device, root) a bind of a subdirectory is one more ref, as in Kubernetes'
    # GetMountRefs.  So the node counts only kubelet's publish targets (csi.node.kubelet.is_publish_target).
    assert got == {"staging": ["a", "b", "sub"], "a": ["b", "staging", "sub"], "sub": ["a", "b", "staging"]}
