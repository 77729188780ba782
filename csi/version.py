"""The driver's name and version, reported by GetPluginInfo and ``--version``."""

from __future__ import annotations

from csi._version import __version__

DEFAULT_DRIVER_NAME = "filestore.csi.storage.gke.io"


def driver_version() -> str:
    """The CSI vendor_version: the version both distributions share (csi/_version.py links to mountkit's)."""
    return __version__
