"""The emulator's multishare half: Filestore v1beta1 instances with multi_share_enabled, and shares.

A mixin of :class:`~csi.cloud.emulator.state.EmulatorState` over the same lock, operations, IP pool
and export root.  It enforces what the driver must respect on the real service: the instance and
share capacity bands and the instance's step, the share count, that the shares fit the instance,
that an instance with shares cannot be deleted, and that an instance runs one operation at a time
(on itself or on one of its shares).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from csi.cloud import Instance, MultishareInstance, Share
from csi.cloud.emulator.checks import check_id, now_pb, parse_parent
from csi.cloud.emulator.errors import ApiError, not_found
from csi.cloud.emulator.operations import OperationsMixin, Pb
from csi.filestore import (
    DEFAULT_CAPACITY_STEP_GIB,
    MAX_SHARES_PER_INSTANCE,
    MAX_VOLUME_SIZES_GIB,
    MULTISHARE_INSTANCE_GIB,
    MULTISHARE_TIERS,
    SHARE_CAPACITY_GIB,
    SHARE_MIN_GIB_MANY_SHARES,
    is_share_name,
    region_of,
    shares_per_instance,
)
from csi.proto import filestore_v1beta1_pb2 as pb

_Tier = pb.Instance.Tier
_State = pb.Instance.State
_ShareState = pb.Share.State
#: The most shares an instance may be asked for (1 TiB ... 128 GiB shares on a 10 TiB instance).
MAX_SHARE_COUNT_LIMIT = shares_per_instance(min(MAX_VOLUME_SIZES_GIB))

ShareHook = Callable[[MultishareInstance, Share], None]


def _project_location(name: str) -> tuple[str, str]:
    """The project and location of a resource name ``projects/<p>/locations/<l>/...``."""
    parts = name.split("/")
    return parts[1], parts[3]


def _v1_tier(inst: Pb) -> Any:
    """The instance's tier as Filestore v1 numbers it (v1 and v1beta1 number tiers differently)."""
    from google.cloud import filestore_v1

    tiers: Any = filestore_v1.Instance.Tier
    return tiers[_Tier.Name(inst.tier)]


