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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple, Protocol

from mountkit import _sys, probe
from mountkit.errors import (
    CORRUPTED_ERRNOS,
    CorruptedMountError,
    InvalidOptionError,
    MountConflictError,
    MountError,
    UnsupportedError,
)
from mountkit.flags import (
    AT,
    AT_FDCWD,
    MNT,
    MOUNT_ATTR,
    MOVE_MOUNT,
    MS,
    OPEN_TREE,
    RESOLVE,
    STATMOUNT,
    STATX,
)
from mountkit.options import ParsedOptions, parse_options
from mountkit.safepath import fd_path, open_beneath

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mountkit._sys import PathArg
    from mountkit.table import MountInfo, MountTable

# Plain ints, computed once: IntFlag arithmetic costs about a microsecond per operation.
#: statx flags of a probe: about the path itself, never triggering an automount or a server round trip
_PROBE_AT = int(AT.SYMLINK_NOFOLLOW | AT.NO_AUTOMOUNT | AT.STATX_DONT_SYNC)
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
_SETATTR_AT = int(AT.SYMLINK_NOFOLLOW | AT.NO_AUTOMOUNT)
_RDONLY_ATTR = int(MOUNT_ATTR.RDONLY)
_O_PATH = os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW
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
_ST_NOSYMFOLLOW = 0x2000
_STATVFS_FLAGS = (
    (os.ST_RDONLY, MS.RDONLY),
    (os.ST_NOSUID, MS.NOSUID),
    (os.ST_NODEV, MS.NODEV),
    (os.ST_NOEXEC, MS.NOEXEC),
    (_ST_NOSYMFOLLOW, MS.NOSYMFOLLOW),
)
_NFS_FAMILY = frozenset({"nfs", "nfs4"})
_NO_OPTIONS = ParsedOptions()
#: umount2 errnos that mean "nothing (more) is mounted here"
_NOT_MOUNTED = frozenset({errno.EINVAL, errno.ENOENT, errno.ENOTDIR})


def _classified(exc: MountError) -> MountError:
    """``exc`` as a CorruptedMountError when its errno says the filesystem is dead."""
    if exc.errno in CORRUPTED_ERRNOS and not isinstance(exc, CorruptedMountError):
        return CorruptedMountError(exc.errno, exc.operation, exc.filename, exc.filename2, exc.detail)
    return exc


def _fs_family(fstype: str) -> str:
    return "nfs" if fstype in _NFS_FAMILY else fstype


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
    return probe.run_with_deadline(lambda: _is_mountpoint(path), timeout, "is_mountpoint", os.fsdecode(path))


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
def _named(spot: _Spot, tgt: str) -> Iterator[None]:
    """Errors about a pinned spot name the path asked for, not ``/proc/self/fd/N``."""
    try:
        yield
    except MountError as exc:
        if spot.dfd != AT_FDCWD:
            exc.filename = tgt
        raise


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


def remove_mountpoint_dir(name: str) -> None:
    """rmdir ``name`` (never its contents; the kernel refuses a mount point); missing is success."""
    try:
        os.rmdir(name)
    except FileNotFoundError:
        return
    except OSError as exc:
        err = exc.errno or errno.EIO
        detail = "not empty; its contents were left in place" if err == errno.ENOTEMPTY else None
        raise _classified(MountError(err, "cleanup", name, None, detail)) from None


def _mount_readonly(tgt: str, st: _sys.Statx) -> bool | None:
    """Is the mount at ``tgt`` read-only: statmount's attributes (6.8+), else its table entry."""
    if st.mask & _STATX_MNT_ID_UNIQUE:
        try:
            return bool(_sys.statmount(st.mnt_id, _SM_BASIC).mnt_attr & _RDONLY_ATTR)
        except UnsupportedError:
            pass
    from mountkit.table import find_mount

    info = find_mount(os.path.realpath(tgt))
    return None if info is None else info.readonly


def _describe(info: MountInfo | None) -> str:
    if info is None:
        return "another mount"
    mode = "ro" if info.readonly else "rw"
    return f"{info.fs_type} {info.source!r} (root {info.root!r}, {mode})"


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
    def remount(self, target: PathArg, options: Iterable[str] | str) -> None: ...
    def unmount(self, target: PathArg, *, lazy: bool = False, force: bool = False) -> None: ...
    def cleanup_mountpoint(self, path: PathArg, *, lazy: bool = False, force: bool = False) -> None: ...
    def is_mountpoint(self, path: PathArg) -> bool: ...
    def check(self, path: PathArg) -> None: ...
    def refs(self, path: PathArg) -> list[str]: ...
    def list(self) -> MountTable: ...


