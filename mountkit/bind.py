"""Bind mounts: :class:`Binder`, the bind half of :class:`~mountkit.mounter.Mounter`.

A read-only bind is made read-only before it is attached (open_tree + mount_setattr + move_mount);
kernels without that API take the legacy staging path; the no-op check is one C call on 5.8+.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from typing import NoReturn

from mountkit import _sys
from mountkit._bits import (
    _BIND,
    _BIND_REC,
    _BIND_REMOUNT,
    _CLONE,
    _DETACH,
    _EMPTY_PATH,
    _F_EMPTY_PATH,
    _NOFOLLOW,
    _O_NEW_FILE,
    _O_PATH,
    _PER_MOUNT,
    _PROBE_AT,
    _RDONLY_ATTR,
    _RECURSIVE,
    _SM_BASIC,
    _SOURCE_AT,
    _STATX_INO,
    _STATX_INO_MNT,
    _STATX_MNT_ID_UNIQUE,
    _T_EMPTY_PATH,
)
from mountkit._types import PathArg
from mountkit.asverb import _as_verb
from mountkit.errors import InvalidOptionError, MountConflictError, MountError, UnsupportedError
from mountkit.flags import AT_FDCWD, MS
from mountkit.mountpoint import _spot_is_mountpoint
from mountkit.options import ParsedOptions, parse_options
from mountkit.pinning import _Spot, _spot
from mountkit.propagation import _propagate
from mountkit.restate import _restated
from mountkit.rules import classified as _classified
from mountkit.rules import describe as _describe
from mountkit.safepath import _O_PATH as _O_PATH_BENEATH
from mountkit.safepath import _RESOLVE, _relative, fd_path, open_beneath
from mountkit.table import MountInfo, find_mount

_NO_OPTIONS = ParsedOptions()


def _mount_readonly(tgt: str, st: _sys.Statx) -> bool | None:
    """Is the mount at ``tgt`` read-only: statmount's attributes (6.8+), else its table entry."""
    if st.mask & _STATX_MNT_ID_UNIQUE:
        try:
            return bool(_sys.statmount(st.mnt_id, _SM_BASIC).mnt_attr & _RDONLY_ATTR)
        except UnsupportedError:
            pass
    return _table_readonly(tgt)


def _table_readonly(tgt: str) -> bool | None:
    """Is the mount at ``tgt`` read-only, by its table entry (before statmount)."""
    info = find_mount(os.path.realpath(tgt))
    return None if info is None else info.readonly


def _bound_in_one_call(
    beneath: PathArg, source: str, target: str, recursive: bool, attr_set: int, attr_clr: int
) -> bool:
    """The usual bind beneath a root (nothing at ``target`` yet) as one C call: no GIL hand-off between
    its nine syscalls, the root opened once.  False when nothing was bound, for the general way to
    judge a mount already there and name any failure, exactly as before."""
    root = os.fsdecode(beneath)
    try:
        tgt, src = _relative(root, target), _relative(root, source)
    except MountError:
        return False
    at = _EMPTY_PATH | (_RECURSIVE if recursive else 0)
    clone = _CLONE | at
    move = _F_EMPTY_PATH | _T_EMPTY_PATH
    probe, source_at = _PROBE_AT | _EMPTY_PATH, _SOURCE_AT | _EMPTY_PATH
    bind = (clone, at, attr_set, attr_clr, move)
    return _sys.bind_beneath(root, tgt, src, _O_PATH_BENEATH, _RESOLVE, probe, source_at, bind)


