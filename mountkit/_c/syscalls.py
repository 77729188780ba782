"""Bindings of cext/sys/sys.c: the mount syscalls, statx, openat2 and the one-call helpers (bind state,
open beneath a root), each turning ``-1/errno`` into :class:`~mountkit.errors.MountError`.

cffi releases the GIL around every call, so a call that blocks on a dead filesystem blocks only its
own thread.  Mount data may hold secrets: it never enters an error.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from mountkit._c.core import c_string as _cstr
from mountkit._c.core import check_supported as _check_supported
from mountkit._c.core import failure as _fail
from mountkit._c.core import path_bytes as _b
from mountkit._c.core import path_name as _name
from mountkit._c.core import supported as _supported
from mountkit._mountkit_sys import ffi, lib
from mountkit._types import PathArg
from mountkit.errors import SOURCE, MountError
from mountkit.flags import AT_FDCWD


def mount(source: PathArg | None, target: PathArg, fstype: str | None, flags: int, data: str | None) -> None:
    """mount(2). ``data`` may hold secrets: it never enters an error."""
    rc = lib.mk_mount(
        _cstr(source, "mount"),
        _b(target, "mount"),
        ffi.NULL if fstype is None else fstype.encode(),
        flags,
        ffi.NULL if data is None else data.encode(),
    )
    if rc != 0:
        raise _fail("mount", target, source if flags else None)


def umount2(target: PathArg, flags: int = 0) -> None:
    if lib.mk_umount2(_b(target, "umount"), flags) != 0:
        raise _fail("umount", target)


def unmount(target: PathArg, flags: int = 0) -> None:
    """umount2 until nothing is left mounted at ``target`` (cext/sys/sys.h ``mk_unmount``): one call."""
    if lib.mk_unmount(_b(target, "umount"), flags) != 0:
        raise _fail("umount", target)


def open_tree(path: PathArg, flags: int, dfd: int = AT_FDCWD) -> int:
    """open_tree(2); returns a new file descriptor the caller must close."""
    _check_supported("open_tree")
    fd = lib.mk_open_tree(dfd, _b(path, "open_tree"), flags)
    if fd < 0:
        raise _fail("open_tree", path)
    return int(fd)


def move_mount(from_dfd: int, from_path: PathArg, to_dfd: int, to_path: PathArg, flags: int) -> None:
    _check_supported("move_mount")
    if lib.mk_move_mount(from_dfd, _b(from_path, "move_mount"), to_dfd, _b(to_path, "move_mount"), flags):
        raise _fail("move_mount", to_path or None, from_path or None)


def mount_setattr(
    dfd: int, path: PathArg, flags: int, attr_set: int = 0, attr_clr: int = 0, propagation: int = 0
) -> None:
    _check_supported("mount_setattr")
    attr = ffi.new("struct mk_mount_attr *")
    attr.attr_set, attr.attr_clr, attr.propagation = attr_set, attr_clr, propagation
    if lib.mk_mount_setattr(dfd, _b(path, "mount_setattr"), flags, attr, ffi.sizeof("struct mk_mount_attr")):
        raise _fail("mount_setattr", path or None)


def fsopen(fsname: str, flags: int) -> int:
    """fsopen(2); returns a new filesystem-context descriptor the caller must close."""
    _check_supported("fsopen")
    fd = lib.mk_fsopen(_b(fsname, "fsopen"), flags)
    if fd < 0:
        raise _fail("fsopen", fsname)
    return int(fd)


def fs_log(fd: int) -> list[str]:
    """The messages the kernel left in a filesystem context, oldest first.

    Each is ``"<e|w|i> <fs>: <text>"`` (mount_api.rst); the read that finds
    none left fails with ENODATA.  A refused fsconfig or fsmount explains
    itself here, where mount(2) would give only the errno.
    """
    out: list[str] = []
    for _ in range(32):  # the kernel keeps at most 8; stop on a context that never runs dry
        try:
            raw = os.read(fd, 4096)
        except OSError:
            break
        if not raw:
            break
        out.append(raw.decode(errors="replace").rstrip("\n"))
    return out


def _refusal(fd: int, secret: str | None) -> str | None:
    """The kernel's error and warning messages of ``fd`` (type letter dropped), ``secret`` blanked."""
    text = "; ".join(m[2:] if m[1:2] == " " else m for m in fs_log(fd) if m[:1] in ("e", "w"))
    if secret and text:
        text = text.replace(secret, "<redacted>")
    return text or None


