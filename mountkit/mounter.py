"""Idempotent mount verbs over direct syscalls.

Every verb can be called again after it succeeded (a retried CSI request, a
restarted driver) and then does nothing; when something *else* is in the way
it raises :class:`~mountkit.errors.MountConflictError` naming both what is
there and what was asked.  Nothing here runs a helper binary: NFS mount data
comes from :mod:`mountkit.nfs`, binds use the new mount API where the kernel
has it, and "is this a mount point?" is one ``statx`` instead of a read of
the whole mount table.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple, NoReturn, Protocol

from mountkit import _sys, probe
from mountkit.errors import (
    CORRUPTED_ERRNOS,
    SOURCE,
    TARGET,
    CorruptedMountError,
    InvalidOptionError,
    MountConflictError,
    MountError,
    UnsupportedError,
    as_verb,
)
from mountkit.flags import (
    AT,
    AT_FDCWD,
    FSCONFIG,
    FSCONFIG_MAX_STRING,
    FSMOUNT_CLOEXEC,
    FSOPEN_CLOEXEC,
    FSPICK,
    MNT,
    MOUNT_ATTR,
    MOVE_MOUNT,
    MS,
    OPEN_TREE,
    PROBE_AT,
    PROPAGATION_MASK,
    RESOLVE,
    SB_FLAG_KEYS,
    ST_NOSYMFOLLOW,
    STATMOUNT,
    STATX,
)
from mountkit.options import ParsedOptions, parse_options
from mountkit.rules import NFS_FAMILY as _NFS_FAMILY
from mountkit.rules import classified as _classified
from mountkit.rules import describe as _describe
from mountkit.rules import mount_conflict as _mount_conflict
from mountkit.rules import remove_mountpoint_dir
from mountkit.safepath import fd_path, open_beneath

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mountkit._types import PathArg
    from mountkit.table import MountInfo, MountTable

# Plain ints, computed once: IntFlag arithmetic costs about a microsecond per operation.
#: statx flags of a probe: about the path itself, never triggering an automount or a server round trip
_PROBE_AT = int(PROBE_AT)
_SOURCE_AT = int(AT.NO_AUTOMOUNT | AT.STATX_DONT_SYNC)
_STATX_INO = int(STATX.INO)
_STATX_INO_MNT = int(STATX.INO | STATX.MNT_ID_UNIQUE)
_STATX_MNT_ID_UNIQUE = int(STATX.MNT_ID_UNIQUE)
_SM_BASIC = int(STATMOUNT.MNT_BASIC)
_CLONE = int(OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC)
_RECURSIVE = int(AT.RECURSIVE)
_EMPTY_PATH = int(AT.EMPTY_PATH)
_F_EMPTY_PATH = int(MOVE_MOUNT.F_EMPTY_PATH)
_T_EMPTY_PATH = int(MOVE_MOUNT.T_EMPTY_PATH)
_SET_FLAG = int(FSCONFIG.SET_FLAG)
_SET_STRING = int(FSCONFIG.SET_STRING)
_CMD_CREATE = int(FSCONFIG.CMD_CREATE)
_CMD_RECONFIGURE = int(FSCONFIG.CMD_RECONFIGURE)
_FSPICK = int(FSPICK.CLOEXEC | FSPICK.SYMLINK_NOFOLLOW | FSPICK.NO_AUTOMOUNT)
_SETATTR_AT = int(AT.SYMLINK_NOFOLLOW | AT.NO_AUTOMOUNT)
_RDONLY_ATTR = int(MOUNT_ATTR.RDONLY)
_O_PATH = os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW
_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_NO_XDEV = int(RESOLVE.NO_XDEV)
_NOFOLLOW = int(MNT.UMOUNT_NOFOLLOW)
_DETACH = int(MNT.DETACH)
_BIND = int(MS.BIND)
_BIND_REC = int(MS.BIND | MS.REC)
_BIND_REMOUNT = int(MS.REMOUNT | MS.BIND)

#: the per-mount flags (as opposed to superblock flags) mount(2) takes
_PER_MOUNT = (
    MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOSYMFOLLOW
    | MS.NOATIME | MS.NODIRATIME | MS.RELATIME | MS.STRICTATIME
)
#: statvfs f_flag bit -> mount flag, for the flags a legacy bind remount must restate (the kernel
#: keeps the atime mode by itself when none is given)
_STATVFS_FLAGS = (
    (os.ST_RDONLY, MS.RDONLY),
    (os.ST_NOSUID, MS.NOSUID),
    (os.ST_NODEV, MS.NODEV),
    (os.ST_NOEXEC, MS.NOEXEC),
    (ST_NOSYMFOLLOW, MS.NOSYMFOLLOW),
)
#: the mount(2) flags a new mount can say through fsconfig keys and fsmount attributes (MS_SILENT
#: only quietens the kernel log, which an fs context replaces); any other flag takes mount(2)
_FSCONFIG_FLAGS = _PER_MOUNT | MS.SILENT
for _flag, _ in SB_FLAG_KEYS:
    _FSCONFIG_FLAGS |= _flag
_NEW_API = "new mount API"
_NO_OPTIONS = ParsedOptions()


def _is_mountpoint(path: PathArg) -> bool:
    """The fast paths, cheapest first; missing paths are not mount points."""
    try:
        root = _sys.is_mount_root(path, _PROBE_AT)  # kernel >= 5.8: one statx, right for binds too
        if root is not None:
            return root
        return _crosses_mount(os.path.abspath(os.fsdecode(path)))
    except MountError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise _classified(exc) from None


def _crosses_mount(path: str) -> bool:
    """openat2(RESOLVE_NO_XDEV) from the parent (kernel >= 5.6), else the mount table."""
    parent, name = os.path.split(path)
    if not name:
        return True  # "/" is always a mount root
    try:
        pfd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise MountError(exc.errno or errno.EIO, "is_mountpoint", path) from None
    try:
        os.close(_sys.openat2(name, _O_PATH, _NO_XDEV, dfd=pfd))
        return False
    except UnsupportedError:
        from mountkit.table import find_mount

        return find_mount(os.path.join(os.path.realpath(parent), name)) is not None
    except MountError as exc:
        if exc.errno == errno.EXDEV:
            return True
        raise
    finally:
        os.close(pfd)


def is_mountpoint(path: PathArg, *, timeout: float | None = None) -> bool:
    """Is ``path`` itself the root of a mount (a symlink is never followed)?

    Answers without reading the mount table: statx's STATX_ATTR_MOUNT_ROOT
    (5.8+), else openat2 with RESOLVE_NO_XDEV from the parent (5.6+), else the
    table.  Unlike ``os.path.ismount`` and ``st_dev`` comparison it is right for
    a bind mount within one filesystem.  A missing path is not a mount point.
    Raises CorruptedMountError when the filesystem is stale or disconnected, or
    (with ``timeout``) does not answer in time; the probe then runs on a thread
    that can be abandoned (see :mod:`mountkit.probe`).
    """
    if timeout is None:
        return _is_mountpoint(path)
    root = _probe(_sys.PROBE_MOUNT_ROOT, path, timeout, "is_mountpoint")
    if root is not None:
        return root
    return probe.run_with_deadline(lambda: _is_mountpoint(path), timeout, "is_mountpoint", os.fsdecode(path))


def _probe(op: int, path: PathArg, timeout: float, operation: str) -> bool | None:
    """:func:`mountkit._sys.probe` of ``path``; a missing path is no mount root, a dead one corrupted."""
    try:
        return _sys.probe(op, path, _PROBE_AT, timeout, operation)
    except MountError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise _classified(exc) from None


class _Spot(NamedTuple):
    """Where a verb acts: ``(dfd, path)`` for the *at syscalls, ``name`` for mount(2)."""

    dfd: int
    path: str
    name: str


@contextmanager
def _spot(path: str, beneath: PathArg | None) -> Iterator[_Spot]:
    """``path`` by name, or (``beneath`` given) pinned as an O_PATH descriptor resolved without symlinks."""
    if beneath is None:
        yield _Spot(AT_FDCWD, path, path)
        return
    fd = open_beneath(os.fsdecode(beneath), path)
    try:
        yield _Spot(fd, "", fd_path(fd))
    finally:
        os.close(fd)


@contextmanager
def _as_verb(verb: str, source: str | None, target: str, *, new_fs: bool = False, nfs: bool = False) -> Iterator[None]:
    """Any error of the block reads as ``verb``'s (:func:`mountkit.errors.as_verb`), naming the source
    and the target as asked (not ``/proc/self/fd/N``) and, where a syscall took both, which is missing."""
    try:
        yield
    except MountError as exc:
        guess = _missing(exc, source, target, new_fs) if exc.role is None and source is not None else None
        raise as_verb(exc, verb, source, target, guess=guess, nfs=nfs) from None


def _missing(exc: MountError, source: str, target: str, new_fs: bool) -> str | None:
    """Which of the two paths ENOENT/ENOTDIR was about, looked at after the fact (only for the message).

    ``new_fs``: ``source`` is not a path here (a new filesystem's source), so with the target
    present the kernel's ENOENT is about the source (an NFS export the server does not have).
    """
    if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
        return None
    for role, path in ((TARGET, target),) if new_fs else ((SOURCE, source), (TARGET, target)):
        try:
            os.stat(path)
        except OSError:
            return role
    return SOURCE if new_fs and exc.errno == errno.ENOENT else None


def _spot_is_mountpoint(spot: _Spot) -> bool:
    """:func:`_is_mountpoint` of a pinned spot (one statx of the descriptor), by name before 5.8."""
    if spot.dfd == AT_FDCWD:
        return _is_mountpoint(spot.path)
    try:
        root = _sys.is_mount_root("", _PROBE_AT | _EMPTY_PATH, dfd=spot.dfd)
    except MountError as exc:
        raise _classified(exc) from None
    return _crosses_mount(os.readlink(spot.name)) if root is None else root


def _current_flags(path: str) -> MS:
    """The per-mount flags in force at ``path`` (statvfs reports them), for a legacy bind remount."""
    try:
        f_flag = os.statvfs(path).f_flag
    except OSError as exc:
        raise _classified(MountError(exc.errno or errno.EIO, "statvfs", path)) from None
    current = MS(0)
    for bit, flag in _STATVFS_FLAGS:
        if f_flag & bit:
            current |= flag
    return current


def _restated(path: str, opts: ParsedOptions, extra: int = 0) -> int:
    """The full per-mount flag set for MS_REMOUNT, which replaces rather than amends: current ± options."""
    return int(((_current_flags(path) | opts.flags | extra) & ~opts.clear) & _PER_MOUNT)


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
    from mountkit.table import find_mount

    info = find_mount(os.path.realpath(tgt))
    return None if info is None else info.readonly


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


@contextmanager
def _pinned(spot: _Spot) -> Iterator[_Spot]:
    """``spot`` as a descriptor: a by-name target is opened first (following a symlink, as mount(2)
    does), so a missing target fails before a filesystem (perhaps a network round trip) is made."""
    if spot.dfd != AT_FDCWD:
        yield spot
        return
    try:
        fd = os.open(spot.path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise MountError(exc.errno or errno.EIO, "open", spot.path, None, None, TARGET) from None
    try:
        yield _Spot(fd, "", spot.path)
    finally:
        os.close(fd)


def _fs_context_mount(src: str, kind: str, opts: ParsedOptions, words: tuple[str, ...], at: _Spot) -> None:
    """fsopen; the source, superblock flags and each option one fsconfig call; create; fsmount with the
    per-mount attributes; move_mount onto the pinned ``at``.  Errors name the step that refused."""
    try:
        fd = _sys.fsopen(kind, FSOPEN_CLOEXEC)
    except MountError as exc:  # ENODEV: no filesystem type of that name (module not loaded)
        exc.step = f"fsopen {kind} ({_NEW_API})"
        raise
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


def _propagate(tgt: str, flags: MS) -> None:
    """Set the propagation type in ``flags`` (with MS_REC: on the whole subtree) of the mount at ``tgt``.

    mount_setattr's propagation field (5.12+), without following a symlink;
    else mount(2) with the MS_* flags.
    """
    at = _SETATTR_AT | (_RECURSIVE if MS.REC in flags else 0)
    try:
        _sys.mount_setattr(AT_FDCWD, tgt, at, 0, 0, int(flags & PROPAGATION_MASK))
    except UnsupportedError:
        _sys.mount(None, tgt, None, int(flags), None)


class MountInterface(Protocol):
    """What :class:`Mounter` and :class:`~mountkit.fake.FakeMounter` both offer, for type hints."""

    def mount(
        self, source: str, target: PathArg, fstype: str, options: Iterable[str] | str = (),
        sensitive_options: Iterable[str] = (), *, beneath: PathArg | None = None,
    ) -> None: ...
    def bind(
        self, source: PathArg, target: PathArg, *, readonly: bool = False, recursive: bool = False,
        options: Iterable[str] | str = (), beneath: PathArg | None = None,
    ) -> None: ...
    def rbind(
        self, source: PathArg, target: PathArg, *, readonly: bool = False, options: Iterable[str] | str = (),
        beneath: PathArg | None = None,
    ) -> None: ...
    def move(self, source: PathArg, target: PathArg) -> None: ...
    def remount(self, target: PathArg, options: Iterable[str] | str) -> None: ...
    def make_private(self, path: PathArg, *, recursive: bool = False) -> None: ...
    def make_shared(self, path: PathArg, *, recursive: bool = False) -> None: ...
    def make_slave(self, path: PathArg, *, recursive: bool = False) -> None: ...
    def make_unbindable(self, path: PathArg, *, recursive: bool = False) -> None: ...
    def unmount(
        self, target: PathArg, *, lazy: bool = False, force: bool = False, recursive: bool = False,
        timeout: float | None = None,
    ) -> None: ...
    def cleanup_mountpoint(
        self, path: PathArg, *, lazy: bool = False, force: bool = False, timeout: float | None = None
    ) -> None: ...
    def is_mountpoint(self, path: PathArg) -> bool: ...
    def check(self, path: PathArg) -> None: ...
    def is_live_mountpoint(self, path: PathArg) -> bool: ...
    def refs(self, path: PathArg) -> list[str]: ...
    def list(self) -> MountTable: ...


#: how long :meth:`Mounter.refs` waits for the path before answering from the whole table
REFS_PROBE_TIMEOUT = 0.5


class Mounter:
    """The kernel-backed mount engine; every verb is idempotent (see each docstring).

    ``probe_timeout`` bounds :meth:`is_mountpoint` and :meth:`check`, the calls
    a caller makes on a mount that may be dead (:meth:`refs` waits less: it has
    an answer that does not touch the path).
    """

    def __init__(self, *, probe_timeout: float = 10.0) -> None:
        self.probe_timeout = probe_timeout

    def mount(
        self,
        source: str,
        target: PathArg,
        fstype: str,
        options: Iterable[str] | str = (),
        sensitive_options: Iterable[str] = (),
        *,
        beneath: PathArg | None = None,
    ) -> None:
        """Mount ``source`` (of type ``fstype``) on ``target``.

        ``options`` are mount(8) words; ``sensitive_options`` reach the kernel
        and nothing else.  ``nfs``/``nfs4`` data is built by
        :func:`mountkit.nfs.build_mount` (no mount.nfs helper).
        Where the kernel has fsopen (5.2), each option is its own fsconfig
        call, so no option can smuggle in another through a comma, and a
        refusal carries the kernel's message (``tmpfs: Unknown parameter
        'bogus'``); else mount(2) with a data string, which the error then names.
        Already done — ``target`` is the root of a mount of the same source and
        filesystem family (nfs ≡ nfs4), compared as the kernel shows them, with
        the same read-only state (and NFS version): no-op.  Something else
        mounted there, or the same made otherwise: MountConflictError naming
        both (:func:`mountkit.rules.mount_conflict`).
        With ``beneath``, ``target`` is resolved beneath that directory without
        following any symlink (:func:`mountkit.safepath.open_beneath`) and the
        mount is made onto the resolved descriptor, so swapping a component for
        a symlink meanwhile cannot move the mount elsewhere (a symlink on the
        way: MountError(ELOOP)).
        """
        tgt = os.fsdecode(target)
        with _as_verb("mount", source, tgt, new_fs=True, nfs=fstype in _NFS_FAMILY):
            opts = parse_options(options, sensitive_options)
            if opts.flags & (MS.BIND | MS.REMOUNT | MS.MOVE):
                raise InvalidOptionError("mount", "bind, remount and move have verbs of their own", tgt)
            if fstype in _NFS_FAMILY:
                from mountkit.nfs import build_mount

                spec = build_mount(source, opts.data)  # secrets stay out of its error messages
                src, kind = spec.source, spec.fstype
                words = tuple(spec.data.split(","))  # its words are validated: none holds a comma
            else:
                src, kind, words = source, fstype, opts.data
            with _spot(tgt, beneath) as spot:
                if _spot_is_mountpoint(spot):
                    info = self._entry(tgt)
                    same = info is not None and _same_source(info.source, src)
                    conflict = _mount_conflict(info, tgt, kind, src, MS.RDONLY in opts.flags, words, same)
                    if conflict is None:
                        return
                    raise conflict
                _new_mount(src, kind, opts, words, spot)
            self._set_propagation(tgt, opts)

    def bind(
        self,
        source: PathArg,
        target: PathArg,
        *,
        readonly: bool = False,
        recursive: bool = False,
        options: Iterable[str] | str = (),
        beneath: PathArg | None = None,
    ) -> None:
        """Bind ``source`` onto ``target`` (with its child mounts when ``recursive``).

        A read-only bind is never visible writable at ``target``: the detached
        clone is made read-only before it is attached (open_tree +
        mount_setattr + move_mount, recursively with ``recursive``).  Kernels
        without that API get MS_BIND + MS_REMOUNT|MS_BIND|MS_RDONLY at a hidden
        staging sibling, then a bind of that onto ``target`` (only the top mount
        is read-only there, and the staging sibling is briefly writable).
        Already done — ``target`` is a mount root showing the same inode as
        ``source`` with the asked read-only state: no-op.  Another mount there,
        or the other read-only state: MountConflictError.
        With ``beneath``, both ``source`` and ``target`` are resolved beneath it
        without following symlinks and the bind goes descriptor to descriptor
        (see :meth:`mount`), the staging sibling of the legacy path included.
        Errors read ``bind <source> -> <target>: ...``, naming the path an errno is about.
        """
        self._bind("bind", source, target, readonly, recursive, options, beneath)

    def _bind(
        self, verb: str, source: PathArg, target: PathArg, readonly: bool, recursive: bool,
        options: Iterable[str] | str, beneath: PathArg | None,
    ) -> None:
        """:meth:`bind`, its errors named after ``verb`` (bind or rbind, as the caller called it)."""
        with _as_verb(verb, os.fsdecode(source), os.fsdecode(target)):
            self._bind_as(source, target, readonly, recursive, options, beneath)

    def _bind_as(
        self, source: PathArg, target: PathArg, readonly: bool, recursive: bool, options: Iterable[str] | str,
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
        with _spot(tgt, beneath) as spot, _spot(src_name, beneath) as src:
            if beneath is not None and self._already_bound(spot, src, source, tgt, readonly):
                return
            attr_set, attr_clr = opts.mount_attr() if opts is not _NO_OPTIONS else (0, 0)
            if readonly:
                attr_set |= _RDONLY_ATTR
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
        src: _Spot, spot: _Spot, tgt: str, beneath: PathArg | None, recursive: bool, opts: ParsedOptions,
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
                spot.dfd, spot.path, _PROBE_AT | (0 if spot.path else _EMPTY_PATH),
                src.dfd, src.path, _SOURCE_AT | (0 if src.path else _EMPTY_PATH),
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
            errno.EBUSY, "bind", os.fsdecode(source), tgt, f"{_describe(info)} is mounted there; asked for {asked}"
        )

    def remount(self, target: PathArg, options: Iterable[str] | str) -> None:
        """Change the options of the mount at ``target``.

        Per-mount flags (ro, nosuid, noatime, ...) go through mount_setattr
        (else a MS_REMOUNT|MS_BIND restating the current flags); filesystem data
        options through fspick + one fsconfig each + FSCONFIG_CMD_RECONFIGURE,
        which leaves the superblock flags alone (else a MS_REMOUNT of the
        superblock restating the per-mount flags).  Idempotent by nature:
        asking for the options already in force changes nothing.  Not a mount
        point: MountError(EINVAL) naming it.
        """
        tgt = os.fsdecode(target)
        with _as_verb("remount", None, tgt):
            if not _is_mountpoint(tgt):
                raise MountError(errno.EINVAL, "remount", tgt, None, "not a mount point")
            opts = parse_options(options)
            why = _reconfigure(tgt, opts) if opts.data or opts.sensitive else None
            if why is not None:
                try:
                    _sys.mount(None, tgt, None, int(MS.REMOUNT) | _restated(tgt, opts), opts.data_string())
                except MountError as exc:
                    exc.step = f"mount(2) MS_REMOUNT with a data string ({why})"
                    raise
            elif (opts.flags | opts.clear) & _PER_MOUNT:
                attr_set, attr_clr = opts.mount_attr()
                try:
                    _sys.mount_setattr(AT_FDCWD, tgt, _SETATTR_AT, attr_set, attr_clr)
                except UnsupportedError:
                    _sys.mount(None, tgt, None, _BIND_REMOUNT | _restated(tgt, opts), None)
            if opts.propagation:
                _propagate(tgt, opts.propagation)

    def make_private(self, path: PathArg, *, recursive: bool = False) -> None:
        """Make the mount at ``path`` private (``recursive``: every mount below it too); see :meth:`_make`."""
        self._make(path, MS.PRIVATE, recursive, "make_private")

    def make_shared(self, path: PathArg, *, recursive: bool = False) -> None:
        """Make the mount at ``path`` shared, a peer group of its own; see :meth:`_make`."""
        self._make(path, MS.SHARED, recursive, "make_shared")

    def make_slave(self, path: PathArg, *, recursive: bool = False) -> None:
        """Make the mount at ``path`` a slave of its peer group (private if it had none); see :meth:`_make`."""
        self._make(path, MS.SLAVE, recursive, "make_slave")

    def make_unbindable(self, path: PathArg, *, recursive: bool = False) -> None:
        """Make the mount at ``path`` unbindable (private, and never the source of a bind); see :meth:`_make`."""
        self._make(path, MS.UNBINDABLE, recursive, "make_unbindable")

    @staticmethod
    def _make(path: PathArg, kind: MS, recursive: bool, verb: str) -> None:
        """Set one propagation type: mount_setattr (5.12+, no symlink followed), else mount(2) MS_*.

        Idempotent by nature: a mount already of that type stays so (a shared
        one keeps its peer group).  ``path`` not a mount point (or missing):
        MountError(EINVAL) naming it.
        """
        tgt = os.fsdecode(path)
        if not _is_mountpoint(tgt):
            raise MountError(errno.EINVAL, verb, tgt, None, "not a mount point")
        _propagate(tgt, kind | MS.REC if recursive else kind)

    def rbind(
        self,
        source: PathArg,
        target: PathArg,
        *,
        readonly: bool = False,
        options: Iterable[str] | str = (),
        beneath: PathArg | None = None,
    ) -> None:
        """:meth:`bind` of ``source`` with every mount below it (``mount --rbind``); same idempotency."""
        self._bind("rbind", source, target, readonly, True, options, beneath)

    def move(self, source: PathArg, target: PathArg) -> None:
        """Move the mount at ``source``, with the mounts below it, to ``target`` (``mount --move``).

        move_mount (5.2+) without following symlinks, else MS_MOVE.  Already
        done — nothing mounted at ``source`` and a mount at ``target``: no-op
        (which mount it is cannot be told; a retry after a move that succeeded
        is the case this serves).  Nothing at either: MountError(EINVAL).
        Mounts at both: MountConflictError, nothing moved.  The kernel refuses
        (EINVAL) a move out of a shared parent mount.
        """
        src, tgt = os.fsdecode(source), os.fsdecode(target)
        with _as_verb("move", src, tgt):
            at_tgt = _is_mountpoint(tgt)
            if not _is_mountpoint(src):
                if at_tgt:
                    return
                raise MountError(errno.EINVAL, "move", src, tgt, "nothing is mounted at the source", SOURCE)
            if at_tgt:
                raise MountConflictError(
                    errno.EBUSY, "move", src, tgt, f"{_describe(self._entry(tgt))} is mounted there already", TARGET
                )
            try:
                _sys.move_mount(AT_FDCWD, src, AT_FDCWD, tgt, 0)
            except UnsupportedError:
                _sys.mount(src, tgt, None, int(MS.MOVE), None)

    def unmount(
        self, target: PathArg, *, lazy: bool = False, force: bool = False, recursive: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Unmount everything mounted at ``target`` (every stacked mount), never following a symlink.

        Already done — nothing mounted there, or ``target`` missing: success.
        Busy: MountError(EBUSY) naming the path (``lazy`` detaches instead).  A
        stale or disconnected mount is still unmounted (detached when a plain
        unmount fails).  ``recursive`` first unmounts every mount point below
        ``target``, deepest first (a mount hidden under another one at the same
        path cannot be reached by name: it leaves ``target`` busy unless ``lazy``).
        With ``timeout``, the unmount runs on a probe worker (see
        :mod:`mountkit.probe`) and no answer within it raises
        CorruptedMountError(ETIMEDOUT), without a second try.
        """
        tgt = os.fsdecode(target)
        if recursive:
            for point in _points_below(tgt):  # an error names the mount below that refused
                self.unmount(point, lazy=lazy, force=force, timeout=timeout)
        with _as_verb("unmount", None, tgt):
            self._unmount(tgt, lazy, force, timeout)

    @staticmethod
    def _unmount(tgt: str, lazy: bool, force: bool, timeout: float | None) -> None:
        flags = _NOFOLLOW | (_DETACH if lazy else 0) | (int(MNT.FORCE) if force else 0)
        while True:
            try:
                if timeout is None:
                    _sys.unmount(tgt, flags)
                else:
                    _sys.probe(_sys.PROBE_UNMOUNT, tgt, flags, timeout, "unmount")
                return
            except CorruptedMountError:
                raise  # the probe timed out: a detach would wait on the same path
            except MountError as exc:
                if exc.errno not in CORRUPTED_ERRNOS or flags & _DETACH:
                    raise _classified(exc) from None
                flags |= _DETACH

    def cleanup_mountpoint(
        self, path: PathArg, *, lazy: bool = False, force: bool = False, timeout: float | None = None
    ) -> None:
        """Unmount ``path``, then remove it if it is an empty directory; never delete contents.

        Already done — ``path`` missing: success.  A directory with anything
        left in it: MountError(ENOTEMPTY) naming it, contents untouched.  Not a
        directory: MountError(ENOTDIR).  ``timeout`` bounds the unmount as in
        :meth:`unmount`; the rmdir looks the name up in its parent and never
        enters what was mounted there, so it needs no deadline.
        """
        name = os.fsdecode(path)
        self.unmount(name, lazy=lazy, force=force, timeout=timeout)
        remove_mountpoint_dir(name)

    def is_mountpoint(self, path: PathArg) -> bool:
        """Module-level :func:`is_mountpoint`, bounded by ``probe_timeout``."""
        return is_mountpoint(path, timeout=self.probe_timeout)

    def check(self, path: PathArg) -> None:
        """Raise CorruptedMountError if the filesystem at ``path`` is dead or does not answer in time.

        It asks the filesystem for its statistics (an NFS FSSTAT round trip),
        on an abandonable worker.  A missing path: MountError(ENOENT).
        """
        try:
            _sys.probe(_sys.PROBE_STATFS, path, 0, self.probe_timeout, "check")
        except CorruptedMountError:
            raise
        except MountError as exc:
            raise _classified(MountError(exc.errno or errno.EIO, "check", exc.filename)) from None

    def is_live_mountpoint(self, path: PathArg) -> bool:
        """:meth:`is_mountpoint`, and for a mount point :meth:`check` too, in one bounded probe.

        True: a mount root whose filesystem answers statfs.  False: nothing is
        mounted there (or ``path`` is missing).  Dead, or no answer within
        ``probe_timeout``: CorruptedMountError.
        """
        live = _probe(_sys.PROBE_LIVE_ROOT, path, self.probe_timeout, "is_mountpoint")
        if live is not None:
            return live
        if not self.is_mountpoint(path):  # a kernel before 5.8: the slower ways, then the check
            return False
        self.check(path)
        return True

    def refs(self, path: PathArg) -> list[str]:
        """Other mount points showing the same filesystem and root as the mount at ``path``.

        Where the kernel can pick a filesystem's mounts (:meth:`MountTable.read_dev`, 6.8+) only
        those are read, once the mount at ``path`` is found by a statx given at most
        :data:`REFS_PROBE_TIMEOUT` (the path may be on a dead share); else, with nothing visible
        at ``path``, no answer from it, or a statmount refused, the whole table, which never
        touches the path.
        """
        from mountkit.table import MountTable, find_mount

        name = os.fsdecode(path)
        if _sys.supported("statmount"):
            try:
                top = probe.run_with_deadline(
                    lambda: find_mount(name), min(self.probe_timeout, REFS_PROBE_TIMEOUT), "refs", name
                )
                if top is not None:
                    return MountTable.read_dev(top.major, top.minor).refs_of(top)
            except MountError:  # no answer in time, unsupported, or a statmount refused
                pass
        return MountTable.read().refs(name)

    def list(self) -> MountTable:
        """This process's mount table."""
        from mountkit.table import MountTable

        return MountTable.read()

    @staticmethod
    def _entry(tgt: str) -> MountInfo | None:
        from mountkit.table import find_mount

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


def _points_below(path: str) -> list[str]:
    """The mount points strictly below ``path`` (its last component not resolved), deepest first."""
    from mountkit.table import MountTable

    parent, name = os.path.split(os.path.abspath(path))
    top = os.path.join(os.path.realpath(parent), name)
    points = {e.mount_point for e in MountTable.read().under(top)} - {top}
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def _same_source(shown: str, asked: str) -> bool:
    """The kernel shows the source as given; a path source may have been given through a symlink."""
    return shown == asked or (asked.startswith("/") and os.path.realpath(asked) == shown)
