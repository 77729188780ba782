"""Open a path beneath a root without following any symlink: the defence against mount-target races.

Checking a path and then mounting on it by name leaves a window (CVE-2021-25741): whoever can write
a directory on the way swaps it for a symlink between check and mount, and the mount lands wherever
the symlink points.  Resolving the path once into an ``O_PATH`` descriptor and mounting onto that
descriptor closes the window: a later swap changes the name, not the descriptor.

The walk is one ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`` from a
descriptor of the root (kernel >= 5.6); older kernels get a component-by-component ``O_NOFOLLOW``
walk, which refuses symlinks and ``..`` just the same.
"""

from __future__ import annotations

import errno
import os
import stat

from mountkit import _sys
from mountkit.errors import MountError, UnsupportedError
from mountkit.flags import RESOLVE

#: no O_NOFOLLOW for openat2: with it, RESOLVE_NO_SYMLINKS hands back a trailing symlink itself
_O_PATH = os.O_PATH | os.O_CLOEXEC
_O_PATH_DIR = _O_PATH | os.O_DIRECTORY
_O_PATH_NOFOLLOW = _O_PATH | os.O_NOFOLLOW
_RESOLVE = int(RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS)


def _relative(root: str, path: str) -> str:
    """``path`` relative to ``root``; MountError(EXDEV) when it is not strictly beneath."""
    if ".." in path.split("/"):  # refused on every kernel, whether or not it would stay beneath
        raise MountError(errno.EXDEV, "open_beneath", path, root, "'..' is not allowed")
    top = root.rstrip("/") + "/"
    if path.startswith(top) and root.startswith("/"):
        # spelled through the root as given: the rest names the same thing from the root's
        # descriptor, and costs a slice rather than relpath's two abspaths (4 us a call)
        rel = path[len(top) :].strip("/")
        if set(rel.split("/")) <= {"", "."}:
            raise MountError(errno.EXDEV, "open_beneath", path, root, "not beneath the root")
        return rel
    rel = os.path.relpath(path, root) if os.path.isabs(path) else path
    if rel == "." or rel.startswith("../") or os.path.isabs(rel):
        raise MountError(errno.EXDEV, "open_beneath", path, root, "not beneath the root")
    return rel


def open_beneath(
    root: str | os.PathLike[str], path: str | os.PathLike[str], *, directory: bool = False
) -> int:
    """An ``O_PATH`` descriptor of ``path`` (absolute, or relative to ``root``), resolved beneath ``root``.

    No symlink is followed anywhere below ``root`` (the root itself may be reached through one).
    A symlink on the way: MountError(ELOOP) naming the path; an escape: MountError(EXDEV); a
    missing component: MountError(ENOENT); with ``directory``, a last component that is not a
    directory: MountError(ENOTDIR).  Mounts on the way are crossed.  The caller closes the
    descriptor.  A root that cannot be opened raises OSError naming it.
    """
    top, name = os.fspath(root), os.fspath(path)
    rel = _relative(top, name)
    try:  # one C call: root opened, openat2 from it, root closed
        return _sys.open_beneath(top, rel, _O_PATH_DIR if directory else _O_PATH, _RESOLVE)
    except UnsupportedError:
        pass
    except MountError as exc:
        raise MountError(exc.errno or errno.EIO, "open_beneath", name, top, _why(exc.errno)) from None
    rfd = os.open(top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _walk(rfd, rel, name, directory)
    finally:
        os.close(rfd)


def mkdir_beneath(root: str | os.PathLike[str], path: str | os.PathLike[str], mode: int = 0o777) -> bool:
    """Make the directory ``path`` (its last component) in its parent opened beneath ``root``: True made,
    False it exists already (of any kind: the caller looks).

    The parent is resolved as :func:`open_beneath` resolves a path (its errors), the mkdir is relative
    to that descriptor (``os.mkdir``'s errors), so a parent swapped for a symlink cannot move it.  One C
    call where it can (a kubelet target made in one crossing).
    """
    top, name = os.fspath(root), os.fspath(path)
    parent, _, last = _relative(top, name).rstrip("/").rpartition("/")
    if parent:
        where = os.path.join(top, parent)
        try:
            return _sys.mkdir_beneath(top, parent, last, mode, _O_PATH_DIR, _RESOLVE)
        except UnsupportedError:  # no openat2: the parent is walked below
            pass
        except MountError as exc:
            raise MountError(exc.errno or errno.EIO, "open_beneath", where, top, _why(exc.errno)) from None
        pfd = open_beneath(top, where, directory=True)
    else:  # directly under the root, which is taken as given
        pfd = os.open(top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.mkdir(last, mode, dir_fd=pfd)
        return True
    except FileExistsError:
        return False
    finally:
        os.close(pfd)


def _walk(rfd: int, rel: str, name: str, directory: bool) -> int:
    """The pre-openat2 fallback: one ``openat(O_PATH | O_NOFOLLOW)`` per component."""
    fd = os.dup(rfd)
    try:
        mode = os.fstat(fd).st_mode
        for part in rel.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                raise MountError(errno.EXDEV, "open_beneath", name, None, _why(errno.EXDEV))
            try:
                nxt = os.open(part, _O_PATH_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise MountError(
                    exc.errno or errno.EIO, "open_beneath", name, None, _why(exc.errno)
                ) from None
            os.close(fd)
            fd = nxt
            mode = os.stat(fd).st_mode
            if stat.S_ISLNK(mode):  # O_PATH|O_NOFOLLOW opened the link itself
                raise MountError(errno.ELOOP, "open_beneath", name, None, _why(errno.ELOOP))
        if directory and not stat.S_ISDIR(mode):
            raise MountError(errno.ENOTDIR, "open_beneath", name)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _why(err: int | None) -> str | None:
    if err == errno.ELOOP:
        return "a path component is a symlink (refused: it could redirect the mount)"
    if err == errno.EXDEV:
        return "the path leaves the root"
    return None


def fd_path(fd: int) -> str:
    """The ``/proc/self/fd/N`` name through which mount(2) reaches exactly the object ``fd`` holds."""
    return f"/proc/self/fd/{fd}"