class Binder:
    """The bind half of :class:`~mountkit.mounter.Mounter` (its verbs ``bind``/``rbind`` call ``_bind``),
    and the two helpers both halves use: ``_entry`` and ``_set_propagation``."""

    def _bind(
        self,
        verb: str,
        source: PathArg,
        target: PathArg,
        readonly: bool,
        recursive: bool,
        options: Iterable[str] | str,
        beneath: PathArg | None,
    ) -> None:
        """:meth:`bind`, its errors named after ``verb`` (bind or rbind, as the caller called it)."""
        with _as_verb(verb, os.fsdecode(source), os.fsdecode(target)):
            self._bind_as(source, target, readonly, recursive, options, beneath)

    def _bind_as(
        self,
        source: PathArg,
        target: PathArg,
        readonly: bool,
        recursive: bool,
        options: Iterable[str] | str,
        beneath: PathArg | None,
    ) -> None:
        tgt = os.fsdecode(target)
        opts = parse_options(options) if options else _NO_OPTIONS
        if opts.data or opts.sensitive:
            raise InvalidOptionError("bind", "filesystem data options do not apply to a bind mount", tgt)
        readonly = readonly or bool(opts.flags & MS.RDONLY)
        src_name = os.fsdecode(source)
        if beneath is None and self._already_bound(  # the no-op, without entering the context managers
            _Spot(AT_FDCWD, tgt, tgt), _Spot(AT_FDCWD, src_name, src_name), source, tgt, readonly
        ):
            return
        attr_set, attr_clr = opts.mount_attr() if opts is not _NO_OPTIONS else (0, 0)
        if readonly:
            attr_set |= _RDONLY_ATTR
        if beneath is not None and _bound_in_one_call(beneath, src_name, tgt, recursive, attr_set, attr_clr):
            self._set_propagation(tgt, opts)
            return
        with _spot(tgt, beneath) as spot, _spot(src_name, beneath) as src:
            if beneath is not None and self._already_bound(spot, src, source, tgt, readonly):
                return
            if not (attr_set or attr_clr):  # nothing to set: a plain MS_BIND is atomic, and cheapest
                _sys.mount(src.name, spot.name, None, _BIND_REC if recursive else _BIND, None)
            else:
                try:
                    self._bind_detached(src, spot, recursive, attr_set, attr_clr)
                except UnsupportedError:
                    self._bind_legacy(src, spot, tgt, beneath, recursive, opts, readonly)
        self._set_propagation(tgt, opts)

    @staticmethod
    def _bind_detached(src: _Spot, spot: _Spot, recursive: bool, attr_set: int, attr_clr: int) -> None:
        flags = _CLONE | (_RECURSIVE if recursive else 0) | (0 if src.path else _EMPTY_PATH)
        fd = _sys.open_tree(src.path, flags, src.dfd)
        try:
            if attr_set or attr_clr:
                at = _EMPTY_PATH | _RECURSIVE if recursive else _EMPTY_PATH
                _sys.mount_setattr(fd, "", at, attr_set, attr_clr)
            _sys.move_mount(fd, "", spot.dfd, spot.path, _F_EMPTY_PATH | (0 if spot.path else _T_EMPTY_PATH))
        finally:
            os.close(fd)  # an unattached clone dies with its last fd

    @staticmethod
    def _bind_legacy(
        src: _Spot,
        spot: _Spot,
        tgt: str,
        beneath: PathArg | None,
        recursive: bool,
        opts: ParsedOptions,
        readonly: bool,
    ) -> None:
        """MS_BIND; with per-mount flags, by way of a staging point so the target is never writable.

        mount(2) ignores MS_RDONLY with MS_BIND, so the flags need a second
        MS_REMOUNT|MS_BIND call; doing that at a fresh, randomly named sibling
        of the target (a directory, or a file for a file source) and then
        binding the staging mount onto the target (a bind copies the per-mount
        flags of the mount it clones) keeps the window off the target.  The
        sibling is made in the target's parent (resolved beneath ``beneath``
        when given) and only ever reached through a descriptor of that parent.
        """
        how = _BIND_REC if recursive else _BIND
        if not (readonly or (opts.flags | opts.clear) & _PER_MOUNT):
            _sys.mount(src.name, spot.name, None, how, None)
            return
        parent = os.path.dirname(tgt)
        if beneath is None:
            pfd = os.open(parent or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            pfd = open_beneath(os.fsdecode(beneath), parent)
        name = f".mountkit-bind-{os.urandom(6).hex()}"
        try:
            is_dir = stat.S_ISDIR(os.stat(src.name).st_mode)
            if is_dir:
                os.mkdir(name, 0o700, dir_fd=pfd)
            else:
                os.close(os.open(name, _O_NEW_FILE, 0o600, dir_fd=pfd))
            try:
                under = os.open(name, _O_PATH, dir_fd=pfd)
                try:
                    _sys.mount(src.name, fd_path(under), None, how, None)
                finally:
                    os.close(under)
                top = os.open(name, _O_PATH, dir_fd=pfd)  # now the staging mount's root
                try:
                    flags = _restated(fd_path(top), opts, int(MS.RDONLY) if readonly else 0)
                    _sys.mount(None, fd_path(top), None, _BIND_REMOUNT | flags, None)
                    _sys.mount(fd_path(top), spot.name, None, how, None)
                finally:
                    _sys.umount2(fd_path(top), _DETACH)
                    os.close(top)
            finally:
                (os.rmdir if is_dir else os.unlink)(name, dir_fd=pfd)
        except OSError as exc:
            if isinstance(exc, MountError):
                raise
            raise _classified(MountError(exc.errno or errno.EIO, "staging bind", exc.filename)) from None
        finally:
            os.close(pfd)

    def _already_bound(self, spot: _Spot, src: _Spot, source: PathArg, tgt: str, readonly: bool) -> bool:
        """True when ``tgt`` already shows this bind (a no-op), False when nothing is mounted there.

        One C call (statx of both, statmount of the target's mount) answers on 5.8+; another
        mount there, or the other read-only state: MountConflictError.
        """
        try:
            state = _sys.bind_state(
                spot.dfd,
                spot.path,
                _PROBE_AT | (0 if spot.path else _EMPTY_PATH),
                src.dfd,
                src.path,
                _SOURCE_AT | (0 if src.path else _EMPTY_PATH),
            )
        except MountError as exc:
            if exc.role is None and exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return False  # no target: the bind itself reports it
            raise _classified(exc) from None
        if state is None:  # before 5.8: the slower ways
            if not _spot_is_mountpoint(spot):
                return False
            self._check_same_bind(source, tgt, readonly)
            return True
        if not state & _sys.BIND_ROOT:
            return False
        if state & _sys.BIND_SAME:
            ro = bool(state & _sys.BIND_RO) if state & _sys.BIND_RO_KNOWN else _table_readonly(tgt)
            if ro == readonly:
                return True
        self._conflict(source, tgt, readonly)

    def _check_same_bind(self, source: PathArg, tgt: str, readonly: bool) -> None:
        """No-op when the mount at ``tgt`` shows ``source``'s inode with the asked ro state, else conflict."""
        try:
            st = _sys.statx(tgt, _PROBE_AT, _STATX_INO_MNT)
            src = _sys.statx(source, _SOURCE_AT, _STATX_INO)
        except MountError as exc:
            raise _classified(exc) from None
        same = (src.dev_major, src.dev_minor, src.ino) == (st.dev_major, st.dev_minor, st.ino)
        if same and _mount_readonly(tgt, st) == readonly:
            return
        self._conflict(source, tgt, readonly)

    def _conflict(self, source: PathArg, tgt: str, readonly: bool) -> NoReturn:
        """Raise MountConflictError naming what is mounted at ``tgt`` and the bind asked for."""
        info = self._entry(tgt)
        asked = f"a {'read-only' if readonly else 'read-write'} bind of {os.fsdecode(source)!r}"
        raise MountConflictError(
            errno.EBUSY,
            "bind",
            os.fsdecode(source),
            tgt,
            f"{_describe(info)} is mounted there; asked for {asked}",
        )

    @staticmethod
    def _entry(tgt: str) -> MountInfo | None:
        return find_mount(os.path.realpath(tgt))

    @staticmethod
    def _set_propagation(tgt: str, opts: ParsedOptions) -> None:
        """Apply the propagation asked for to a mount just made; undo the mount if that fails."""
        if not opts.propagation:
            return
        try:
            _propagate(tgt, opts.propagation)
        except MountError:
            _sys.umount2(tgt, _DETACH | _NOFOLLOW)
            raise
