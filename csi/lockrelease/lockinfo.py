"""gcp-filestore-csi-driver's lock-release bookkeeping, byte for byte (``pkg/releaselock/configmap_util.go``).

Each node has a ConfigMap ``fscsi-<node name>`` in namespace ``gke-managed-filestorecsi``, created
with the finalizer below; each NFSv3 volume staged there that supports lock release is one entry,
key ``{project}.{location}.{instance}.{share}.{GCE instance id}.{node internal IP}`` (the IP's dots
turned into underscores, since a ConfigMap key holds no second meaning for them) and value the
instance's IP. The key pins the node's identity at stage time: a Node object later gone, or with
another instance id or internal IP, means the node that held the locks is dead.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

NAMESPACE = "gke-managed-filestorecsi"
CONFIGMAP_PREFIX = "fscsi-"
FINALIZER = "filestore.csi.storage.gke.io/lock-release"
#: The Node annotation GKE sets to the VM's GCE instance id.
INSTANCE_ID_ANNOTATION = "container.googleapis.com/instance_id"
#: The Lease the controllers elect their leader on (in NAMESPACE).
LEASE_NAME = "filestore-csi-storage-gke-io-node"
#: The ConfigMap every namespace gets, which the controller skips.
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


@dataclass(frozen=True, slots=True)
class LockKey:
    """One entry's key: the share and the node (GCE instance id, internal IPv4) that staged it."""

    project: str
    location: str
    instance: str
    share: str
    node_id: str
    node_ip: str

    @property
    def key(self) -> str:
        return ".".join(
            (
                self.project,
                self.location,
                self.instance,
                self.share,
                self.node_id,
                self.node_ip.replace(".", "_"),
            )
        )

    @classmethod
    def parse(cls, key: str) -> LockKey | None:
        """The key's parts, or None for a key not in GFD's form (six non-empty parts, an IP last)."""
        parts = key.split(".")
        if len(parts) != 6 or not all(parts):
            return None
        node_ip = parts[5].replace("_", ".")
        try:
            ipaddress.ip_address(node_ip)
        except ValueError:
            return None
        project, location, instance, share, node_id = parts[:5]
        return cls(project, location, instance, share, node_id, node_ip)


def configmap_name(node_name: str) -> str:
    """The name of ``node_name``'s ConfigMap."""
    return CONFIGMAP_PREFIX + node_name


def node_of(configmap: str) -> str | None:
    """The node a ConfigMap name belongs to, or None for a ConfigMap that is not a node's."""
    node = configmap.removeprefix(CONFIGMAP_PREFIX)
    return node if node and node != configmap else None
