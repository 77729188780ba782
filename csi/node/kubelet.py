"""kubelet's directory layout below its root (``--kubelet-root``), as far as a CSI driver meets it.

The one place that spells it: the node service (which mounts only beneath the root, and tells a
publish target from kubelet's other mounts), the demo, the benchmarks and the tests build their
paths here.  A layout is a tuple of names, ``None`` where kubelet puts a name of its own.
"""

from __future__ import annotations

import os

#: where kubelet asks a CSI driver to publish a pod's volume:
#: pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount
PUBLISH_TARGET = ("pods", None, "volumes", "kubernetes.io~csi", None, "mount")
#: where kubelet asks a CSI driver to stage a volume: plugins/kubernetes.io/csi/<driver>/<volume handle's
#: sha256>/globalmount (kubelets before 1.25: .../csi/pv/<pv name>/globalmount)
STAGING_PATH = ("plugins", "kubernetes.io", "csi", None, None, "globalmount")
#: where kubelet binds a container's ``subPath`` of a volume:
#: pods/<pod uid>/volume-subpaths/<volume>/<container>/<index>
SUBPATH = ("pods", None, "volume-subpaths", None, None, None)
#: kubelet's directory of the plugins' own paths (a CSI volume's staging path among them)
KUBELET_PLUGINS = STAGING_PATH[0]


def _path(root: str, layout: tuple[str | None, ...], *names: str) -> str:
    given = iter(names)
    return os.path.join(root, *(part if part is not None else next(given) for part in layout))


def publish_target(root: str, pod_uid: str, volume: str) -> str:
    """The path kubelet hands NodePublishVolume for ``volume`` of pod ``pod_uid`` (:data:`PUBLISH_TARGET`)."""
    return _path(root, PUBLISH_TARGET, pod_uid, volume)


def staging_path(root: str, driver: str, volume: str) -> str:
    """The path kubelet hands NodeStageVolume for ``volume`` (its handle's hash) of ``driver``
    (:data:`STAGING_PATH`)."""
    return _path(root, STAGING_PATH, driver, volume)


def subpath(root: str, pod_uid: str, volume: str, container: str, index: int = 0) -> str:
    """Where kubelet binds the ``index``-th subPath mount of ``volume`` in ``container`` (:data:`SUBPATH`)."""
    return _path(root, SUBPATH, pod_uid, volume, container, str(index))


def is_publish_target(root: str, path: str) -> bool:
    """May the mount at ``path`` be a volume's publish target (for a SINGLE_NODE_SINGLE_WRITER check)?

    Beneath kubelet's pods dir, only its layout (:data:`PUBLISH_TARGET`) is one: kubelet binds a
    ``subPath`` at :data:`SUBPATH`, and on NFS, which shows every mount's root as "/", such a bind has
    the same (device, root) as the volume itself.  Beneath kubelet's plugins dir are staging paths,
    not targets.  Any other path beneath ``root`` is where another CO (csi-sanity, a CO that is not
    kubelet) published the volume, so it is one; nothing outside ``root`` is.
    """
    prefix = root.rstrip("/") + "/"
    if not path.startswith(prefix):
        return False
    parts = path[len(prefix) :].split("/")
    if parts[0] == KUBELET_PLUGINS:
        return False
    if parts[0] != PUBLISH_TARGET[0]:
        return True
    return len(parts) == len(PUBLISH_TARGET) and all(
        want is None or want == got for want, got in zip(PUBLISH_TARGET, parts, strict=True)
    )
