"""The emulator's state: instances behind one lock, with its backups, operations and multishare mixins.

Validation follows the Filestore v1 API (ids, tiers, capacity limits, states); quotas, injected
faults, held operations, failing creations and forced states let tests drive the error paths.
Operations (:mod:`~csi.cloud.emulator.operations`) finish ``op_delay`` seconds after they start,
applied when a call next observes the state, so no timer thread is needed.
"""

from __future__ import annotations

import ipaddress
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.cloud import filestore_v1
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from csi.cloud import Instance, export_rules_error
from csi.cloud.emulator.backups import BackupsMixin
from csi.cloud.emulator.checks import check_id, now_pb, parse_parent
from csi.cloud.emulator.errors import ApiError, not_found
from csi.cloud.emulator.multishare import MultishareMixin, ShareHook
from csi.cloud.emulator.operations import InstanceHook, OperationsMixin, Pb
from csi.filestore import (
    BASIC_TIERS,
    LEGACY_TIERS,
    MAX_TAGS,
    PERFORMANCE_TIERS,
    TIER_CAPACITY_GIB,
    canonical_tier,
    capacity_band,
    is_share_name,
    performance_error,
    tag_error,
)

InstancePb = filestore_v1.Instance.pb()
_Tier = filestore_v1.Instance.Tier
_InstanceState = filestore_v1.Instance.State
_BackupState = filestore_v1.Backup.State

#: The tiers the emulator serves (every tier with capacity bands, and the legacy names).
SUPPORTED_TIERS = frozenset(_Tier.__members__[name] for name in (*TIER_CAPACITY_GIB, *LEGACY_TIERS))


@dataclass
class _Fault:
    code: grpc.StatusCode
    remaining: int
    message: str