class MultishareMixin(OperationsMixin):
    """The v1beta1 RPC bodies; each runs under the state's lock (``EmulatorState.run``)."""

    # Provided by EmulatorState.
    export_root: Path | None
    _ms_instances: dict[str, Pb]
    _shares: dict[str, Pb]
    on_share_created: ShareHook | None
    on_share_deleted: ShareHook | None

    if TYPE_CHECKING:

        def _free_ip(self) -> str: ...

        def _name_taken(self, name: str) -> bool: ...

        def _check_instance_quota(self) -> None: ...

        def _record(self, inst: Pb) -> Instance: ...

        def _start_backup(
            self,
            request: Pb,
            capacity_gb: int,
            tier: int,
            share_dir: Path | None,
            respond: Callable[[Pb], Pb] = ...,
        ) -> operations_pb2.Operation: ...

    # -- helpers --

    def _ms_instance(self, name: str) -> Pb:
        inst = self._ms_instances.get(name)
        if inst is None:
            raise not_found(name)
        return inst

    def _ms_idle(self, name: str) -> None:
        """FAILED_PRECONDITION while an operation runs on the instance or one of its shares."""
        busy = [t for t in self._running_targets() if t == name or t.startswith(name + "/")]
        if busy:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"an operation on {busy[0]} is in progress")

    def _ms_ready(self, inst: Pb) -> None:
        if inst.state != _State.READY:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"instance is {_State.Name(inst.state)}")

    def _shares_of(self, instance: str) -> list[Pb]:
        prefix = instance + "/shares/"
        return [s for n, s in self._shares.items() if n.startswith(prefix)]

    def _ms_check_capacity(self, inst: Pb, capacity_gb: int) -> None:
        low, high = MULTISHARE_INSTANCE_GIB
        step = inst.capacity_step_size_gb or DEFAULT_CAPACITY_STEP_GIB
        if not low <= capacity_gb <= high or capacity_gb % step:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"capacity {capacity_gb} GiB is not a multiple of {step} GiB within {low}..{high} GiB",
            )

    def _share_band(self, inst: Pb) -> tuple[int, int]:
        low = (
            SHARE_MIN_GIB_MANY_SHARES
            if inst.max_share_count > MAX_SHARES_PER_INSTANCE
            else SHARE_CAPACITY_GIB[0]
        )
        return low, SHARE_CAPACITY_GIB[1]

    def _ms_record(self, inst: Pb) -> MultishareInstance:
        from csi.cloud.gcp_multishare import multishare_instance_from_pb

        return multishare_instance_from_pb(inst)

    def _share_record(self, share: Pb) -> Share:
        from csi.cloud.gcp_multishare import share_from_pb

        return share_from_pb(share)

    def _instance_dir(self, name: str) -> Path | None:
        return None if self.export_root is None else self.export_root / name.rsplit("/", 1)[1]

    # -- instances --

    def ms_get_instance(self, name: str) -> Pb:
        return self._ms_instance(name)

    def ms_list_instances(self, parent: str, page_size: int, page_token: str) -> Pb:
        project, location = parse_parent(parent, allow_any=True)
        prefix = f"projects/{project}/locations/" + ("" if location == "-" else f"{location}/instances/")
        found = sorted(
            (i for n, i in self._ms_instances.items() if n.startswith(prefix)), key=lambda i: i.name
        )
        page, token = self._page(found, page_size, page_token)
        return pb.ListInstancesResponse(instances=page, next_page_token=token)

    def ms_create_instance(self, request: Pb) -> operations_pb2.Operation:
        project, location = parse_parent(request.parent, allow_any=False)
        check_id("instance", request.instance_id)
        spec = request.instance
        name = f"{request.parent}/instances/{request.instance_id}"
        if not spec.multi_share_enabled:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the emulator's v1beta1 API serves multishare instances only",
            )
        if _Tier.Name(spec.tier) not in MULTISHARE_TIERS:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"multishare needs one of the tiers {sorted(MULTISHARE_TIERS)}",
            )
        if len(spec.networks) != 1 or not spec.networks[0].network:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "exactly one network with a name is required")
        inst = pb.Instance()
        inst.CopyFrom(spec)
        inst.capacity_step_size_gb = DEFAULT_CAPACITY_STEP_GIB
        inst.max_capacity_gb = MULTISHARE_INSTANCE_GIB[1]
        inst.max_share_count = inst.max_share_count or MAX_SHARES_PER_INSTANCE
        if not 1 <= inst.max_share_count <= MAX_SHARE_COUNT_LIMIT:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT, f"max_share_count must be 1..{MAX_SHARE_COUNT_LIMIT}"
            )
        self._ms_check_capacity(inst, spec.capacity_gb)
        if self._name_taken(name):
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Resource '{name}' already exists")
        self._check_instance_quota()
        ip = self._free_ip()
        inst.name = name
        inst.state = _State.CREATING
        inst.create_time.CopyFrom(now_pb())
        del inst.networks[0].ip_addresses[:]
        inst.networks[0].ip_addresses.append(ip)
        if not inst.networks[0].connect_mode:
            inst.networks[0].connect_mode = pb.NetworkConfig.DIRECT_PEERING
        self._ms_instances[name] = inst

        def complete() -> Pb:
            inst.state = _State.READY
            target = self._instance_dir(name)
            if target is not None:
                target.mkdir(parents=True, exist_ok=True)
            self._instance_event(inst, created=True)
            return inst

        def abort() -> None:
            self._ms_instances.pop(name, None)

        return self._start(location, project, name, "create", complete, abort)

    def ms_update_instance(self, request: Pb) -> operations_pb2.Operation:
        inst = self._ms_instance(request.instance.name)
        if list(request.update_mask.paths) != ["capacity_gb"]:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT, "only update_mask paths ['capacity_gb'] is supported"
            )
        self._ms_ready(inst)
        self._ms_idle(inst.name)
        new_gb = request.instance.capacity_gb
        self._ms_check_capacity(inst, new_gb)
        used = sum(s.capacity_gb for s in self._shares_of(inst.name))
        if new_gb < used:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION, f"capacity {new_gb} GiB is below the shares' {used} GiB"
            )
        project, location = _project_location(inst.name)

        def complete() -> Pb:
            inst.capacity_gb = new_gb
            return inst

        return self._start(location, project, inst.name, "update", complete)

    def ms_delete_instance(self, name: str) -> operations_pb2.Operation:
        inst = self._ms_instance(name)
        if inst.state not in (_State.READY, _State.ERROR):
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"instance is {_State.Name(inst.state)}")
        self._ms_idle(name)
        if self._shares_of(name):
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, "the instance still has shares")
        inst.state = _State.DELETING
        project, location = _project_location(name)

        def complete() -> Pb:
            self._ms_instances.pop(name, None)
            target = self._instance_dir(name)
            if target is not None:
                shutil.rmtree(target, ignore_errors=True)
            self._instance_event(inst, created=False)
            return empty_pb2.Empty()

        def abort() -> None:
            inst.state = _State.READY

        return self._start(location, project, name, "delete", complete, abort)

    def v1_view(self, inst: Pb) -> Pb:
        """The instance as Filestore v1 shows it: no file shares (they are v1beta1 shares)."""
        from google.cloud import filestore_v1

        v1: Any = filestore_v1.Instance
        view = v1.pb()(
            name=inst.name,
            state=v1.State[_State.Name(inst.state)],  # v1 numbers some states differently: by name
            tier=_v1_tier(inst),
            labels=dict(inst.labels),
            kms_key_name=inst.kms_key_name,
            protocol=inst.protocol,
        )
        view.create_time.CopyFrom(inst.create_time)
        for net in inst.networks:
            view.networks.add().ParseFromString(net.SerializeToString())  # NetworkConfig: same fields in v1
        return view

    def _instance_event(self, inst: Pb, *, created: bool) -> None:
        """Queue the state's instance hook with the v1 view of the instance."""
        (self._pending_created if created else self._pending_deleted).append(self._record(self.v1_view(inst)))

    # -- shares --

    def _share(self, name: str) -> Pb:
        share = self._shares.get(name)
        if share is None:
            raise not_found(name)
        return share

    def get_share(self, name: str) -> Pb:
        return self._share(name)

    def list_shares(self, parent: str, page_size: int, page_token: str) -> Pb:
        parts = parent.split("/")
        if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "instances":
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {parent!r}")
        location, instance = parts[3], parts[5]

        def wanted(name: str) -> bool:
            p = name.split("/")
            return p[1] == parts[1] and location in ("-", p[3]) and instance in ("-", p[5])

        found = sorted((s for n, s in self._shares.items() if wanted(n)), key=lambda s: s.name)
        page, token = self._page(found, page_size, page_token)
        return pb.ListSharesResponse(shares=page, next_page_token=token)

    def create_share(self, request: Pb) -> operations_pb2.Operation:
        inst = self._ms_instance(request.parent)
        if not is_share_name(request.share_id):
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid share id {request.share_id!r}")
        name = f"{request.parent}/shares/{request.share_id}"
        if name in self._shares:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Resource '{name}' already exists")
        self._ms_ready(inst)
        self._ms_idle(inst.name)
        shares = self._shares_of(inst.name)
        if len(shares) >= inst.max_share_count:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the instance has its maximum of {inst.max_share_count} shares",
            )
        capacity = request.share.capacity_gb
        low, high = self._share_band(inst)
        if not low <= capacity <= high:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"share capacity {capacity} GiB is outside {low}..{high} GiB",
            )
        used = sum(s.capacity_gb for s in shares)
        if used + capacity > inst.capacity_gb:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the instance has {inst.capacity_gb - used} GiB free, not {capacity} GiB",
            )
        share = pb.Share()
        share.CopyFrom(request.share)
        share.name = name
        share.mount_name = share.mount_name or request.share_id
        share.state = _ShareState.CREATING
        share.create_time.CopyFrom(now_pb())
        self._shares[name] = share
        project, location = _project_location(name)

        def complete() -> Pb:
            share.state = _ShareState.READY
            target = self._instance_dir(inst.name)
            if target is not None:
                (target / share.mount_name).mkdir(parents=True, exist_ok=True)
            self._share_event(inst, share, created=True)
            return share

        def abort() -> None:
            self._shares.pop(name, None)

        return self._start(location, project, name, "create", complete, abort)

    def update_share(self, request: Pb) -> operations_pb2.Operation:
        share = self._share(request.share.name)
        if list(request.update_mask.paths) != ["capacity_gb"]:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT, "only update_mask paths ['capacity_gb'] is supported"
            )
        inst = self._ms_instance(share.name.rsplit("/shares/", 1)[0])
        self._ms_ready(inst)
        self._ms_idle(inst.name)
        capacity = request.share.capacity_gb
        low, high = self._share_band(inst)
        if not low <= capacity <= high:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"share capacity {capacity} GiB is outside {low}..{high} GiB",
            )
        others = sum(s.capacity_gb for s in self._shares_of(inst.name) if s.name != share.name)
        if others + capacity > inst.capacity_gb:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, "the shares would not fit the instance")
        project, location = _project_location(share.name)

        def complete() -> Pb:
            share.capacity_gb = capacity
            return share

        return self._start(location, project, share.name, "update", complete)

    def delete_share(self, name: str) -> operations_pb2.Operation:
        share = self._share(name)
        inst = self._ms_instance(name.rsplit("/shares/", 1)[0])
        if share.state != _ShareState.READY:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"share is {_ShareState.Name(share.state)}")
        self._ms_idle(inst.name)
        share.state = _ShareState.DELETING
        project, location = _project_location(name)

        def complete() -> Pb:
            self._shares.pop(name, None)
            target = self._instance_dir(inst.name)
            if target is not None:
                shutil.rmtree(target / share.mount_name, ignore_errors=True)
            self._share_event(inst, share, created=False)
            return empty_pb2.Empty()

        def abort() -> None:
            share.state = _ShareState.READY

        return self._start(location, project, name, "delete", complete, abort)

    def ms_create_backup(self, request: Pb) -> operations_pb2.Operation:
        """A backup of one share of a multishare instance (v1beta1 CreateBackup)."""

        _, region = parse_parent(request.parent, allow_any=False)
        check_id("backup", request.backup_id)
        if region_of(region) != region:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"backups live in a region, not {region!r}")
        inst = self._ms_instance(request.backup.source_instance)
        share = self._share(f"{inst.name}/shares/{request.backup.source_file_share}")
        self._ms_ready(inst)
        if share.state != _ShareState.READY:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"share is {_ShareState.Name(share.state)}")
        target = self._instance_dir(inst.name)
        return self._start_backup(
            request,
            share.capacity_gb,
            _v1_tier(inst),
            None if target is None else target / share.mount_name,
            respond=lambda stored: pb.Backup.FromString(stored.SerializeToString()),
        )

    def _share_event(self, inst: Pb, share: Pb, *, created: bool) -> None:
        hook = self.on_share_created if created else self.on_share_deleted
        if hook is not None:
            records = (self._ms_record(inst), self._share_record(share))
            self._pending_calls.append(lambda: hook(*records))
