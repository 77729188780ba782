"""The multishare ops manager: many small volumes packed as shares on a few instances.

What it guarantees, for any mix of concurrent CreateVolume / DeleteVolume / ControllerExpandVolume:

- Work on one instance is serialized: every mutation of an instance or of one of its shares runs
  under that instance's lock (the service itself runs one operation per instance at a time).
- No instance is over-packed: choosing an instance for a new share happens under one planning mutex
  that counts the instance's shares plus the shares other calls have reserved on it but not yet
  created, against its ``max_share_count`` and the 10 TiB instance maximum.  The instance grows (in
  its capacity step, as gcp-filestore-csi-driver does) under its lock, just before the share is made.
- No empty instance is leaked: after a share goes, the instance is deleted when it has no share and
  no reservation, decided under the planning mutex, which also marks it retiring so no planner picks
  it; otherwise it shrinks to the step-aligned sum of its shares (never below 1 TiB).  A retried
  DeleteVolume whose share is already gone runs the same check, so an interrupted delete still cleans up.
- Calls that find a new instance necessary while another call is creating a matching one wait for
  that one instead of creating their own.
- Another cluster's instances are never touched: a share goes only on an instance whose
  storage-class, cluster-name and cluster-location labels equal this controller's (GFD's
  ``isMatchedInstance``), and only instances with this cluster's labels are grown, shrunk or
  deleted.  Two clusters in one project cannot see each other's reservations, so sharing an
  instance between them would race (an instance deleted under the other's new share).

The state that makes this safe is in this process (the controller runs as one elected leader, as
CSI controllers do).  An instance still CREATING from an earlier, interrupted call is not chosen:
the caller gets ABORTED and the CO retries once it is READY.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import grpc

from csi.cloud import (
    CloudError,
    ErrorKind,
    Instance,
    MultishareCloud,
    MultishareInstance,
    OperationPending,
    Share,
)
from csi.controller.capacity import pick_in_bands
from csi.controller.labels import (
    CLUSTER_LABELS,
    LABEL_STORAGE_CLASS,
    MULTISHARE_MATCH_LABELS,
)
from csi.controller.reserved_ip import ReservedIpAllocator
from csi.controller.share_spec import ShareSpec, share_band
from csi.errors import CsiError
from csi.filestore import (
    CREATING,
    DEFAULT_CAPACITY_STEP_GIB,
    MULTISHARE_INSTANCE_GIB,
    MULTISHARE_INSTANCE_PREFIX,
    READY,
    REPAIRING,
    align_up,
)
from csi.proto import csi_pb2
from csi.volume_id import ShareRef

log = logging.getLogger(__name__)

_MIN_INSTANCE, _MAX_INSTANCE = MULTISHARE_INSTANCE_GIB


@dataclass
class _Slot:
    """This process's knowledge of one instance: its lock, and shares reserved on it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    reserved: dict[str, int] = field(default_factory=dict)  # share id -> GiB
    retiring: bool = False
    creating: MultishareInstance | None = None  # set while this process creates it
    users: int = 0  # calls holding or waiting for the lock


def _matches(found: MultishareInstance, spec: ShareSpec) -> bool:
    """gcp-filestore-csi-driver's rule: the same storage-class, cluster-name and cluster-location
    labels, location, tier, network, connect mode, KMS key and protocol, and an address inside
    ``reserved-ipv4-cidr`` when one is given; and here also the same share count, which shares
    depend on."""
    wanted = spec.template
    if spec.reserved_ipv4_cidr and found.ip and not _within(found.ip, spec.reserved_ipv4_cidr):
        return False
    return (
        all(found.labels.get(key) == wanted.labels[key] for key in MULTISHARE_MATCH_LABELS)
        and found.location in spec.regions
        and found.tier == wanted.tier
        and found.network == wanted.network
        and found.connect_mode == wanted.connect_mode
        and (found.kms_key or None) == (wanted.kms_key or None)
        and found.protocol == wanted.protocol
        and found.max_share_count == wanted.max_share_count
    )


def _within(ip: str, cidr: str) -> bool:
    address, network = ipaddress.ip_address(ip), ipaddress.ip_network(cidr, strict=False)
    return address.version == network.version and address in network


def _step(instance: MultishareInstance) -> int:
    return instance.capacity_step_gib or DEFAULT_CAPACITY_STEP_GIB


def _not_found(exc: CloudError) -> bool:
    return exc.kind is ErrorKind.NOT_FOUND and not isinstance(exc, OperationPending)