def fsconfig(
    fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0, *, secret: bool = False
) -> None:
    """fsconfig(2); on failure the kernel's message joins the error, which names ``key``.

    A ``secret`` value is blanked out of that message; a value is never reported otherwise either.
    """
    _check_supported("fsconfig")
    rc = lib.mk_fsconfig(
        fd,
        cmd,
        ffi.NULL if key is None else _b(key, "fsconfig"),
        ffi.NULL if value is None else _b(value, "fsconfig"),
        aux,
    )
    if rc != 0:
        err = _fail("fsconfig")
        why = _refusal(fd, value if secret else None)
        err.detail = "; ".join(filter(None, (f"key {key!r}" if key else None, why))) or err.detail
        raise err


def fsmount(fd: int, flags: int, attr_flags: int) -> int:
    """fsmount(2); returns a detached mount's descriptor the caller must close."""
    _check_supported("fsmount")
    mfd = lib.mk_fsmount(fd, flags, attr_flags)
    if mfd < 0:
        err = _fail("fsmount")
        err.detail = _refusal(fd, None) or err.detail
        raise err
    return int(mfd)


def fspick(path: PathArg, flags: int, dfd: int = AT_FDCWD) -> int:
    """fspick(2); returns a reconfiguration context of the superblock at ``path``, to be closed."""
    _check_supported("fspick")
    fd = lib.mk_fspick(dfd, _b(path, "fspick"), flags)
    if fd < 0:
        raise _fail("fspick", path or None)
    return int(fd)


class Statx(NamedTuple):
    """The statx(2) fields mountkit uses (a tuple: built on hot paths, where a frozen dataclass costs µs)."""

    mask: int
    attributes: int
    attributes_mask: int
    mode: int
    ino: int
    dev_major: int
    dev_minor: int
    mnt_id: int


def statx(path: PathArg, flags: int, mask: int, dfd: int = AT_FDCWD) -> Statx:
    buf = ffi.new("struct mk_statx *")
    if lib.mk_statx(dfd, _b(path, "statx"), flags, mask, buf) != 0:
        raise _fail("statx", path or None)
    return Statx(
        buf.stx_mask,
        buf.stx_attributes,
        buf.stx_attributes_mask,
        buf.stx_mode,
        buf.stx_ino,
        buf.stx_dev_major,
        buf.stx_dev_minor,
        buf.stx_mnt_id,
    )


def is_mount_root(path: PathArg, at_flags: int, dfd: int = AT_FDCWD) -> bool | None:
    """One statx: is ``path`` the root of a mount? ``None`` when the kernel cannot say (before 5.8)."""
    rc = lib.mk_is_mount_root(dfd, _b(path, "statx"), at_flags)
    if rc == -1:
        raise _fail("statx", path or None)
    return None if rc == -2 else rc == 1


BIND_ROOT: int = lib.MK_BIND_ROOT
BIND_SAME: int = lib.MK_BIND_SAME
BIND_RO_KNOWN: int = lib.MK_BIND_RO_KNOWN
BIND_RO: int = lib.MK_BIND_RO


def bind_state(dfd: int, path: PathArg, at_flags: int, sdfd: int, spath: PathArg, s_flags: int) -> int | None:
    """``BIND_*`` bits for a bind target and its source in one call; None before 5.8 (cext/sys/sys.h)."""
    which = ffi.new("int *")
    rc = lib.mk_bind_state(dfd, _b(path, "statx"), at_flags, sdfd, _b(spath, "statx"), s_flags, which)
    if rc == -1:
        if which[0]:
            raise MountError(ffi.errno, "statx", _name(spath or None), None, None, SOURCE)
        raise _fail("statx", path or None)
    return None if rc == -2 else int(rc)


