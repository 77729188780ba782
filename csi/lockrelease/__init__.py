"""NFSv3 lock release when a node dies, compatible with gcp-filestore-csi-driver (docs/lockrelease.md).

:mod:`.lockinfo` is GFD's bookkeeping format, :mod:`.store` the node's side of it, :mod:`.rpc` the
call to the instance, :mod:`.controller` the loop that finds dead nodes. Only the modules that talk to
the API server import the ``kubernetes`` library, so the driver loads it only with the feature on.
"""


class LockInfoError(Exception):
    """The node could not record or remove a volume's lock record in the API server."""
