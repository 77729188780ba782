"""The node side of the driver: the CSI Node service (:mod:`csi.node.service`: stage a share once per
node, bind it into each pod) and what only it needs (kubelet's layout and paths, volume_context,
rpc.statd for NFSv3 locks).  It shares :mod:`csi.filestore`, :mod:`csi.volume_id`,
:mod:`csi.validation` and :mod:`csi.locks` with the controller side, and never imports
:mod:`csi.controller`.  Nothing is imported here, so :mod:`csi.node.kubelet` loads without grpc."""