class MultishareOps:
    """Creates, deletes and grows shares on shared instances (see the module docstring)."""

    def __init__(
        self,
        cloud: MultishareCloud,
        cluster: Mapping[str, str],
        *,
        timeout: float,
        reserved_ips: ReservedIpAllocator | None = None,
    ) -> None:
        """``cluster``: this controller's cluster labels (:func:`csi.controller.labels.cluster_labels`)."""
        self._cloud = cloud
        self._cluster = {key: cluster[key] for key in CLUSTER_LABELS}
        self._timeout = timeout
        self._reserved_ips = reserved_ips
        self._mutex = threading.Lock()
        self._slots: dict[tuple[str, str], _Slot] = {}

    def _use(self, key: tuple[str, str]) -> _Slot:
        """The slot of an instance, counted as used until :meth:`_release` (caller holds the mutex).

        Counting users keeps a slot (and so its lock) alive while anyone waits for it: two locks for
        one instance would break the serialization.
        """
        slot = self._slots.setdefault(key, _Slot())
        slot.users += 1
        return slot

    @contextlib.contextmanager
    def _locked(self, key: tuple[str, str]) -> Iterator[_Slot]:
        """The instance's slot, in use and its lock held for the block (work on one instance is serial)."""
        with self._mutex:
            slot = self._use(key)
        try:
            with slot.lock:
                yield slot
        finally:
            self._release(slot, key)

    def _release(self, slot: _Slot, key: tuple[str, str], share: str = "") -> None:
        """Drop a use of the slot and the share's reservation; forget an idle slot."""
        with self._mutex:
            slot.users -= 1
            slot.reserved.pop(share, None)
            if slot.users == 0 and not slot.reserved and slot.creating is None:
                self._slots.pop(key, None)

    def owns(self, instance: MultishareInstance) -> bool:
        """Whether ``instance`` is this cluster's: its cluster labels equal this controller's."""
        return all(instance.labels.get(key) == value for key, value in self._cluster.items())

    # -- lookups --

    def find_share(self, regions: Sequence[str], name: str) -> tuple[MultishareInstance, Share] | None:
        """The share called ``name`` on this cluster's instances in ``regions`` (a retried CreateVolume's
        lookup; a share of that name on another cluster's instance is that cluster's volume)."""
        for region in regions:
            for share in self._cloud.list_shares(region, "-"):
                if share.name == name:
                    instance = self._cloud.get_multishare_instance(share.location, share.instance)
                    if self.owns(instance):
                        return instance, share
        return None

    def get(self, ref: ShareRef) -> tuple[MultishareInstance, Share] | None:
        """The instance and share behind a volume id, or None when either is gone."""
        try:
            return (
                self._cloud.get_multishare_instance(ref.location, ref.instance),
                self._cloud.get_share(ref.location, ref.instance, ref.share),
            )
        except CloudError as exc:
            if _not_found(exc):
                return None
            raise

    def all_shares(self, label: str, value: str) -> list[tuple[MultishareInstance, Share]]:
        """Every share on the multishare instances labelled ``label=value`` (ListVolumes)."""
        return [
            (instance, share)
            for instance in self._cloud.list_multishare_instances("-")
            if instance.labels.get(label) == value and LABEL_STORAGE_CLASS in instance.labels
            for share in self._cloud.list_shares(instance.location, instance.name)
        ]

    # -- create --

    def create(self, spec: ShareSpec) -> tuple[MultishareInstance, Share]:
        """The share ``spec.share`` on an instance with room: an existing one, grown, or a new one."""
        size = pick_in_bands([spec.band], spec.capacity_range, 0, "a share")
        slot, key = self._plan(spec, size)
        try:
            with slot.lock:
                instance = self._instance_for(slot, key, spec)
                instance = self._make_room(instance, size)
                share = self._create_share(instance, spec, size)
        except OperationPending:
            self._release(slot, key, spec.share)  # still under way: the CO's retry finds it
            raise
        except BaseException:
            self._release(slot, key, spec.share)
            self._cleanup_quietly(key)  # the instance may be new, or now empty
            raise
        self._release(slot, key, spec.share)
        return instance, share

    def _plan(self, spec: ShareSpec, size: int) -> tuple[_Slot, tuple[str, str]]:
        """Reserve room for the share on an instance; a slot marked ``creating`` means a new one."""
        with self._mutex:
            # Instances this process is creating right now come first: waiting for one beats making another.
            for key, slot in self._slots.items():
                creating = slot.creating
                if (
                    creating
                    and not slot.retiring
                    and _matches(creating, spec)
                    and self._room(slot, creating, [], size)
                ):
                    self._use(key).reserved[spec.share] = size
                    return slot, key
            busy = []
            for region in spec.regions:
                for instance in sorted(self._cloud.list_multishare_instances(region), key=lambda i: i.name):
                    if not _matches(instance, spec):
                        continue
                    key = (instance.location, instance.name)
                    slot = self._slots.get(key) or _Slot()
                    if slot.retiring or slot.creating is not None:
                        continue
                    if instance.state != READY:
                        if instance.state in (CREATING, REPAIRING):
                            busy.append(f"{instance.name} is {instance.state}")
                        continue
                    shares = self._cloud.list_shares(instance.location, instance.name)
                    if self._room(slot, instance, shares, size):
                        slot = self._use(key)
                        slot.reserved[spec.share] = size
                        return slot, key
            if busy:
                raise CsiError(
                    grpc.StatusCode.ABORTED,
                    f"no matching instance has room and {', '.join(busy)}; retry when it is READY",
                )
            name = f"{MULTISHARE_INSTANCE_PREFIX}{uuid.uuid4()}"
            key = (spec.regions[0], name)
            new = MultishareInstance(
                name=name,
                location=spec.regions[0],
                tier=spec.template.tier,
                capacity_gib=max(_MIN_INSTANCE, align_up(size, DEFAULT_CAPACITY_STEP_GIB)),
                max_share_count=spec.template.max_share_count,
                network=spec.template.network,
                connect_mode=spec.template.connect_mode,
                reserved_ip_range=spec.template.reserved_ip_range,
                labels=spec.template.labels,
                protocol=spec.template.protocol,
                kms_key=spec.template.kms_key,
                description=spec.template.description,
            )
            slot = self._use(key)
            slot.creating = new
            slot.reserved[spec.share] = size
            return slot, key

    def _room(self, slot: _Slot, instance: MultishareInstance, shares: Sequence[Share], size: int) -> bool:
        """Whether one more share of ``size`` fits, counting reservations (caller holds the mutex)."""
        count = len(shares) + len(slot.reserved)
        used = sum(s.capacity_gib for s in shares) + sum(slot.reserved.values())
        return count < instance.max_share_count and used + size <= _MAX_INSTANCE

    def _instance_for(self, slot: _Slot, key: tuple[str, str], spec: ShareSpec) -> MultishareInstance:
        """The chosen instance, READY; created first when the plan says so (caller holds its lock)."""
        if slot.creating is not None:
            # Either we create it, or an earlier holder of the lock did (and cleared the mark).
            wanted = slot.creating
            try:
                return self._create_instance(wanted, spec.reserved_ipv4_cidr)
            finally:
                with self._mutex:
                    slot.creating = None
        try:
            instance = self._cloud.get_multishare_instance(*key)
        except CloudError as exc:
            if _not_found(exc):
                raise CsiError(grpc.StatusCode.ABORTED, f"instance {key[1]} vanished; retry") from exc
            raise
        if instance.state != READY:
            raise CsiError(grpc.StatusCode.ABORTED, f"instance {instance.name} is {instance.state}; retry")
        return instance

    def _create_instance(self, wanted: MultishareInstance, cidr: str | None) -> MultishareInstance:
        if cidr and self._reserved_ips is not None:
            probe = Instance(
                wanted.name, wanted.location, wanted.tier, wanted.capacity_gib, network=wanted.network
            )
            with self._reserved_ips.reserve(probe, cidr) as ip_range:
                wanted = dataclasses.replace(wanted, reserved_ip_range=ip_range)
                return self._cloud.create_multishare_instance(wanted, wait=self._timeout)
        return self._cloud.create_multishare_instance(wanted, wait=self._timeout)

    def _make_room(self, instance: MultishareInstance, extra: int) -> MultishareInstance:
        """Grow the instance (step-aligned) so ``extra`` GiB more fit (caller holds its lock)."""
        used = sum(s.capacity_gib for s in self._cloud.list_shares(instance.location, instance.name))
        if used + extra <= instance.capacity_gib:
            return instance
        target = max(_MIN_INSTANCE, align_up(used + extra, _step(instance)))
        if target > _MAX_INSTANCE:
            raise CsiError(
                grpc.StatusCode.ABORTED,
                f"instance {instance.name} cannot grow past {_MAX_INSTANCE} GiB for {extra} GiB more; retry",
            )
        log.info("growing instance %s from %d to %d GiB", instance.name, instance.capacity_gib, target)
        return self._cloud.resize_multishare_instance(
            instance.location, instance.name, target, wait=self._timeout
        )

    def _create_share(self, instance: MultishareInstance, spec: ShareSpec, size: int) -> Share:
        share = Share(spec.share, instance.name, instance.location, size, labels=spec.share_labels)
        try:
            return self._cloud.create_share(share, wait=self._timeout)
        except CloudError as exc:
            if exc.kind is not ErrorKind.ALREADY_EXISTS or isinstance(exc, OperationPending):
                raise
        return self._cloud.get_share(instance.location, instance.name, spec.share)

    # -- delete --

    def delete(self, ref: ShareRef) -> None:
        """Delete the share (gone already is fine), then delete or shrink its instance."""
        key = (ref.location, ref.instance)
        with self._locked(key) as slot:
            self._delete_share(ref)
            self._retire_or_shrink(slot, key)

    def _delete_share(self, ref: ShareRef) -> None:
        try:
            share: Share | None = self._cloud.get_share(ref.location, ref.instance, ref.share)
        except CloudError as exc:
            if not _not_found(exc):
                raise
            share = None
        if share is None:
            return
        if share.state != READY:
            raise CsiError(grpc.StatusCode.ABORTED, f"share {ref.share} is {share.state}; retry")
        try:
            self._cloud.delete_share(ref.location, ref.instance, ref.share, wait=self._timeout)
        except CloudError as exc:
            if not _not_found(exc):
                raise

    def _cleanup_quietly(self, key: tuple[str, str]) -> None:
        """After a failed create: retire or shrink the instance; a failure here is only logged."""
        try:
            with self._locked(key) as slot:
                self._retire_or_shrink(slot, key)
        except (CloudError, CsiError) as exc:
            log.warning("cleaning up instance %s after a failed create: %s", key[1], exc)

    def _retire_or_shrink(self, slot: _Slot, key: tuple[str, str]) -> None:
        """Delete the instance when no share is on it or on its way, else shrink it (caller holds its
        lock)."""
        with self._mutex:
            if slot.reserved or slot.creating is not None:
                return  # a create is on its way to this instance
            try:
                instance = self._cloud.get_multishare_instance(*key)
            except CloudError as exc:
                if _not_found(exc):
                    return
                raise
            if instance.state != READY:
                return
            if not self.owns(instance):
                log.info("leaving instance %s as it is: it is not this cluster's", key[1])
                return
            shares = self._cloud.list_shares(*key)
            slot.retiring = not shares
        if slot.retiring:
            try:
                log.info("deleting instance %s: its last share is gone", key[1])
                self._cloud.delete_multishare_instance(*key, wait=self._timeout)
            except CloudError as exc:
                if not _not_found(exc):
                    with self._mutex:
                        slot.retiring = isinstance(exc, OperationPending)
                    raise
            return
        target = max(_MIN_INSTANCE, align_up(sum(s.capacity_gib for s in shares), _step(instance)))
        if target < instance.capacity_gib:
            log.info("shrinking instance %s from %d to %d GiB", key[1], instance.capacity_gib, target)
            try:
                self._cloud.resize_multishare_instance(*key, target, wait=self._timeout)
            except CloudError as exc:  # the share is gone either way; the next delete shrinks again
                log.warning("shrinking instance %s failed: %s", key[1], exc)

    # -- expand --

    def expand(self, ref: ShareRef, capacity_range: csi_pb2.CapacityRange) -> Share:
        """Grow the share to the range (within the instance's share band), growing the instance first."""
        key = (ref.location, ref.instance)
        with self._locked(key) as slot:
            found = self.get(ref)
            if found is None:
                raise CsiError(grpc.StatusCode.NOT_FOUND, f"volume {ref.volume_id} does not exist")
            instance, share = found
            size = pick_in_bands(
                [share_band(instance.max_share_count)], capacity_range, share.capacity_gib, "a share"
            )
            if size <= share.capacity_gib:
                return share
            if instance.state != READY or share.state != READY:
                raise CsiError(grpc.StatusCode.UNAVAILABLE, f"volume {ref.volume_id} is not READY; retry")
            with self._mutex:
                reserved = sum(slot.reserved.values())
            used = sum(s.capacity_gib for s in self._cloud.list_shares(*key))
            if used + reserved + size - share.capacity_gib > _MAX_INSTANCE:
                raise CsiError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"instance {ref.instance} has no room to grow {ref.share} to {size} GiB",
                )
            if not self.owns(instance) and used + size - share.capacity_gib > instance.capacity_gib:
                raise CsiError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"instance {ref.instance} is another cluster's and has no room to grow {ref.share} to "
                    f"{size} GiB; it is not grown",
                )
            self._make_room(instance, size - share.capacity_gib)
            return self._cloud.resize_share(*key, ref.share, size, wait=self._timeout)
