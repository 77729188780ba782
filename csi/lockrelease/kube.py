"""What the driver and the standalone controller share: an API client and GFD's replica identity."""

from __future__ import annotations

import socket
import uuid

from kubernetes import client, config


def api_client(kubeconfig: str = "") -> client.ApiClient:
    """A client as the pod's service account, or as ``kubeconfig`` says."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def identity() -> str:
    """This replica's Lease identity: host name and a uuid, as GFD, so two on one host never collide."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"
