"""mountkit: a Linux mount engine over direct syscalls.

``import mountkit`` loads only the error classes; the rest (and the compiled
syscall module behind it) loads on first use of a name, so that tools which
only catch mountkit's errors, or run without root, pay nothing for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mountkit._version import __version__
from mountkit.errors import (
    CorruptedMountError,
    InvalidOptionError,
    MountConflictError,
    MountError,
    UnsupportedError,
    is_corrupted,
)

if TYPE_CHECKING:
    from mountkit.fake import FakeMounter
    from mountkit.interface import MountInterface
    from mountkit.mounter import Mounter
    from mountkit.mountpoint import is_mountpoint
    from mountkit.options import ParsedOptions, parse_options
    from mountkit.table import MountInfo, MountTable, find_mount
    from mountkit.watcher import EventKind, MountEvent, MountWatcher, watch

_LAZY = {
    "FakeMounter": "mountkit.fake",
    "Mounter": "mountkit.mounter",
    "MountInterface": "mountkit.interface",
    "is_mountpoint": "mountkit.mountpoint",
    "ParsedOptions": "mountkit.options",
    "parse_options": "mountkit.options",
    "MountInfo": "mountkit.table",
    "MountTable": "mountkit.table",
    "find_mount": "mountkit.table",
    "EventKind": "mountkit.watcher",
    "MountEvent": "mountkit.watcher",
    "MountWatcher": "mountkit.watcher",
    "watch": "mountkit.watcher",
}

__all__ = [
    "CorruptedMountError",
    "EventKind",
    "FakeMounter",
    "InvalidOptionError",
    "MountConflictError",
    "MountError",
    "MountEvent",
    "MountInfo",
    "MountInterface",
    "MountTable",
    "MountWatcher",
    "Mounter",
    "ParsedOptions",
    "UnsupportedError",
    "__version__",
    "find_mount",
    "is_corrupted",
    "is_mountpoint",
    "parse_options",
    "watch",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mountkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
