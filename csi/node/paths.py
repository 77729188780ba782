"""Paths the CO hands the node service, checked to lie beneath the kubelet root.

A privileged driver that mounts wherever a request says can be turned against the host (mount over
``/etc``, or follow a symlink a pod planted under its own volume dir).  So every staging and target
path must be absolute, spelled without ``.``/``..``/``//``, strictly beneath ``--kubelet-root``, and
every component between the root and the path must be a real directory, not a symlink.

The last component is where a (possibly dead) network share is mounted, so it is only ever looked
at through :func:`mountkit.probe.run_with_deadline`; the components above it live on the node's own
disk and are checked with plain ``lstat``.
"""

from __future__ import annotations

import errno
import os
import stat

import grpc

from csi.errors import CsiError
from mountkit.errors import MountError, is_corrupted
from mountkit.probe import run_with_deadline
from mountkit.safepath import mkdir_beneath, open_beneath


def _invalid(what: str, path: str, why: str) -> CsiError:
    return CsiError(grpc.StatusCode.INVALID_ARGUMENT, f"{what} {path!r} {why}")


def beneath(root: str, path: str, what: str) -> str:
    """``path`` if it is a well-formed path strictly beneath ``root``; INVALID_ARGUMENT otherwise.

    Purely lexical: nothing on disk is touched (see :func:`check_parents` for that).
    """
    if "\0" in path:
        raise _invalid(what, path.replace("\0", "\\0"), "contains a NUL byte")
    if not os.path.isabs(path):
        raise _invalid(what, path, "is not an absolute path")
    if os.path.normpath(path) != path.rstrip("/") or path.startswith("//"):
        raise _invalid(what, path, "is not in normal form (no '.', '..' or '//' components)")
    path = path.rstrip("/")
    prefix = root.rstrip("/") + "/"
    if not path.startswith(prefix) or path == prefix.rstrip("/"):
        raise _invalid(what, path, f"is not beneath the kubelet root {root!r}")
    return path


def check_parents(root: str, path: str, what: str, *, missing_ok: bool = False) -> bool:
    """Every component from ``root`` down to ``path``'s parent is a directory, not a symlink.

    A missing parent: False when ``missing_ok`` (an unpublish of something never published), else
    FAILED_PRECONDITION: the CO creates parents (CSI spec), we create at most the last component.
    """
    fd = _open_parent(root, path, what, missing_ok=missing_ok)
    if fd is None:
        return False
    os.close(fd)
    return True


def _open_parent(root: str, path: str, what: str, *, missing_ok: bool = False) -> int | None:
    """An O_PATH descriptor of ``path``'s parent, checked as :func:`check_parents` says (None: missing).

    One openat2 beneath the root answers the common case (a symlink anywhere on the way fails it);
    only a failure walks the components with lstat, to name the one at fault.
    """
    parent = os.path.dirname(path)
    try:
        return _pin(root, parent)
    except MountError:
        pass
    if not _walk_parents(root, path, what, missing_ok=missing_ok):
        return None
    # The walk found nothing wrong: the tree changed under us; pin it again (a symlink raises now).
    try:
        return _pin(root, parent)
    except MountError as exc:
        raise_if_redirected(exc, what)
        raise


def _pin(root: str, directory: str) -> int:
    """An O_PATH descriptor of ``directory`` opened beneath ``root`` (the root itself as is); a
    component that is not a directory, the last one too, raises MountError."""
    if directory == root.rstrip("/"):
        try:
            return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except NotADirectoryError:
            raise MountError(errno.ENOTDIR, "open_beneath", root) from None
    return open_beneath(root, directory, directory=True)


def _walk_parents(root: str, path: str, what: str, *, missing_ok: bool) -> bool:
    """:func:`check_parents` one lstat per component, naming the component at fault."""
    current = root.rstrip("/")
    for part in os.path.relpath(os.path.dirname(path), current).split(os.sep):
        if part == ".":
            continue
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if missing_ok:
                return False
            raise CsiError(
                grpc.StatusCode.FAILED_PRECONDITION, f"parent directory {current!r} of {what} does not exist"
            ) from None
        if stat.S_ISLNK(st.st_mode):
            raise _invalid(what, path, f"has a symlink component {current!r}")
        if not stat.S_ISDIR(st.st_mode):
            raise _invalid(what, path, f"has a component {current!r} that is not a directory")
    return True


def lstat_last(path: str, timeout: float) -> os.stat_result | None:
    """``lstat(path)`` within ``timeout`` (it may be a dead share's mount point); None when missing."""

    def probe() -> os.stat_result | None:
        try:
            return os.lstat(path)
        except FileNotFoundError:
            return None

    return run_with_deadline(probe, timeout, "lstat", path)


def ensure_dir(root: str, path: str, what: str, timeout: float) -> bool:
    """Make ``path`` (its last component only) a directory beneath ``root``; True if it was created.

    mkdir comes first: it looks the name up in the parent and never enters whatever is mounted on
    it, so the common case (a new target) costs one syscall and cannot hang.  Already there: it is
    lstat'ed within ``timeout``; a directory is fine, a symlink or another kind of file is
    INVALID_ARGUMENT and nothing is touched.  A dead mount there raises CorruptedMountError
    (ESTALE/ENOTCONN/EIO, or ETIMEDOUT), which callers treat as a stale mount to repair.
    """
    try:  # the parent pinned, so a parent swapped for a symlink cannot move the mkdir; one C call
        if mkdir_beneath(root, path, 0o750):
            return True
    except MountError as exc:  # the parent is missing or not a plain directory: named component by component
        check_parents(root, path, what)
        raise_if_redirected(exc, what)  # the tree changed under the two looks
        raise
    st = lstat_last(path, timeout)
    if st is None:  # removed between the two calls: the CO is racing itself; let it retry
        raise CsiError(grpc.StatusCode.ABORTED, f"{what} {path!r} vanished while being prepared")
    if stat.S_ISLNK(st.st_mode):
        raise _invalid(what, path, "is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise _invalid(what, path, "exists and is not a directory")
    return False


def exists(path: str, timeout: float) -> bool:
    """Whether ``path`` exists (lstat within ``timeout``).

    A stale or disconnected mount there exists; one whose lstat did not answer in time raises the
    probe's CorruptedMountError (ETIMEDOUT), so the caller need not wait out a second probe.
    """
    try:
        return lstat_last(path, timeout) is not None
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ENAMETOOLONG):
            return False
        if exc.errno == errno.ETIMEDOUT:
            raise
        if is_corrupted(exc):
            return True
        raise


def raise_if_redirected(exc: MountError, what: str) -> None:
    """INVALID_ARGUMENT when a mount was refused because its path met a symlink or left the root.

    :func:`mountkit.safepath.open_beneath` pins paths without following symlinks; ELOOP/EXDEV from it
    means a component was (or became, racing the checks above) a symlink, a request error, not ours.
    """
    if "open_beneath" in (exc.operation, exc.step) and exc.errno in (errno.ELOOP, errno.EXDEV):
        raise CsiError(
            grpc.StatusCode.INVALID_ARGUMENT, f"{what} {exc.path!r}: {exc.detail or exc.strerror}"
        ) from None
