"""What a volume's volume_context (and its mount flags) say to mount: the NFS share and its version.

The controller writes volume_context; a static PersistentVolume's is written by hand, so everything
in it is checked again here, before any lock or mount.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from csi.filestore import (
    CTX_IP,
    CTX_MOUNT_OPTIONS,
    CTX_PROTOCOL,
    CTX_VOLUME,
    DEFAULT_PROTOCOL,
    NFS_VERSIONS,
    SHARE_NAME_MAX_LEN,
    is_share_name,
)
from csi.validation import check_map, check_mount_options, invalid
from csi.volume_id import ShareRef
from mountkit import nfs
from mountkit.nfs import NfsSource


@dataclass(frozen=True, slots=True)
class ShareMount:
    """What NodeStageVolume mounts: the share, the NFS version, and the options (the version's first)."""

    source: NfsSource
    version: str
    options: tuple[str, ...]

    @property
    def fstype(self) -> str:
        return nfs.fstype(self.version)


def share_mount(context: Mapping[str, str], volume_id: str, mount_flags: Iterable[str]) -> ShareMount:
    """The mount of a volume: its volume_context's share, ``mount-options`` and protocol, then the
    capability's ``mount_flags`` (checked already, as the request's)."""
    source, version = nfs_share(context, volume_id)
    flags = [*context_mount_flags(context), *mount_flags]
    version = nfs_version(version, flags)
    return ShareMount(source, version, (nfs.version_option(version), *flags))


def nfs_share(context: Mapping[str, str], volume_id: str = "") -> tuple[NfsSource, str | None]:
    """``(source, nfs version)`` for a volume_context: ``ip``, ``volume``, optional ``fileProtocol``
    (the version is None when the context names no protocol: see :func:`nfs_version`).

    A multishare volume's share is the last part of its id (``modeMultishare/.../<share>``), as
    gcp-filestore-csi-driver reads it; its volume_context need not name it.
    """
    check_map(context, "volume_context")
    share_ref = ShareRef.parse(volume_id)
    ip = context.get(CTX_IP, "")
    share = share_ref.share if share_ref else context.get(CTX_VOLUME, "")
    if not ip:
        raise invalid("volume_context.ip is required")
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise invalid(f"volume_context.ip {ip!r} is not an IPv4 or IPv6 address") from None
    if not share:
        raise invalid("volume_context.volume is required")
    if not is_share_name(share):
        raise invalid(
            f"volume_context.volume {share!r} is not a file share name "
            f"([a-z][a-z0-9_]*, at most {SHARE_NAME_MAX_LEN} characters)"
        )
    protocol = context.get(CTX_PROTOCOL, "")
    if protocol and protocol not in NFS_VERSIONS:
        raise invalid(f"volume_context.fileProtocol {protocol!r} is not one of {', '.join(NFS_VERSIONS)}")
    return NfsSource(str(addr), f"/{share}"), NFS_VERSIONS[protocol] if protocol else None


def context_mount_flags(context: Mapping[str, str]) -> list[str]:
    """The StorageClass's ``mount-options`` carried in volume_context, checked like mount flags.

    A static PersistentVolume's volume_context is written by hand, so the node checks it again.
    """
    return check_mount_options(context.get(CTX_MOUNT_OPTIONS, ""), f"volume_context.{CTX_MOUNT_OPTIONS}")


def nfs_version(version: str | None, mount_flags: Iterable[str]) -> str:
    """The NFS version to mount with, given the volume_context's (``version``) and the mount flags
    (the StorageClass's, then the PV's).

    It is the volume_context's fileProtocol when it names one (the flags may not
    contradict it); else the one the flags ask for, as static PVs written for
    gcp-filestore-csi-driver say it (``mountOptions: [nfsvers=4.1]``, no fileProtocol); else
    Filestore's default protocol.  Flags asking for two different versions are refused.
    """
    asked = set(nfs.versions(mount_flags))
    if version is None and len(asked) > 1:
        raise invalid(f"the mount options ask for NFS versions {sorted(asked)}; give one")
    if version is not None and asked - {version}:
        raise invalid(
            f"the mount options ask for NFS version {min(asked - {version})!r}, "
            f"but the volume's fileProtocol means {version!r}"
        )
    return version or next(iter(asked), None) or NFS_VERSIONS[DEFAULT_PROTOCOL]
