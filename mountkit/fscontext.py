"""The new mount API: a new filesystem through an fs context (fsopen, one fsconfig per option,
fsmount, move_mount) and a superblock reconfigured through fspick; mount(2) with a data string where
the kernel or the options do not allow it.  A refusal carries the kernel's own message.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from mountkit import _sys
from mountkit._bits import (
    _CMD_CREATE,
    _CMD_RECONFIGURE,
    _F_EMPTY_PATH,
    _FSPICK,
    _PER_MOUNT,
    _SET_FLAG,
    _SET_STRING,
    _T_EMPTY_PATH,
)
from mountkit.errors import MountError, UnsupportedError
from mountkit.flags import FSCONFIG_MAX_STRING, FSMOUNT_CLOEXEC, FSOPEN_CLOEXEC, MS, SB_FLAG_KEYS
from mountkit.options import ParsedOptions
from mountkit.pinning import _pinned, _Spot

#: the mount(2) flags a new mount can say through fsconfig keys and fsmount attributes (MS_SILENT
#: only quietens the kernel log, which an fs context replaces); any other flag takes mount(2)
_FSCONFIG_FLAGS = _PER_MOUNT | MS.SILENT
for _flag, _ in SB_FLAG_KEYS:
    _FSCONFIG_FLAGS |= _flag
_NEW_API = "new mount API"


def _misfit(src: str | None, opts: ParsedOptions, words: tuple[str, ...]) -> str | None:
    """Why these options cannot go through fsconfig (so mount(2) must take them), or None."""
    if opts.flags & ~_FSCONFIG_FLAGS:
        return f"flags with no fsconfig key: {(opts.flags & ~_FSCONFIG_FLAGS)!r}"
    parts = [src or ""]
    for word in (*words, *opts.sensitive):
        parts.extend(word.partition("=")[::2])
    if max(len(part.encode()) for part in parts) > FSCONFIG_MAX_STRING:
        return f"a key or value longer than fsconfig's {FSCONFIG_MAX_STRING} bytes"
    return None


def _configure(fd: int, words: Iterable[str], *, secret: bool = False) -> None:
    """One fsconfig call per option, so no option can carry another in: ``key=value`` or a flag."""
    for word in words:
        key, eq, value = word.partition("=")
        if eq:
            _sys.fsconfig(fd, _SET_STRING, key, value, secret=secret)
        else:
            _sys.fsconfig(fd, _SET_FLAG, key)


def _relabel(exc: MountError) -> MountError:
    """An error of one step of the new mount API, saying which step refused (the verb names the rest)."""
    exc.step = f"{exc.operation} ({_NEW_API})"
    return exc


def _new_mount(src: str, kind: str, opts: ParsedOptions, words: tuple[str, ...], spot: _Spot) -> None:
    """Mount a new ``kind`` filesystem at ``spot``, through an fs context where the kernel has one.

    A refusal there carries the kernel's own message.  mount(2) with a data
    string is the fallback (a kernel without fsopen, or options fsconfig
    cannot say); its errors say that this path was taken, and why.
    """
    why = _misfit(src, opts, words)
    if why is None:
        try:
            with _pinned(spot) as at:
                _fs_context_mount(src, kind, opts, words, at)
            return
        except UnsupportedError:  # ENOSYS: learnt once by mountkit._sys, then no syscall is spent on it
            why = "this kernel has no fsopen"
    try:
        _sys.mount(src, spot.name, kind, int(opts.flags), ",".join((*words, *opts.sensitive)) or None)
    except MountError as exc:
        exc.step = f"mount(2) with a data string ({why})"
        raise


def require_filesystem(kind: str) -> None:
    """Raise MountError(ENODEV) now if this kernel has no filesystem type ``kind``.

    An fsopen, closed at once (the kernel loads the module where it can, as for a mount).  Run
    before a mount's slow or network steps (an NFS server's name, the route behind
    ``clientaddr=``), so a kernel without the filesystem reads ENODEV whatever the network.  A
    kernel without fsopen (before 5.2) is not asked: there mount(2) is the first to know.
    """
    try:
        fd = _fsopen(kind)
    except UnsupportedError:
        return
    os.close(fd)


def _fsopen(kind: str) -> int:
    try:
        return _sys.fsopen(kind, FSOPEN_CLOEXEC)
    except MountError as exc:  # ENODEV: no filesystem type of that name (module not loaded)
        exc.step = f"fsopen {kind} ({_NEW_API})"
        raise


def _fs_context_mount(src: str, kind: str, opts: ParsedOptions, words: tuple[str, ...], at: _Spot) -> None:
    """fsopen; the source, superblock flags and each option one fsconfig call; create; fsmount with the
    per-mount attributes; move_mount onto the pinned ``at``.  Errors name the step that refused."""
    fd = _fsopen(kind)
    try:
        _sys.fsconfig(fd, _SET_STRING, "source", src)
        for flag, key in SB_FLAG_KEYS:
            if flag in opts.flags:
                _sys.fsconfig(fd, _SET_FLAG, key)
        _configure(fd, words)
        _configure(fd, opts.sensitive, secret=True)
        _sys.fsconfig(fd, _CMD_CREATE)
        mfd = _sys.fsmount(fd, FSMOUNT_CLOEXEC, opts.mount_attr()[0])
    except MountError as exc:
        raise _relabel(exc) from None
    finally:
        os.close(fd)
    try:
        _sys.move_mount(mfd, "", at.dfd, "", _F_EMPTY_PATH | _T_EMPTY_PATH)
    except MountError as exc:
        raise _relabel(exc) from None
    finally:
        os.close(mfd)  # a detached mount dies with its last descriptor


def _reconfigure(tgt: str, opts: ParsedOptions) -> str | None:
    """Set filesystem options on the superblock at ``tgt`` (fspick + fsconfig + RECONFIGURE).

    Only the options given change: unlike MS_REMOUNT, which restates every
    superblock flag, the superblock flags (sync, lazytime, ...) are left as
    they are.  Returns why it could not (no fspick, options that do not fit
    fsconfig), for the caller to fall back to mount(2); None when done.
    """
    why = _misfit(None, opts, opts.data)
    if why is not None:
        return why
    try:
        fd = _sys.fspick(tgt, _FSPICK)
    except UnsupportedError:
        return "this kernel has no fspick"
    except MountError as exc:
        raise _relabel(exc) from None
    try:
        _configure(fd, opts.data)
        _configure(fd, opts.sensitive, secret=True)
        _sys.fsconfig(fd, _CMD_RECONFIGURE)
    except MountError as exc:
        raise _relabel(exc) from None
    finally:
        os.close(fd)
    return None
