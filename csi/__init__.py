"""Filestore CSI driver: the gRPC services over mountkit and a Filestore cloud interface."""
