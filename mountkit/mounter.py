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
from typing import TYPE_CHECKING

from mountkit import _sys, probe
from mountkit._bits import _BIND_REMOUNT, _DETACH, _NOFOLLOW, _PER_MOUNT, _SETATTR_AT
from mountkit.asverb import _as_verb
from mountkit.bind import Binder
from mountkit.errors import (
    CORRUPTED_ERRNOS,
    SOURCE,
    TARGET,
    CorruptedMountError,
    InvalidOptionError,
    MountConflictError,
    MountError,
    UnsupportedError,
)
from mountkit.flags import AT_FDCWD, MNT, MS
from mountkit.fscontext import _new_mount, _reconfigure, require_filesystem
from mountkit.interface import MountInterface
from mountkit.mountpoint import _is_mountpoint, _probe, _spot_is_mountpoint, is_mountpoint
from mountkit.nfs import NFS_FAMILY as _NFS_FAMILY
from mountkit.nfs import NfsSource, other_source, parse_mount, resolve_mount
from mountkit.options import parse_options
from mountkit.pinning import _spot
from mountkit.propagation import _propagate
from mountkit.restate import _restated
from mountkit.rules import classified as _classified
from mountkit.rules import describe as _describe
from mountkit.rules import mount_conflict as _mount_conflict
from mountkit.rules import remove_mountpoint_dir
from mountkit.safepath import _O_PATH_DIR, _RESOLVE, _relative, _why
from mountkit.table import MountTable, find_mount

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mountkit._types import PathArg

#: the old import paths (``mountkit.mounter.MountInterface``, ``mountkit.mounter.is_mountpoint``) keep working
__all__ = ["REFS_PROBE_TIMEOUT", "MountInterface", "Mounter", "is_mountpoint"]

#: how long :meth:`Mounter.refs` waits for the path before answering from the whole table
REFS_PROBE_TIMEOUT = 0.5


