"""CSI v1 protocol (csi.proto) and its generated messages and stubs.

The generated modules are committed; regenerate from the repository root with
``python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. csi/proto/csi.proto``
(tests/unit/csi/test_proto.py fails when they drift from csi.proto).
"""