class Mounter:
    """The kernel-backed mount engine; every verb is idempotent (see each docstring).

    ``probe_timeout`` bounds :meth:`is_mountpoint` and :meth:`check`, the calls
    a caller makes on a mount that may be dead.
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
        Already done — ``target`` is the root of a mount of the same source and
        filesystem family (nfs ≡ nfs4), compared as the kernel shows them: no-op.
        Something else mounted there: MountConflictError naming both.
        With ``beneath``, ``target`` is resolved beneath that directory without
        following any symlink (:func:`mountkit.safepath.open_beneath`) and the
        mount is made onto the resolved descriptor, so swapping a component for
        a symlink meanwhile cannot move the mount elsewhere (a symlink on the
        way: MountError(ELOOP)).
        """
        tgt = os.fsdecode(target)
        opts = parse_options(options, sensitive_options)
        if opts.flags & (MS.BIND | MS.REMOUNT | MS.MOVE):
            raise InvalidOptionError("mount", "bind, remount and move have verbs of their own", tgt)
        if fstype in _NFS_FAMILY:
            from mountkit.nfs import build_mount

            spec = build_mount(source, opts.data)  # secrets stay out of its error messages
            src, kind = spec.source, spec.fstype
            data: str | None = ",".join((spec.data, *opts.sensitive))
        else:
            src, kind = source, fstype
            data = opts.data_string()
        with _spot(tgt, beneath) as spot:
            if _spot_is_mountpoint(spot):
                info = self._entry(tgt)
                if info is not None and _fs_family(info.fs_type) == _fs_family(kind) and _same_source(info.source, src):
                    return
                raise MountConflictError(
                    errno.EBUSY, "mount", tgt, None, f"{_describe(info)} is mounted there; asked for {kind} {src!r}"
                )
            with _named(spot, tgt):
                _sys.mount(src, spot.name, kind, int(opts.flags), data)
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
        (see :meth:`mount`); before open_tree (5.2) a read-only bind is
        remounted read-only at ``target`` re-resolved, and refused with
        MountError(EAGAIN) if that no longer shows ``source``.
        """
        tgt = os.fsdecode(target)
        opts = parse_options(options) if options else _NO_OPTIONS
        if opts.data or opts.sensitive:
            raise InvalidOptionError("bind", "filesystem data options do not apply to a bind mount", tgt)
        readonly = readonly or bool(opts.flags & MS.RDONLY)
        with _spot(tgt, beneath) as spot, _spot(os.fsdecode(source), beneath) as src, _named(spot, tgt):
            if _spot_is_mountpoint(spot):
                self._check_same_bind(source, tgt, readonly)
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
                    if beneath is None:
                        self._bind_legacy(source, tgt, recursive, opts, readonly)
                    else:
                        self._bind_legacy_beneath(src, spot, tgt, beneath, recursive, opts, readonly)
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
    def _bind_legacy_beneath(
        src: _Spot, spot: _Spot, tgt: str, beneath: PathArg, recursive: bool, opts: ParsedOptions, readonly: bool
    ) -> None:
        """:meth:`_bind_legacy` descriptor to descriptor: flags set at a pinned staging dir, then bound on.

        The staging directory is made (randomly named) in the target's parent, resolved beneath the
        root, and only ever reached through descriptors of that parent.
        """
        how = _BIND_REC if recursive else _BIND
        if not (readonly or (opts.flags | opts.clear) & _PER_MOUNT):
            _sys.mount(src.name, spot.name, None, how, None)
            return
        pfd = open_beneath(os.fsdecode(beneath), os.path.dirname(tgt))
        name = f".mountkit-bind-{os.urandom(6).hex()}"
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
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
            os.rmdir(name, dir_fd=pfd)
            os.close(pfd)

    @staticmethod
    def _bind_legacy(source: PathArg, tgt: str, recursive: bool, opts: ParsedOptions, readonly: bool) -> None:
        """MS_BIND; with per-mount flags, by way of a staging point so the target is never writable.

        mount(2) ignores MS_RDONLY with MS_BIND, so the flags need a second
        MS_REMOUNT|MS_BIND call; doing that at a fresh, randomly named sibling of
        the target and then binding the staging mount onto the target (a bind
        copies the per-mount flags of the mount it clones) keeps the window off
        the target.
        """
        how = _BIND_REC if recursive else _BIND
        if not (readonly or (opts.flags | opts.clear) & _PER_MOUNT):
            _sys.mount(source, tgt, None, how, None)
            return
        parent = os.path.dirname(tgt) or "."
        if os.path.isdir(source):
            staging = tempfile.mkdtemp(prefix=".mountkit-bind-", dir=parent)
        else:
            fd, staging = tempfile.mkstemp(prefix=".mountkit-bind-", dir=parent)
            os.close(fd)
        try:
            _sys.mount(source, staging, None, how, None)
            try:
                flags = _restated(staging, opts, int(MS.RDONLY) if readonly else 0)
                _sys.mount(None, staging, None, _BIND_REMOUNT | flags, None)
                _sys.mount(staging, tgt, None, how, None)
            finally:
                _sys.umount2(staging, _DETACH | _NOFOLLOW)
        finally:
            (os.rmdir if os.path.isdir(staging) else os.unlink)(staging)

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
        info = self._entry(tgt)
        asked = f"a {'read-only' if readonly else 'read-write'} bind of {os.fsdecode(source)!r}"
        raise MountConflictError(errno.EBUSY, "bind", tgt, None, f"{_describe(info)} is mounted there; asked for {asked}")

    def remount(self, target: PathArg, options: Iterable[str] | str) -> None:
        """Change the options of the mount at ``target``.

        Per-mount flags (ro, nosuid, noatime, ...) go through mount_setattr
        (else a MS_REMOUNT|MS_BIND restating the current flags); filesystem data
        options through a MS_REMOUNT of the superblock.  Idempotent by nature:
        asking for the options already in force changes nothing.  Not a mount
        point: MountError(EINVAL) naming it.
        """
        tgt = os.fsdecode(target)
        if not _is_mountpoint(tgt):
            raise MountError(errno.EINVAL, "remount", tgt, None, "not a mount point")
        opts = parse_options(options)
        if opts.data or opts.sensitive:
            _sys.mount(None, tgt, None, int(MS.REMOUNT) | _restated(tgt, opts), opts.data_string())
        elif (opts.flags | opts.clear) & _PER_MOUNT:
            attr_set, attr_clr = opts.mount_attr()
            try:
                _sys.mount_setattr(AT_FDCWD, tgt, _SETATTR_AT, attr_set, attr_clr)
            except UnsupportedError:
                _sys.mount(None, tgt, None, _BIND_REMOUNT | _restated(tgt, opts), None)
        if opts.propagation:
            _sys.mount(None, tgt, None, int(opts.propagation), None)

    def unmount(self, target: PathArg, *, lazy: bool = False, force: bool = False) -> None:
        """Unmount everything mounted at ``target`` (every stacked mount), never following a symlink.

        Already done — nothing mounted there, or ``target`` missing: success.
        Busy: MountError(EBUSY) naming the path (``lazy`` detaches instead).  A
        stale or disconnected mount is still unmounted (detached when a plain
        unmount fails).
        """
        tgt = os.fsdecode(target)
        flags = _NOFOLLOW | (_DETACH if lazy else 0) | (int(MNT.FORCE) if force else 0)
        while True:  # umount2 says EINVAL once no mount is left at the point
            try:
                _sys.umount2(tgt, flags)
            except MountError as exc:
                if exc.errno in _NOT_MOUNTED:
                    return
                if exc.errno not in CORRUPTED_ERRNOS or flags & _DETACH:
                    raise _classified(exc) from None
                flags |= _DETACH

    def cleanup_mountpoint(self, path: PathArg, *, lazy: bool = False, force: bool = False) -> None:
        """Unmount ``path``, then remove it if it is an empty directory; never delete contents.

        Already done — ``path`` missing: success.  A directory with anything
        left in it: MountError(ENOTEMPTY) naming it, contents untouched.  Not a
        directory: MountError(ENOTDIR).
        """
        name = os.fsdecode(path)
        self.unmount(name, lazy=lazy, force=force)
        remove_mountpoint_dir(name)

    def is_mountpoint(self, path: PathArg) -> bool:
        """Module-level :func:`is_mountpoint`, bounded by ``probe_timeout``."""
        return is_mountpoint(path, timeout=self.probe_timeout)

    def check(self, path: PathArg) -> None:
        """Raise CorruptedMountError if the filesystem at ``path`` is dead or does not answer in time.

        It asks the filesystem for its statistics (an NFS FSSTAT round trip),
        on an abandonable thread.  A missing path: MountError(ENOENT).
        """
        name = os.fsdecode(path)

        def statfs() -> None:
            try:
                os.statvfs(name)
            except OSError as exc:
                raise _classified(MountError(exc.errno or errno.EIO, "check", name)) from None

        probe.run_with_deadline(statfs, self.probe_timeout, "check", name)

    def refs(self, path: PathArg) -> list[str]:
        """Other mount points showing the same filesystem and root as the mount at ``path``."""
        from mountkit.table import MountTable

        return MountTable.read().refs(os.fsdecode(path))

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
            _sys.mount(None, tgt, None, int(opts.propagation), None)
        except MountError:
            _sys.umount2(tgt, _DETACH | _NOFOLLOW)
            raise


def _same_source(shown: str, asked: str) -> bool:
    """The kernel shows the source as given; a path source may have been given through a symlink."""
    return shown == asked or (asked.startswith("/") and os.path.realpath(asked) == shown)
