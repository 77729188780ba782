"""mountkit's error messages, built in one place (mountkit.errors): verb, source -> target, which path."""

from __future__ import annotations

import errno
import pickle

import pytest

from mountkit.errors import (
    NFS_CLIENT_MISSING,
    CorruptedMountError,
    InvalidOptionError,
    MountConflictError,
    MountError,
    UnsupportedError,
    as_verb,
)
from mountkit.rules import classified


def test_a_step_that_named_one_path_says_which_it_was() -> None:
    exc = as_verb(MountError(errno.ENOENT, "open_tree", "/src"), "bind", "/src", "/dst")
    assert (exc.operation, exc.filename, exc.filename2, exc.role, exc.step) == (
        "bind",
        "/src",
        "/dst",
        "source",
        "open_tree",
    )
    assert str(exc) == "bind /src -> /dst: source /src: No such file or directory (ENOENT): open_tree"
    exc = as_verb(
        MountError(errno.ENOTDIR, "open_beneath", "/dst", "/root", "a symlink"), "rbind", "/src", "/dst"
    )
    assert (exc.role, exc.path) == ("target", "/dst")
    assert str(exc) == "rbind /src -> /dst: target /dst: Not a directory (ENOTDIR): open_beneath: a symlink"


def test_a_syscall_that_took_both_paths_takes_the_callers_guess() -> None:
    """mount(2) names the target first and the source second; the kernel does not say which is missing."""
    raw = MountError(errno.ENOENT, "mount", "/dst", "/src")
    assert str(raw).startswith("mount /dst -> /src")  # the syscall's own order, before
    exc = as_verb(raw, "bind", "/src", "/dst", guess="source")
    assert str(exc) == "bind /src -> /dst: source /src: No such file or directory (ENOENT): mount"
    unknown = as_verb(MountError(errno.ENOENT, "move_mount", "/dst", "/src"), "move", "/src", "/dst")
    assert (
        unknown.role is None
        and str(unknown) == "move /src -> /dst: No such file or directory (ENOENT): move_mount"
    )


def test_a_role_the_step_set_wins_and_other_errnos_name_no_path() -> None:
    exc = as_verb(
        MountError(errno.ENOENT, "statx", None, None, None, "source"), "bind", "/s", "/t", guess="target"
    )
    assert exc.role == "source"
    busy = as_verb(MountError(errno.EBUSY, "move_mount", "/t"), "bind", "/s", "/t", guess="target")
    assert busy.role is None and str(busy) == "bind /s -> /t: Device or resource busy (EBUSY): move_mount"


def test_one_path_verbs() -> None:
    exc = as_verb(MountError(errno.EBUSY, "umount", "/mnt"), "unmount", None, "/mnt")
    assert str(exc) == "unmount /mnt: Device or resource busy (EBUSY): umount"
    own = MountError(errno.EINVAL, "remount", "/x", None, "not a mount point")
    assert (
        str(as_verb(own, "remount", None, "/x")) == "remount /x: Invalid argument (EINVAL): not a mount point"
    )


def test_enodev_for_nfs_says_the_kernel_has_no_nfs_client() -> None:
    raw = MountError(errno.ENODEV, "fsopen", "nfs", None, None, None, "fsopen nfs (new mount API)")
    exc = as_verb(raw, "mount", "10.0.0.2:/vol1", "/stage", nfs=True)
    assert str(exc) == (
        "mount 10.0.0.2:/vol1 -> /stage: No such device (ENODEV): fsopen nfs (new mount API): "
        + NFS_CLIENT_MISSING
    )
    assert "modprobe nfs" in NFS_CLIENT_MISSING
    assert str(as_verb(exc, "mount", "10.0.0.2:/vol1", "/stage", nfs=True)).count(NFS_CLIENT_MISSING) == 1


def test_enodev_for_another_type_gets_no_nfs_hint() -> None:
    exc = as_verb(MountError(errno.ENODEV, "fsopen", "bogusfs"), "mount", "x", "/t")
    assert NFS_CLIENT_MISSING not in str(exc)


def test_the_class_is_kept_and_classified_keeps_role_and_step() -> None:
    assert isinstance(
        as_verb(UnsupportedError(errno.ENOSYS, "open_tree", "/s"), "bind", "/s", "/t"), UnsupportedError
    )
    conflict = as_verb(
        MountConflictError(errno.EBUSY, "bind", "/s", "/t", "tmpfs is there"), "rbind", "/s", "/t"
    )
    assert isinstance(conflict, MountConflictError) and str(conflict).startswith("rbind /s -> /t: ")
    dead = classified(as_verb(MountError(errno.ESTALE, "statx", "/t"), "bind", "/s", "/t"))
    assert isinstance(dead, CorruptedMountError) and (dead.operation, dead.step) == ("bind", "statx")


@pytest.mark.parametrize(
    "exc",
    [
        as_verb(MountError(errno.ENOENT, "open_tree", "/s"), "bind", "/s", "/t"),
        CorruptedMountError(errno.ESTALE, "check", "/t", None, None, "target", "statfs"),
        InvalidOptionError("mount", "empty option", "/t"),
    ],
    ids=type,
)
def test_errors_pickle_whole(exc: MountError) -> None:
    """They cross process boundaries (mount_ns children, probe workers): class, fields, message intact."""
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc)
    assert (back.errno, back.role, back.step, back.path) == (exc.errno, exc.role, exc.step, exc.path)
