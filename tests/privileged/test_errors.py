"""Real kernel refusals read the way the verb was called: verb, source -> target, which path, errno.

Each test runs in a private mount namespace (``mount_ns``) on a fresh tmpfs scratch directory.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest

from mountkit import _sys
from mountkit.errors import NFS_CLIENT_MISSING, MountConflictError, MountError
from mountkit.flags import CLONE_NEWNET
from mountkit.mounter import Mounter
from tests.support.kernelskips import HAS_NFS_CLIENT

pytestmark = pytest.mark.privileged


def _raised(fn: object, *args: object, **kw: object) -> MountError:
    with pytest.raises(MountError) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return info.value


def _dirs(scratch: str, *names: str) -> list[str]:
    paths = [os.path.join(scratch, n) for n in names]
    for p in paths:
        os.mkdir(p)
    return paths


@pytest.mark.mount_ns
@pytest.mark.parametrize("api", ["new", "mount2"])
@pytest.mark.parametrize("readonly", [False, True], ids=["rw", "ro"])
def test_bind_names_the_missing_source_or_target(ns_scratch: str, api: str, readonly: bool) -> None:
    if api == "mount2":
        for op in ("open_tree", "move_mount", "mount_setattr"):
            _sys.mark_unsupported(op)
    m = Mounter()
    [there] = _dirs(ns_scratch, "there")
    gone = os.path.join(ns_scratch, "gone")
    exc = _raised(m.bind, gone, there, readonly=readonly)
    assert (exc.errno, exc.operation, exc.role, exc.path) == (errno.ENOENT, "bind", "source", gone)
    assert str(exc).startswith(f"bind {gone} -> {there}: source {gone}: No such file or directory (ENOENT)")
    exc = _raised(m.rbind, there, gone, readonly=readonly)
    assert (exc.operation, exc.filename, exc.filename2, exc.role) == ("rbind", there, gone, "target")
    assert str(exc).startswith(f"rbind {there} -> {gone}: target {gone}: No such file or directory (ENOENT)")
    exc = _raised(m.bind, there, gone, readonly=readonly, beneath=ns_scratch)  # pinned by open_beneath
    assert (exc.operation, exc.role, exc.path, exc.step) == ("bind", "target", gone, "open_beneath")


@pytest.mark.mount_ns
def test_bind_conflict_names_source_then_target(ns_scratch: str) -> None:
    m = Mounter()
    a, b, t = _dirs(ns_scratch, "a", "b", "t")
    m.bind(a, t)
    exc = _raised(m.bind, b, t)
    assert isinstance(exc, MountConflictError)
    assert str(exc).startswith(f"bind {b} -> {t}: Device or resource busy (EBUSY): ")


@pytest.mark.mount_ns
def test_move_names_source_then_target(ns_scratch: str) -> None:
    m = Mounter()
    src, dst = _dirs(ns_scratch, "src", "dst")
    gone = os.path.join(ns_scratch, "gone")
    exc = _raised(m.move, src, dst)  # nothing mounted at the source
    assert (
        str(exc)
        == f"move {src} -> {dst}: source {src}: Invalid argument (EINVAL): nothing is mounted at the source"
    )
    m.mount("mk-src", src, "tmpfs")
    exc = _raised(m.move, src, gone)
    assert (exc.operation, exc.filename, exc.filename2, exc.role) == ("move", src, gone, "target")
    assert str(exc).startswith(f"move {src} -> {gone}: target {gone}: No such file or directory (ENOENT)")
    m.mount("mk-dst", dst, "tmpfs")
    exc = _raised(m.move, src, dst)
    assert isinstance(exc, MountConflictError) and str(exc).startswith(f"move {src} -> {dst}: target {dst}: ")


@pytest.mark.mount_ns
def test_mount_names_the_missing_target(ns_scratch: str) -> None:
    gone = os.path.join(ns_scratch, "gone", "deeper")
    exc = _raised(Mounter().mount, "mk-x", gone, "tmpfs", ["size=1m"])
    assert str(exc).startswith(f"mount mk-x -> {gone}: target {gone}: No such file or directory (ENOENT)")


@pytest.mark.mount_ns
def test_remount_and_unmount_say_so(ns_scratch: str) -> None:
    m = Mounter()
    t, plain = _dirs(ns_scratch, "t", "plain")
    exc = _raised(m.remount, plain, "ro")
    assert str(exc) == f"remount {plain}: Invalid argument (EINVAL): not a mount point"
    m.mount("mk-t", t, "tmpfs")
    os.mkdir(os.path.join(t, "sub"))
    sub = os.path.join(t, "sub")
    m.mount("mk-sub", sub, "tmpfs")
    busy = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)  # an open directory keeps the mount busy
    try:
        exc = _raised(m.unmount, t, recursive=True)
    finally:
        os.close(busy)
    assert (exc.errno, exc.operation, exc.filename) == (errno.EBUSY, "unmount", sub)  # the busy one
    assert str(exc).startswith(f"unmount {sub}: Device or resource busy (EBUSY)")
    m.unmount(t, recursive=True)


def _has_nfs_client() -> bool:
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] in ("nfs", "nfs4") for line in f if line.strip())


def _assert_no_nfs_client(exc: MountError, source: str, target: str, step: str) -> None:
    """ENODEV with the hint, naming the source and target as asked and the step that found no client."""
    assert (exc.errno, exc.operation, exc.filename, exc.filename2) == (errno.ENODEV, "mount", source, target)
    assert exc.step == step
    text = str(exc)
    assert (
        text.startswith(f"mount {source} -> {target}: No such device (ENODEV): ") and "modprobe nfs" in text
    )
    assert text.endswith(NFS_CLIENT_MISSING)


@pytest.mark.mount_ns
@pytest.mark.parametrize("fstype", ["nfs", "nfs4"])
@pytest.mark.parametrize("api", ["fsopen", "mount2"])
def test_nfs_without_a_client_says_so_and_names_the_paths(ns_scratch: str, fstype: str, api: str) -> None:
    if _has_nfs_client():
        pytest.skip(HAS_NFS_CLIENT)
    if api == "mount2":
        _sys.mark_unsupported("fsopen")
    [t] = _dirs(ns_scratch, "t")
    # versions that need no clientaddr=: a kernel without fsopen is asked only by mount(2), after the lookups
    exc = _raised(
        Mounter().mount, "127.0.0.1:/share", t, fstype, ["vers=4.2" if fstype == "nfs4" else "vers=3"]
    )
    step = (
        f"fsopen {fstype} (new mount API)"
        if api == "fsopen"
        else "mount(2) with a data string (this kernel has no fsopen)"
    )
    _assert_no_nfs_client(exc, "127.0.0.1:/share", t, step)


@pytest.mark.mount_ns
@pytest.mark.parametrize("source", ["10.0.0.1:/share", "filestore.invalid:/share"])
@pytest.mark.parametrize(("fstype", "vers"), [("nfs", "3"), ("nfs4", "4"), ("nfs4", "4.1")])
def test_nfs_without_a_client_says_so_whatever_the_network(
    ns_scratch: str, source: str, fstype: str, vers: str
) -> None:
    """In a network namespace of the test's own (lo down: no route, no resolver), where the server's name
    and the route behind v4.0/4.1's clientaddr= cannot be looked up: the missing client is what is said."""
    if _has_nfs_client():
        pytest.skip(HAS_NFS_CLIENT)
    _sys.unshare(CLONE_NEWNET)  # this forked child only
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, pytest.raises(OSError) as unreachable:
        probe.connect(("10.0.0.1", 2049))
    assert unreachable.value.errno == errno.ENETUNREACH  # the lookups would fail here
    [t] = _dirs(ns_scratch, "t")
    exc = _raised(Mounter().mount, source, t, fstype, [f"vers={vers}"])
    _assert_no_nfs_client(exc, source, t, f"fsopen {fstype} (new mount API)")


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mountkit.cli", *argv], check=False, capture_output=True, text=True, timeout=60
    )