_HOW_SIZE = ffi.sizeof("struct mk_open_how")


def _open_how(flags: int, resolve: int, mode: int = 0) -> Any:
    """openat2's ``struct open_how``."""
    how = ffi.new("struct mk_open_how *")
    how.flags, how.mode, how.resolve = flags, mode, resolve
    return how


def openat2(path: PathArg, flags: int, resolve: int, mode: int = 0, dfd: int = AT_FDCWD) -> int:
    """openat2(2); returns a new file descriptor the caller must close."""
    _check_supported("openat2")
    how = _open_how(flags, resolve, mode)
    fd = lib.mk_openat2(dfd, _b(path, "openat2"), how, _HOW_SIZE)
    if fd < 0:
        raise _fail("openat2", path)
    return int(fd)


def open_beneath(root: PathArg, path: PathArg, flags: int, resolve: int) -> int:
    """openat2(2) of ``path`` from a descriptor of ``root`` opened (and closed) in the same call.

    The root that cannot be opened raises OSError naming it, as ``os.open`` does; a refused
    openat2 raises MountError as :func:`openat2`.
    """
    _check_supported("openat2")
    how = _open_how(flags, resolve)
    which = ffi.new("int *")
    fd = lib.mk_open_beneath(_b(root, "open"), _b(path, "openat2"), how, _HOW_SIZE, which)
    if fd < 0:
        if not which[0]:
            err = ffi.errno
            raise OSError(err, os.strerror(err), _name(root))
        raise _fail("openat2", path)
    return int(fd)


def mkdir_beneath(root: PathArg, parent: PathArg, name: str, mode: int, flags: int, resolve: int) -> bool:
    """mkdirat of ``name`` in ``parent``, opened beneath ``root`` (openat2 with ``flags``, ``resolve``) in
    the same call: True made, False it exists already.

    The root that cannot be opened raises OSError naming it; a refused openat2 MountError naming
    ``parent``; a refused mkdirat OSError naming ``name``, as ``os.mkdir`` does.
    """
    _check_supported("openat2")
    how = _open_how(flags, resolve)
    which = ffi.new("int *")
    rc = lib.mk_mkdir_beneath(
        _b(root, "open"),
        _b(parent, "openat2"),
        _b(name, "mkdir"),
        mode,
        how,
        _HOW_SIZE,
        which,
    )
    if rc < 0:
        err = ffi.errno
        if which[0] == 1:
            raise _fail("openat2", parent)
        raise OSError(err, os.strerror(err), _name(name if which[0] else root))
    return int(rc) == 1


#: the syscalls mk_bind_beneath makes; once any is known missing, binds take the general way
_BIND_BENEATH_OPS = ("openat2", "open_tree", "move_mount", "mount_setattr")


def bind_beneath(
    root: PathArg,
    target: PathArg,
    source: PathArg,
    open_flags: int,
    resolve: int,
    probe_flags: int,
    source_flags: int,
    bind: tuple[int, int, int, int, int],
) -> bool:
    """A whole bind of ``source`` onto ``target`` (both relative to ``root``, opened beneath it) in one call.

    ``bind`` is (open_tree flags, mount_setattr flags, attr_set, attr_clr, move_mount flags).  True once
    bound; False when nothing was bound (a mount root there already, a kernel without a call, any
    refusal): the caller's general way then judges and names it (cext/sys/sys.h mk_bind_beneath).
    """
    if not all(map(_supported, _BIND_BENEATH_OPS)):
        return False
    how = _open_how(open_flags, resolve)
    clone, setattr_flags, attr_set, attr_clr, move = bind
    rc = lib.mk_bind_beneath(
        _b(root, "open"),
        _b(target, "openat2"),
        _b(source, "openat2"),
        how,
        _HOW_SIZE,
        probe_flags,
        source_flags,
        clone,
        setattr_flags,
        attr_set,
        attr_clr,
        move,
    )
    return int(rc) == 0


def unshare(flags: int) -> None:
    if lib.mk_unshare(flags) != 0:
        raise _fail("unshare")
