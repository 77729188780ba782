"""The syscall layer against the real kernel, inside a private mount namespace."""

from __future__ import annotations

import errno
import os

import pytest

from mountkit import _sys
from mountkit.errors import MountError
from mountkit.flags import AT, AT_FDCWD, MNT, MOUNT_ATTR, MOVE_MOUNT, OPEN_TREE

pytestmark = pytest.mark.privileged


def _tmpfs_roundtrip(scratch: str) -> tuple[bool, bool]:
    tgt = os.path.join(scratch, "t")
    os.mkdir(tgt)
    _sys.mount("tmpfs", tgt, "tmpfs", 0, "size=1m")
    mounted = bool(_sys.is_mount_root(tgt, AT.SYMLINK_NOFOLLOW))
    _sys.umount2(tgt, 0)
    return mounted, bool(_sys.is_mount_root(tgt, AT.SYMLINK_NOFOLLOW))


def test_mount_and_umount2_change_mount_root(in_ns) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_tmpfs_roundtrip) == (True, False)


def _umount_not_mounted(scratch: str) -> tuple[int | None, str | None, str]:
    try:
        _sys.umount2(scratch + "/nope", MNT.DETACH)
    except MountError as exc:
        return exc.errno, exc.filename, str(exc)
    return None, None, ""


def test_errors_carry_errno_operation_and_path(in_ns) -> None:  # type: ignore[no-untyped-def]
    err, path, text = in_ns(_umount_not_mounted)
    assert err == errno.ENOENT
    assert path is not None and path.endswith("/nope")
    assert text.startswith("umount ") and "ENOENT" in text


def _readonly_clone(scratch: str) -> tuple[int, bool]:
    src, tgt = os.path.join(scratch, "src"), os.path.join(scratch, "tgt")
    os.mkdir(src)
    os.mkdir(tgt)
    fd = _sys.open_tree(src, OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC)
    try:
        _sys.mount_setattr(fd, "", AT.EMPTY_PATH, attr_set=MOUNT_ATTR.RDONLY)
        _sys.move_mount(fd, "", AT_FDCWD, tgt, MOVE_MOUNT.F_EMPTY_PATH)
    finally:
        os.close(fd)
    try:
        open(os.path.join(tgt, "x"), "w").close()
    except OSError as exc:
        return exc.errno or 0, bool(_sys.is_mount_root(tgt, 0))
    return 0, bool(_sys.is_mount_root(tgt, 0))


def test_new_mount_api_read_only_clone(in_ns) -> None:  # type: ignore[no-untyped-def]
    assert in_ns(_readonly_clone) == (errno.EROFS, True)


def test_nul_in_path_is_rejected_before_the_kernel() -> None:
    with pytest.raises(MountError) as info:
        _sys.umount2("/tmp/a\0b")
    assert info.value.errno == errno.EINVAL
