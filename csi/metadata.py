"""This VM's identity from the GCE metadata server: its zone, project and instance name.

GKE runs the driver on GCE VMs, so a flag left out (``--zone``, ``--project``, ``--node-id``) is
read from the metadata server, as gcp-filestore-csi-driver does: each node then reports the zone it
is really in, which a cluster-wide setting cannot do in a regional cluster.

The lookups go through google-auth's compute-engine helper, which sends ``Metadata-Flavor: Google``,
honours ``GCE_METADATA_HOST`` (how tests point it at a loopback server of their own) and retries a
5xx or a refused connection with exponential backoff. ``attempts`` bounds those retries, so a driver
started off GCE fails after a few seconds with :class:`MetadataError` naming the flag to give.
"""

from __future__ import annotations

from collections.abc import Callable

#: Paths under ``/computeMetadata/v1/``.
ZONE_PATH = "instance/zone"  # "projects/<number>/zones/<zone>"
PROJECT_PATH = "project/project-id"
NAME_PATH = "instance/name"
ID_PATH = "instance/id"  # the GCE instance id, a decimal number
INTERNAL_IP_PATH = "instance/network-interfaces/0/ip"

#: Tries per value (google-auth waits about 1, 2, 4, 8 s between them) and seconds per try.
ATTEMPTS = 5
TIMEOUT = 3.0


class MetadataError(OSError):
    """The metadata server gave no answer for a value the command line did not give either."""


def lookup(
    path: str, flag: str, *, attempts: int = ATTEMPTS, timeout: float = TIMEOUT, reason: str = ""
) -> str:
    """The text at ``path``; MetadataError, naming ``flag`` as the way out (or ``reason``), when there
    is none."""
    why = reason or f"{flag} was not given"
    from google.auth import exceptions
    from google.auth.compute_engine import _metadata
    from google.auth.transport.requests import Request

    get: Callable[..., object] = _metadata.get  # untyped in google-auth
    try:
        value = get(Request(), path, retry_count=attempts, timeout=timeout)
    except exceptions.TransportError as exc:
        detail = exc.args[0] if exc.args else exc  # args[1] is the raw response object
        raise MetadataError(f"{why}, and the GCE metadata server gave no {path}: {detail}") from None
    if not isinstance(value, str) or not value.strip():
        raise MetadataError(f"{why}, and the GCE metadata server's {path} is empty")
    return value.strip()


def zone(*, attempts: int = ATTEMPTS) -> str:
    """This VM's zone (the last part of ``projects/<number>/zones/<zone>``)."""
    return lookup(ZONE_PATH, "--zone", attempts=attempts).rsplit("/", 1)[-1]


def project(*, attempts: int = ATTEMPTS) -> str:
    """The id of the project this VM runs in."""
    return lookup(PROJECT_PATH, "--project", attempts=attempts)


def instance_name(*, attempts: int = ATTEMPTS) -> str:
    """This VM's instance name, which is also its GKE node name."""
    return lookup(NAME_PATH, "--node-id", attempts=attempts)


def instance_id(*, attempts: int = ATTEMPTS) -> str:
    """This VM's GCE instance id (GKE puts it on the Node as ``container.googleapis.com/instance_id``)."""
    return lookup(ID_PATH, "", attempts=attempts, reason="--feature-lock-release needs this VM's instance id")


def internal_ip(*, attempts: int = ATTEMPTS) -> str:
    """This VM's internal IPv4 address (its first network interface's)."""
    return lookup(
        INTERNAL_IP_PATH, "", attempts=attempts, reason="--feature-lock-release needs this VM's internal IP"
    )
