"""The one home of the version shared by both distributions (mountkit and filestore-csi-driver)."""

__version__ = "0.2.0"
