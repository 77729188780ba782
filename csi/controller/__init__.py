"""The controller side of the driver: the CSI Controller service (:mod:`csi.controller.service`:
volumes, snapshots, multishare shares) and what only it needs (StorageClass and snapshot parameters,
labels, capacity, reserved IP ranges).  It shares :mod:`csi.filestore`, :mod:`csi.volume_id`,
:mod:`csi.validation` and :mod:`csi.locks` with the node side, and never imports :mod:`csi.node`."""