#: RFC 5737 documentation ranges: never routed on a real network, so tests may use them on links of
#: their own (the NFS test guest gives each instance a server behind a veth link)
_TEST_NETS = tuple(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


class EmulatorState(MultishareMixin, BackupsMixin, OperationsMixin):
    """Thread-safe Filestore state (v1, and the v1beta1 multishare part). Options:

    ``op_delay``: seconds until an operation completes. ``ip_pool``: the network instance IPs come
    from: loopback, or a documentation range that only a test's own namespaces or VM can route
    (a client may really mount the address, so nothing reachable beyond the machine is allowed).
    ``max_instances`` / ``max_capacity_gib``: quotas (RESOURCE_EXHAUSTED beyond them).
    ``default_page_size``: list page size when the request gives none. ``export_root``: when set,
    each READY instance has a directory ``<export_root>/<instance>/<share>`` (removed on delete);
    backups copy it and a restore copies it back, so a test NFS server can export real data.
    ``on_instance_created`` / ``on_instance_deleted``: called (outside the lock) when a create or
    delete completes; ``on_share_created`` / ``on_share_deleted`` likewise for multishare shares.
    """

    def __init__(
        self,
        *,
        op_delay: float = 0.2,
        ip_pool: str = "127.0.100.0/24",
        max_instances: int | None = None,
        max_capacity_gib: int | None = None,
        default_page_size: int = 100,
        export_root: str | Path | None = None,
        on_instance_created: InstanceHook | None = None,
        on_instance_deleted: InstanceHook | None = None,
        on_share_created: ShareHook | None = None,
        on_share_deleted: ShareHook | None = None,
    ) -> None:
        pool = ipaddress.ip_network(ip_pool)
        in_test_net = isinstance(pool, ipaddress.IPv4Network) and any(pool.subnet_of(n) for n in _TEST_NETS)
        if not (pool.is_loopback or in_test_net):
            raise ValueError(
                f"ip_pool {ip_pool} is neither loopback nor a documentation range (TEST-NET-1/2/3): "
                "a client may really mount an instance's address"
            )
        self.op_delay = op_delay
        self.max_instances = max_instances
        self.max_capacity_gib = max_capacity_gib
        self.default_page_size = default_page_size
        self.export_root = Path(export_root) if export_root is not None else None
        self._hosts = [str(h) for h in pool.hosts()]
        self._on_created = on_instance_created
        self._on_deleted = on_instance_deleted
        self.on_share_created = on_share_created
        self.on_share_deleted = on_share_deleted
        self._ms_instances: dict[str, Pb] = {}
        self._shares: dict[str, Pb] = {}
        self._pending_calls: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        # Hooks run outside the lock (they start and stop real NFS servers in the test guest), but no
        # other RPC runs until they have returned: otherwise a client could see an instance READY whose
        # server is not up yet, or get a deleted instance's address while its old server is still being
        # torn down (both gave csi-sanity's shuffled order ECONNREFUSED).
        self._hooks_done = threading.Condition(self._lock)
        self._hooks_running = False
        self._instances: dict[str, Pb] = {}
        self._backups: dict[str, Pb] = {}
        self._pending_created: list[Instance] = []
        self._pending_deleted: list[Instance] = []
        self._ops = {}
        self._faults: dict[str, _Fault] = {}
        self._tags: dict[str, dict[str, str]] = {}  # bound at creation; the API never returns them
        self._updating: set[str] = set()  # instances with an update operation running
        self._held = False
        self._failing_creates: list[str] = []

    # -- test controls --

    def inject(
        self, method: str, code: grpc.StatusCode, count: int = 1, message: str = "injected fault"
    ) -> None:
        """Fail the next ``count`` calls of ``method`` (e.g. "CreateInstance", "GetOperation")."""
        with self._lock:
            self._faults[method] = _Fault(code, count, message)

    def bound_tags(self, name: str) -> dict[str, str]:
        """The tags bound to the instance or backup ``name`` at its creation (what Resource Manager
        would list), since ``tags`` is input-only in the API."""
        with self._lock:
            return dict(self._tags.get(name, {}))

    def hold(self) -> None:
        """Keep every operation running (instances stay CREATING, DELETING...) until :meth:`release`."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        """Let held operations finish: each completes at the next call that observes the state."""
        with self._lock:
            self._held = False
            now = time.monotonic()
            for rec in self._ops.values():
                rec.done_at = min(rec.done_at, now)

    def set_instance_state(self, name: str, state: str) -> None:
        """Put the instance (full name) in ``state`` ("REPAIRING", "ERROR"...), as Filestore may."""
        with self._lock:
            self._instance(name).state = _InstanceState.__members__[state]

    def fail_next_create(self, message: str = "injected instance failure") -> None:
        """Make the next CreateInstance end as a failed creation does: instance in ERROR, op failed."""
        with self._lock:
            self._failing_creates.append(message)

    def check_fault(self, method: str) -> None:
        with self._lock:
            fault = self._faults.get(method)
            if fault is None or fault.remaining <= 0:
                return
            fault.remaining -= 1
        raise ApiError(fault.code, fault.message)

    def _name_taken(self, name: str) -> bool:
        return name in self._instances or name in self._ms_instances

    def _check_instance_quota(self) -> None:
        if (
            self.max_instances is not None
            and len(self._instances) + len(self._ms_instances) >= self.max_instances
        ):
            raise ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota exceeded: instances")

    def _free_ip(self) -> str:
        """An address of the pool no instance (v1 or multishare) has; RESOURCE_EXHAUSTED when none is left."""
        used = {
            i.networks[0].ip_addresses[0] for i in (*self._instances.values(), *self._ms_instances.values())
        }
        free = next((h for h in self._hosts if h not in used), None)
        if free is None:
            raise ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, "no free address in the IP pool")
        return free

    def _list(
        self, store: dict[str, Pb], parent: str, collection: str, page_size: int, page_token: str
    ) -> tuple[list[Pb], str]:
        """One page of ``store``'s resources under ``parent`` (location ``-`` means every location)."""
        project, location = parse_parent(parent, allow_any=True)
        prefix = f"projects/{project}/locations/" + ("" if location == "-" else f"{location}/{collection}/")
        found = sorted((r for n, r in store.items() if n.startswith(prefix)), key=lambda r: r.name)
        return self._page(found, page_size, page_token)

    # -- instances --

    def _instance(self, name: str) -> Pb:
        inst = self._instances.get(name)
        if inst is None:
            raise not_found(name)
        return inst

    def _record(self, inst: Pb) -> Instance:
        from csi.cloud.gcp import instance_from_pb  # one conversion, shared with the client

        return instance_from_pb(filestore_v1.Instance.wrap(inst))

    def _share_dir(self, instance_id: str, share: str) -> Path | None:
        return None if self.export_root is None else self.export_root / instance_id / share

    def get_instance(self, name: str) -> Pb:
        if name in self._ms_instances:
            return self.v1_view(self._ms_instances[name])
        return self._instance(name)

    def list_instances(self, parent: str, page_size: int, page_token: str) -> Pb:
        every = {**self._instances, **{n: self.v1_view(i) for n, i in self._ms_instances.items()}}
        page, token = self._list(every, parent, "instances", page_size, page_token)
        return filestore_v1.ListInstancesResponse.pb()(instances=page, next_page_token=token)

    def create_instance(self, request: Pb) -> operations_pb2.Operation:
        project, location = parse_parent(request.parent, allow_any=False)
        check_id("instance", request.instance_id)
        spec = request.instance
        name = f"{request.parent}/instances/{request.instance_id}"
        if spec.tier not in SUPPORTED_TIERS:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "instance.tier must be set to a supported tier")
        if len(spec.file_shares) != 1:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "exactly one file share is required")
        share = spec.file_shares[0]
        if not is_share_name(share.name, _Tier(spec.tier).name):
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid file share name {share.name!r}")
        self._check_capacity(spec.tier, share.capacity_gb)
        self._check_performance(spec.tier, share.capacity_gb, spec)
        self._check_exports(share)
        for key, value in spec.tags.items():
            problem = tag_error(key, value)
            if problem:
                raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid tag: {problem}")
        if len(spec.tags) > MAX_TAGS:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"more than {MAX_TAGS} tags")
        if len(spec.networks) != 1 or not spec.networks[0].network:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "exactly one network with a name is required")
        backup = None
        if share.source_backup:
            backup = self._backups.get(share.source_backup)
            if backup is None:
                raise ApiError(grpc.StatusCode.NOT_FOUND, f"backup {share.source_backup} not found")
            if backup.state != _BackupState.READY:
                raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"backup {backup.name} is not READY")
            if share.capacity_gb < backup.capacity_gb:
                raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "capacity is smaller than the backup's")
        if self._name_taken(name):
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Resource '{name}' already exists")
        self._check_instance_quota()
        self._check_capacity_quota(share.capacity_gb)
        free = self._free_ip()

        inst = InstancePb()
        inst.CopyFrom(spec)
        inst.name = name
        inst.ClearField("tags")  # input only
        inst.custom_performance_supported = canonical_tier(_Tier(spec.tier).name) in PERFORMANCE_TIERS
        inst.state = _InstanceState.CREATING
        inst.create_time.CopyFrom(now_pb())
        del inst.networks[0].ip_addresses[:]
        inst.networks[0].ip_addresses.append(free)
        if not inst.networks[0].connect_mode:
            inst.networks[0].connect_mode = filestore_v1.NetworkConfig.ConnectMode.DIRECT_PEERING
        self._instances[name] = inst
        if spec.tags:
            self._tags[name] = dict(spec.tags)
        instance_id, share_name = request.instance_id, share.name
        source_dir = None if backup is None else self._backup_dir(backup.name)
        failure = self._failing_creates.pop(0) if self._failing_creates else None

        def complete() -> Pb:
            if failure is not None:
                inst.state = _InstanceState.ERROR
                raise ApiError(grpc.StatusCode.INTERNAL, failure)
            inst.state = _InstanceState.READY
            target = self._share_dir(instance_id, share_name)
            if target is not None:
                if source_dir is not None and source_dir.is_dir():
                    shutil.copytree(source_dir, target, dirs_exist_ok=True)
                target.mkdir(parents=True, exist_ok=True)
            self._pending_created.append(self._record(inst))
            return inst

        def abort() -> None:
            self._instances.pop(name, None)
            self._tags.pop(name, None)

        return self._start(location, project, name, "create", complete, abort)

    def _check_capacity(self, tier: int, capacity_gb: int) -> None:
        name = _Tier(tier).name
        if capacity_band(name, capacity_gb) is None:
            bands = ", ".join(f"{low}..{high}" for low, high in TIER_CAPACITY_GIB[canonical_tier(name)])
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"capacity {capacity_gb} GiB is outside {bands} GiB for tier {name}",
            )

    def _check_performance(self, tier: int, capacity_gb: int, inst: Pb) -> None:
        """INVALID_ARGUMENT when ``inst``'s performance_config does not suit the tier at this size."""
        mode = inst.performance_config.WhichOneof("mode") if inst.HasField("performance_config") else None
        problem = performance_error(
            _Tier(tier).name,
            capacity_gb,
            fixed_iops=inst.performance_config.fixed_iops.max_iops if mode == "fixed_iops" else None,
            iops_per_tb=inst.performance_config.iops_per_tb.max_iops_per_tb
            if mode == "iops_per_tb"
            else None,
        )
        if problem:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"performance_config: {problem}")

    def _check_exports(self, share: Pb) -> None:
        from csi.cloud.gcp import instance_from_pb

        probe = InstancePb(file_shares=[share])
        problem = export_rules_error(instance_from_pb(filestore_v1.Instance.wrap(probe)).nfs_export_options)
        if problem:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"nfs_export_options: {problem}")

    def _check_capacity_quota(self, extra_gb: int) -> None:
        if self.max_capacity_gib is None:
            return
        total = sum(i.file_shares[0].capacity_gb for i in self._instances.values())
        if total + extra_gb > self.max_capacity_gib:
            raise ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota exceeded: total capacity")

    def update_instance(self, request: Pb) -> operations_pb2.Operation:
        inst = self._instance(request.instance.name)
        paths = set(request.update_mask.paths)
        if not paths or paths - {"file_shares", "performance_config"}:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "update_mask paths must be among ['file_shares', 'performance_config']",
            )
        if inst.state != _InstanceState.READY:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION, f"instance is {_InstanceState(inst.state).name}"
            )
        if inst.name in self._updating:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION, "another update of the instance is in progress"
            )
        wanted = InstancePb()
        wanted.CopyFrom(inst)
        if "performance_config" in paths:
            if not inst.custom_performance_supported:
                raise ApiError(
                    grpc.StatusCode.INVALID_ARGUMENT, "the instance does not support custom performance"
                )
            wanted.performance_config.CopyFrom(request.instance.performance_config)
        old_gb = inst.file_shares[0].capacity_gb
        if "file_shares" in paths:
            shares = request.instance.file_shares
            if len(shares) != 1 or shares[0].name != inst.file_shares[0].name:
                raise ApiError(
                    grpc.StatusCode.INVALID_ARGUMENT, "file_shares must name the instance's one share"
                )
            self._check_capacity(inst.tier, shares[0].capacity_gb)
            self._check_exports(shares[0])
            wanted.file_shares[0].capacity_gb = shares[0].capacity_gb
            del wanted.file_shares[0].nfs_export_options[:]
            wanted.file_shares[0].nfs_export_options.extend(shares[0].nfs_export_options)
        new_gb = wanted.file_shares[0].capacity_gb
        tier = _Tier(inst.tier).name
        if new_gb < old_gb and canonical_tier(tier) in BASIC_TIERS:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "basic tier capacity cannot be decreased")
        if capacity_band(tier, new_gb) != capacity_band(tier, old_gb):
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT, "an instance's capacity cannot move to another range"
            )
        self._check_performance(inst.tier, new_gb, wanted)
        self._check_capacity_quota(new_gb - old_gb)
        project, location = inst.name.split("/")[1], inst.name.split("/")[3]
        self._updating.add(inst.name)

        def complete() -> Pb:
            self._updating.discard(inst.name)
            inst.file_shares[0].CopyFrom(wanted.file_shares[0])
            inst.performance_config.CopyFrom(wanted.performance_config)
            inst.state = _InstanceState.READY
            return inst

        def abort() -> None:
            self._updating.discard(inst.name)

        return self._start(location, project, inst.name, "update", complete, abort)

    def delete_instance(self, name: str) -> operations_pb2.Operation:
        inst = self._instance(name)
        if inst.state not in (_InstanceState.READY, _InstanceState.ERROR):
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION, f"instance is {_InstanceState(inst.state).name}"
            )
        inst.state = _InstanceState.DELETING
        project, location = name.split("/")[1], name.split("/")[3]
        instance_id = name.rsplit("/", 1)[1]

        def complete() -> Pb:
            self._instances.pop(name, None)
            self._tags.pop(name, None)
            if self.export_root is not None:
                shutil.rmtree(self.export_root / instance_id, ignore_errors=True)
            self._pending_deleted.append(self._record(inst))
            return empty_pb2.Empty()

        def abort() -> None:
            inst.state = _InstanceState.READY

        return self._start(location, project, name, "delete", complete, abort)
