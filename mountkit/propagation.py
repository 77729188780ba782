"""Propagation types (shared, private, slave, unbindable) set on a mount: mount_setattr (5.12+, no
symlink followed), else mount(2) with the MS_* flags.
"""

from __future__ import annotations

from mountkit import _sys
from mountkit._bits import _RECURSIVE, _SETATTR_AT
from mountkit.errors import UnsupportedError
from mountkit.flags import AT_FDCWD, MS, PROPAGATION_MASK


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