@pytest.mark.mount_ns
def test_cli_errors_in_the_namespace(ns_scratch: str) -> None:
    """The command as a process: one line on stderr naming verb, source -> target and the missing path."""
    [there] = _dirs(ns_scratch, "there")
    gone = os.path.join(ns_scratch, "gone")
    done = _cli("bind", gone, there)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(
        f"mountkit: bind {gone} -> {there}: source {gone}: No such file or directory"
    )
    assert done.stderr.count("\n") == 1
    done = _cli("rbind", there, gone)
    assert done.stderr.startswith(
        f"mountkit: rbind {there} -> {gone}: target {gone}: No such file or directory"
    )
    assert _cli("refs", gone).returncode == 1 and _cli("list", "--target", gone).returncode == 1
    assert _cli("list", "--target", ns_scratch).returncode == 0  # the scratch tmpfs itself


@pytest.mark.mount_ns
def test_list_into_head_exits_0_quietly(ns_scratch: str) -> None:
    """``mountkit list | head -1`` with a table larger than a pipe's buffer, so head leaves mid-write."""
    m = Mounter()
    for i in range(600):  # ~100 bytes a row: well over the 64 KiB a pipe holds
        point = os.path.join(ns_scratch, f"m{i:04d}-{'x' * 40}")
        os.mkdir(point)
        m.mount(f"mk-{i}", point, "tmpfs")
    for argv in ("list", "list --json"):
        script = f'{sys.executable} -m mountkit.cli {argv} | head -1; echo "status=${{PIPESTATUS[0]}}"'
        done = subprocess.run(["bash", "-c", script], check=False, capture_output=True, text=True, timeout=60)
        assert done.stdout.splitlines()[-1] == "status=0" and done.stderr == "", (argv, done.stderr)
