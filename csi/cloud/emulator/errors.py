"""The emulator's one exception: an RPC failure with the gRPC status the real API would answer."""

from __future__ import annotations

import grpc


class ApiError(Exception):
    """An RPC failure: the server turns it into a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(name: str) -> ApiError:
    """NOT_FOUND for a resource, worded as the real API words it."""
    return ApiError(grpc.StatusCode.NOT_FOUND, f"Resource '{name}' was not found")