class Mounter(Binder):
    """The kernel-backed mount engine; every verb is idempotent (see each docstring).

    ``probe_timeout`` bounds :meth:`is_mountpoint` and :meth:`check`, the calls
    a caller makes on a mount that may be dead (:meth:`refs` waits less: it has
    an answer that does not touch the path).
    """

    def __init__(self, *, probe_timeout: float = 10.0) -> None:
        self.probe_timeout = probe_timeout

    def mount(
        self,
        source: str | NfsSource,
        target: PathArg,
        fstype: str,
        options: Iterable[str] | str = (),
        sensitive_options: Iterable[str] = (),
        *,
        beneath: PathArg | None = None,
    ) -> None:
        """Mount ``source`` (of type ``fstype``) on ``target``.

        ``options`` are mount(8) words; ``sensitive_options`` reach the kernel and nothing else.
        ``nfs``/``nfs4`` data comes from :func:`mountkit.nfs.build_mount`'s two steps (no mount.nfs helper);
        between them the kernel is asked for the filesystem, so a node without an NFS client reads ENODEV
        before any name or route lookup.
        With fsopen (5.2+) each option is its own fsconfig call, so no option smuggles in another
        through a comma and a refusal carries the kernel's message; else mount(2) with a data string.
        Already done — ``target`` is the root of a mount of the same source and filesystem family
        (nfs ≡ nfs4) with the same read-only state (and NFS version): no-op.  Something else there,
        or the same made otherwise: MountConflictError naming both.
        ``beneath``: ``target`` is resolved beneath that directory, no symlink followed, and the
        mount is made onto the resolved descriptor, so a component swapped for a symlink meanwhile
        cannot move it (a symlink on the way: MountError(ELOOP)).
        """
        tgt = os.fsdecode(target)
        with _as_verb("mount", str(source), tgt, new_fs=True, nfs=fstype in _NFS_FAMILY):
            opts = parse_options(options, sensitive_options)
            if opts.flags & (MS.BIND | MS.REMOUNT | MS.MOVE):
                raise InvalidOptionError("mount", "bind, remount and move have verbs of their own", tgt)
            if fstype in _NFS_FAMILY:
                request = parse_mount(source, opts.data)  # secrets stay out of its error messages
                require_filesystem(request.fstype)  # no NFS client: ENODEV, before any name or route lookup
                spec = resolve_mount(request)
                src, kind = spec.source, spec.fstype
                words = tuple(spec.data.split(","))  # its words are validated: none holds a comma
            else:
                src, kind, words = other_source(source, fstype, tgt), fstype, opts.data
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

        A read-only bind is never writable at ``target``: the detached clone is made read-only
        before it is attached (open_tree + mount_setattr + move_mount).  Kernels without that API
        bind and remount read-only at a hidden staging sibling, then bind that onto ``target``
        (only the top mount is read-only there).
        Already done — ``target`` is a mount root showing ``source``'s inode with the asked
        read-only state: no-op.  Another mount there, or the other read-only state:
        MountConflictError.
        ``beneath``: both paths are resolved beneath it, no symlink followed, as in :meth:`mount`.
        Errors read ``bind <source> -> <target>: ...``, naming the path an errno is about.
        """
        self._bind("bind", source, target, readonly, recursive, options, beneath)

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
        """Make the mount at ``path`` a slave of its peer group (private if none); see :meth:`_make`."""
        self._make(path, MS.SLAVE, recursive, "make_slave")

    def make_unbindable(self, path: PathArg, *, recursive: bool = False) -> None:
        """Make the mount at ``path`` unbindable (private, never a bind's source); see :meth:`_make`."""
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
                    errno.EBUSY,
                    "move",
                    src,
                    tgt,
                    f"{_describe(self._entry(tgt))} is mounted there already",
                    TARGET,
                )
            try:
                _sys.move_mount(AT_FDCWD, src, AT_FDCWD, tgt, 0)
            except UnsupportedError:
                _sys.mount(src, tgt, None, int(MS.MOVE), None)

    def unmount(
        self,
        target: PathArg,
        *,
        lazy: bool = False,
        force: bool = False,
        recursive: bool = False,
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
        self,
        path: PathArg,
        *,
        lazy: bool = False,
        force: bool = False,
        timeout: float | None = None,
        beneath: PathArg | None = None,
    ) -> None:
        """Unmount ``path``, then remove it if it is an empty directory; never delete contents.

        Already done — ``path`` missing: success.  A directory with anything
        left in it: MountError(ENOTEMPTY) naming it, contents untouched.  Not a
        directory: MountError(ENOTDIR).  ``timeout`` bounds the unmount as in
        :meth:`unmount`; the rmdir looks the name up in its parent and never
        enters what was mounted there, so it needs no deadline.

        ``beneath`` (with ``timeout``): ``path``'s parent is opened beneath that root, without
        following a symlink (its refusals as :func:`mountkit.safepath.open_beneath`'s; a missing
        parent: success), and the unmount and the rmdir act on the name in that descriptor, all in
        one probe job (one hand-off); where a step refuses, the general way does it again by name
        and names what refused.
        """
        name = os.fsdecode(path)
        if beneath is not None and timeout is not None:
            done = self._cleanup_beneath(beneath, name, lazy, force, timeout)
        else:
            done = False
        if not done:
            self.unmount(name, lazy=lazy, force=force, timeout=timeout)
            remove_mountpoint_dir(name)

    @staticmethod
    def _cleanup_beneath(beneath: PathArg, name: str, lazy: bool, force: bool, timeout: float) -> bool:
        """:meth:`cleanup_mountpoint`'s one job; False when the general way must run."""
        root = os.fsdecode(beneath)
        parent, _, last = _relative(root, name).rstrip("/").rpartition("/")
        if not parent or not _sys.supported("openat2"):
            return False
        flags = _NOFOLLOW | (_DETACH if lazy else 0) | (int(MNT.FORCE) if force else 0)
        try:
            _sys.cleanup_beneath(root, parent, last, flags, _O_PATH_DIR, _RESOLVE, timeout)
        except CorruptedMountError:
            raise  # the unmount timed out: a second try would wait on the same path
        except MountError as exc:
            if exc.operation != "open_beneath":
                return False  # the unmount or the rmdir refused: the general way names it
            if exc.errno == errno.ENOENT:
                return True  # no parent, so nothing there: done
            if exc.errno == errno.ENOSYS:
                _sys.mark_unsupported("openat2")
                return False
            where = os.path.join(root, parent)
            raise MountError(exc.errno or errno.EIO, "open_beneath", where, root, _why(exc.errno)) from None
        return True

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
        return MountTable.read()


if TYPE_CHECKING:
    # mypy checks Mounter against the protocol here, as mount-utils' `var _ Interface = &Mounter{}`
    _conforms: MountInterface = Mounter()


def _points_below(path: str) -> list[str]:
    """The mount points strictly below ``path`` (its last component not resolved), deepest first."""
    parent, name = os.path.split(os.path.abspath(path))
    top = os.path.join(os.path.realpath(parent), name)
    points = {e.mount_point for e in MountTable.read().under(top)} - {top}
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def _same_source(shown: str, asked: str) -> bool:
    """The kernel shows the source as given; a path source may have been given through a symlink."""
    return shown == asked or (asked.startswith("/") and os.path.realpath(asked) == shown)
