"""The emulator's long-running operations: started by a mutating call, completed when observed.

A mixin of :class:`~csi.cloud.emulator.state.EmulatorState`: an operation finishes ``op_delay``
seconds after it starts, and its effect is applied the first time a call observes the state after
that moment (``run`` completes due operations under the lock, then fires the hooks outside it).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.cloud.common import OperationMetadata
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

from csi.cloud import Instance
from csi.cloud.emulator.checks import now_pb
from csi.cloud.emulator.errors import ApiError

MAX_PAGE_SIZE = 500

InstanceHook = Callable[[Instance], None]
# Raw filestore protobuf messages (the pb classes behind proto-plus are untyped).
Pb = Any
T = TypeVar("T")


@dataclass
class _Operation:
    pb: operations_pb2.Operation
    done_at: float
    complete: Callable[[], Pb]  # applies the effect, returns the response
    abort: Callable[[], None] = lambda: None  # undoes the start (on cancel)


@dataclass
class _Events:
    created: list[Instance] = field(default_factory=list)
    deleted: list[Instance] = field(default_factory=list)
    calls: list[Callable[[], None]] = field(default_factory=list)

    def any(self) -> bool:
        """Whether there are hooks to run."""
        return bool(self.created or self.deleted or self.calls)


def _pack(msg: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed


class OperationsMixin:
    """The operation machinery and the google.longrunning RPC bodies, over the state's lock."""

    # Provided by EmulatorState.
    op_delay: float
    default_page_size: int
    _lock: threading.Lock
    _hooks_done: threading.Condition
    _hooks_running: bool
    _held: bool
    _ops: dict[str, _Operation]
    _pending_created: list[Instance]
    _pending_deleted: list[Instance]
    _pending_calls: list[Callable[[], None]]
    _on_created: InstanceHook | None
    _on_deleted: InstanceHook | None

    def _start(
        self,
        parent_location: str,
        project: str,
        target: str,
        verb: str,
        complete: Callable[[], Pb],
        abort: Callable[[], None] = lambda: None,
    ) -> operations_pb2.Operation:
        name = f"projects/{project}/locations/{parent_location}/operations/operation-{uuid.uuid4().hex}"
        meta = OperationMetadata(target=target, verb=verb, api_version="v1")
        meta_pb = OperationMetadata.pb(meta)
        meta_pb.create_time.CopyFrom(now_pb())
        op = operations_pb2.Operation(name=name, metadata=_pack(meta_pb))
        self._ops[name] = _Operation(op, time.monotonic() + self.op_delay, complete, abort)
        return op

    def _advance(self, events: _Events) -> None:
        """Complete every operation whose time has come (caller holds the lock)."""
        now = time.monotonic()
        for rec in self._ops.values():
            if self._held or rec.pb.done or rec.done_at > now:
                continue
            try:
                rec.pb.response.CopyFrom(_pack(rec.complete()))
            except ApiError as exc:
                rec.pb.error.CopyFrom(status_pb2.Status(code=exc.code.value[0], message=exc.message))
            rec.pb.done = True
            rec.complete = lambda: empty_pb2.Empty()
        events.created.extend(self._pending_created)
        events.deleted.extend(self._pending_deleted)
        events.calls.extend(self._pending_calls)
        self._pending_created.clear()
        self._pending_deleted.clear()
        self._pending_calls.clear()

    def run(self, fn: Callable[[], T]) -> T:
        """Run one RPC body under the lock, after completing due operations; fire hooks after."""
        events = _Events()
        try:
            with self._lock:
                self._hooks_done.wait_for(lambda: not self._hooks_running)
                self._advance(events)
                self._hooks_running = events.any()
                return fn()
        finally:
            if events.any():
                try:
                    self._fire(events)
                finally:
                    with self._lock:
                        self._hooks_running = False
                        self._hooks_done.notify_all()

    def _fire(self, events: _Events) -> None:
        for inst in events.created:
            if self._on_created is not None:
                self._on_created(inst)
        for inst in events.deleted:
            if self._on_deleted is not None:
                self._on_deleted(inst)
        for call in events.calls:
            call()

    def get_operation(self, name: str) -> operations_pb2.Operation:
        rec = self._ops.get(name)
        if rec is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"operation {name} not found")
        return rec.pb

    def list_operations(
        self, name: str, page_size: int, page_token: str
    ) -> operations_pb2.ListOperationsResponse:
        prefix = name.rstrip("/") + "/operations/" if name else ""
        ops = sorted((o.pb for o in self._ops.values() if o.pb.name.startswith(prefix)), key=lambda o: o.name)
        page, token = self._page(ops, page_size, page_token)
        return operations_pb2.ListOperationsResponse(operations=page, next_page_token=token)

    def delete_operation(self, name: str) -> empty_pb2.Empty:
        self.get_operation(name)
        del self._ops[name]
        return empty_pb2.Empty()

    def cancel_operation(self, name: str) -> empty_pb2.Empty:
        rec = self._ops[self.get_operation(name).name]
        if not rec.pb.done:
            rec.abort()
            rec.pb.error.CopyFrom(
                status_pb2.Status(code=grpc.StatusCode.CANCELLED.value[0], message="cancelled")
            )
            rec.pb.done = True
        return empty_pb2.Empty()

    def _running_targets(self) -> list[str]:
        """The targets of the operations still running."""
        targets = []
        for rec in self._ops.values():
            if not rec.pb.done:
                meta = OperationMetadata.pb()()
                rec.pb.metadata.Unpack(meta)
                targets.append(meta.target)
        return targets

    def seconds_until_done(self, name: str) -> float:
        rec = self._ops.get(name)
        return 0.0 if rec is None or rec.pb.done else max(0.0, rec.done_at - time.monotonic())

    def _page(self, items: list[Pb], page_size: int, page_token: str) -> tuple[list[Pb], str]:
        size = min(page_size or self.default_page_size, MAX_PAGE_SIZE)
        try:
            start = int(page_token) if page_token else 0
        except ValueError:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid page token {page_token!r}") from None
        end = start + size
        return items[start:end], (str(end) if end < len(items) else "")
