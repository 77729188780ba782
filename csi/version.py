"""The driver's name and version, reported by GetPluginInfo and ``--version``."""

from __future__ import annotations

from importlib import metadata

DEFAULT_DRIVER_NAME = "filestore.csi.storage.gke.io"


def driver_version() -> str:
    """The installed package version (the CSI vendor_version, never empty)."""
    try:
        return metadata.version("mountkit")
    except metadata.PackageNotFoundError:
        return "0.0.0-dev"
