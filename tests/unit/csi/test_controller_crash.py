"""Crash consistency of the controller: SIGKILL it at random points of a sidecar-like stream of calls.

The emulator is a process of its own that outlives every kill, as the real API does, and its
operations take ``OP_DELAY`` seconds, so a kill can land before the cloud call, while the driver
waits on the long-running operation, or after the operation finished but before the answer. Each
call is retried as external-provisioner and external-snapshotter do: the same request again until
OK, on the codes they treat as "maybe still in progress" (any other code fails the test: a crash
must never turn into a final error). At the end the emulator holds exactly the instances and
backups the stream kept (none leaked, none twice), every retry of a create answered the same id,
and every delete the emulator ever ran was one the stream asked for.
``MOUNTKIT_CRASH_KILLS`` sets the number of kills (CI 20, nightly 200), ``MOUNTKIT_SEED`` the seed.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.cloud import filestore_v1
from google.cloud.common import OperationMetadata
from google.longrunning import operations_pb2, operations_pb2_grpc

from csi.cloud import Instance, instance_name
from csi.cloud.gcp import GcpFilestore
from csi.controller.labels import METADATA_LABELS, P_PVC_NAME, P_PVC_NAMESPACE
from csi.proto import csi_pb2, csi_pb2_grpc
from csi.volume_id import VolumeRef
from tests.support.csiutil import CAP, stop
from tests.support.reliability import FAST_RECONNECT, DriverProcess, report, seed, size

PROJECT, ZONE, REGION = "test-project", "us-central1-a", "us-central1"  # csiutil.driver_argv's
OP_DELAY = 0.4
# external-provisioner's checkError "ProvisioningInBackground" codes (plus a connection error,
# which reaches the client as UNAVAILABLE); the snapshotter retries the same ones.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
    }
)


@pytest.fixture
def emulator() -> Iterator[str]:
    """A Filestore emulator process on loopback; its ``host:port``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "csi.emulator", "--host=127.0.0.1", "--port=0", f"--op-delay={OP_DELAY}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        assert endpoint, "the emulator printed no endpoint"
        yield endpoint
    finally:
        stop(proc)


class Sidecar:
    """The CO side: calls the controller, retries like the sidecars, and kills the driver on a timer."""

    def __init__(self, driver: DriverProcess, endpoint: str, rng: random.Random) -> None:
        self.driver, self.rng = driver, rng
        self.stats: Counter[str] = Counter()
        self.ops_channel = grpc.insecure_channel(endpoint)
        self.operations = operations_pb2_grpc.OperationsStub(self.ops_channel)
        self.channel: grpc.Channel | None = None
        self.killer: threading.Timer | None = None
        self.kills_wanted = 0

    def connect(self) -> Any:
        # A fresh channel per driver: one that met the killed driver may back off for seconds.
        if self.channel is not None:
            self.channel.close()
        self.channel = grpc.insecure_channel(f"unix://{self.driver.sock}", options=FAST_RECONNECT)
        return csi_pb2_grpc.ControllerStub(self.channel)  # type: ignore[no-untyped-call]

    def pending_operations(self) -> int:
        return sum(not op.done for op in all_operations(self.operations))

    def _kill(self) -> None:
        if self.driver.kill():
            self.stats["kills"] += 1
            self.stats["kills_mid_operation"] += self.pending_operations() > 0

    def call(self, method: str, request: Any) -> Any:
        """``method`` until OK, a kill armed at a random point of it; restart a dead driver and retry."""
        if self.stats["kills"] < self.kills_wanted:
            self.killer = threading.Timer(self.rng.uniform(0.0, OP_DELAY * 1.5), self._kill)
            self.killer.start()
        self.stats["calls"] += 1
        stub = self.connect()
        deadline = time.monotonic() + 120
        try:
            while True:
                try:
                    return getattr(stub, method)(request, timeout=10)
                except grpc.RpcError as exc:
                    if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                        raise
                    self.stats["retries"] += 1
                if not self.driver.alive():
                    if self.killer is not None:
                        self.killer.join()  # it has fired: no kill can hit the restart
                    self.driver.kill()
                    self.driver.start()
                    stub = self.connect()
                time.sleep(0.05)
        finally:
            if self.killer is not None:
                self.killer.cancel()
                self.killer.join()
                self.killer = None
            if not self.driver.alive():
                self.driver.kill()
                self.driver.start()

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.ops_channel.close()


def all_operations(stub: Any) -> Iterator[operations_pb2.Operation]:
    """Every operation the emulator has run or is running, all pages."""
    token = ""
    while True:
        page = stub.ListOperations(
            operations_pb2.ListOperationsRequest(name="", page_token=token), timeout=10
        )
        yield from page.operations
        token = page.next_page_token
        if not token:
            return


def create_volume(co: Sidecar, name: str, source: str = "") -> str:
    # The PVC name as external-provisioner --extra-create-metadata passes it: the instance's label
    # then says which claim it was made for, so a second instance for one claim shows.
    request = csi_pb2.CreateVolumeRequest(
        name=name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 40),
        volume_capabilities=[CAP],
        parameters={"tier": "standard", "network": "default", P_PVC_NAME: name, P_PVC_NAMESPACE: "default"},
    )
    if source:
        request.volume_content_source.snapshot.snapshot_id = source
    volume_id: str = co.call("CreateVolume", request).volume.volume_id
    return volume_id


def create_snapshot(co: Sidecar, name: str, volume_id: str) -> str:
    """CreateSnapshot until ready_to_use, as the snapshotter polls a cut that is still uploading."""
    request = csi_pb2.CreateSnapshotRequest(name=name, source_volume_id=volume_id)
    while True:
        snapshot = co.call("CreateSnapshot", request).snapshot
        if snapshot.ready_to_use:
            snapshot_id: str = snapshot.snapshot_id
            return snapshot_id
        co.stats["polls"] += 1
        time.sleep(0.05)


def full_name(volume_id: str) -> str:
    ref = VolumeRef.parse(volume_id)
    assert ref is not None, volume_id
    return instance_name(PROJECT, ref.location, ref.instance)


def test_controller_sigkills_converge(emulator: str) -> None:
    kills, rng_seed = size("MOUNTKIT_CRASH_KILLS", 20), seed()
    rng = random.Random(rng_seed)
    print(f"controller crash seed={rng_seed} (MOUNTKIT_SEED to replay)")
    cloud = GcpFilestore(PROJECT, endpoint=emulator, poll_initial=0.05, poll_maximum=0.2)
    # Not the driver's: a delete of anything here is a delete nobody asked for.
    foreign = cloud.create_instance(
        Instance(name="team-nfs", location=ZONE, tier="BASIC_HDD", capacity_gib=1024), wait=30
    )
    foreign_backup = cloud.create_backup(
        REGION, "team-nfs-nightly", instance_name(PROJECT, ZONE, foreign.name), foreign.share_name, wait=30
    )
    kept_instances = {instance_name(PROJECT, ZONE, foreign.name)}
    kept_backups = {foreign_backup.name}
    asked_deleted: set[str] = set()
    ids: defaultdict[str, set[str]] = defaultdict(set)

    def remember(name: str, returned: str) -> str:
        ids[name].add(returned)
        return returned

    driver = DriverProcess("controller", flags=(f"--emulator-endpoint={emulator}",))
    co = Sidecar(driver, emulator, rng)
    co.kills_wanted = kills
    started = time.monotonic()
    try:
        driver.start()
        cycle = 0
        while co.stats["kills"] < kills:
            # cycle % 4: 0 keeps volume and snapshot, 1 keeps the volume, 2 keeps the snapshot
            # (a backup outlives its instance), 3 restores the snapshot into a new volume first.
            pvc, snap, restored = f"pvc-{cycle}", f"snapshot-{cycle}", f"pvc-{cycle}-restore"
            volume_id = remember(pvc, create_volume(co, pvc))
            snapshot_id = remember(snap, create_snapshot(co, snap, volume_id))
            deletes: list[tuple[str, Any, str]] = []
            if cycle % 4 == 3:
                restored_id = remember(restored, create_volume(co, restored, source=snapshot_id))
                deletes.append(
                    (
                        "DeleteVolume",
                        csi_pb2.DeleteVolumeRequest(volume_id=restored_id),
                        full_name(restored_id),
                    )
                )
            if cycle % 4 in (1, 3):
                deletes.append(
                    ("DeleteSnapshot", csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot_id), snapshot_id)
                )
            else:
                kept_backups.add(snapshot_id)
            if cycle % 4 in (2, 3):
                deletes.append(
                    ("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=volume_id), full_name(volume_id))
                )
            else:
                kept_instances.add(full_name(volume_id))
            for method, request, target in deletes:
                asked_deleted.add(target)
                co.call(method, request)
            cycle += 1
    finally:
        co.close()
        driver.close()

    instances = {i.name: i for i in cloud.list_instances("-")}
    backups = {b.name: b for b in cloud.list_backups("-")}
    instance_names = {instance_name(PROJECT, i.location, i.name) for i in instances.values()}
    with grpc.insecure_channel(emulator) as channel:
        ops = list(all_operations(operations_pb2_grpc.OperationsStub(channel)))
    cloud.close()
    deleted: set[str] = set()
    made_for: Counter[str] = Counter()  # resources the cloud made, per claim or per source volume
    for op in ops:
        meta = OperationMetadata.pb()()
        op.metadata.Unpack(meta)
        if not op.done or op.HasField("error"):
            continue
        if meta.verb == "delete":
            deleted.add(meta.target)
        elif meta.verb == "create" and "/instances/" in meta.target:
            instance = filestore_v1.Instance.pb()()
            op.response.Unpack(instance)
            made_for[instance.labels.get(METADATA_LABELS[P_PVC_NAME], instance.name)] += 1
        elif meta.verb == "create":
            backup = filestore_v1.Backup.pb()()
            op.response.Unpack(backup)
            made_for[f"a backup of {backup.source_instance}"] += 1
    leaked = len(instance_names - kept_instances) + len(set(backups) - kept_backups)
    duplicated = sum(len(returned) > 1 for returned in ids.values()) + sum(n > 1 for n in made_for.values())
    unasked = sorted(deleted - asked_deleted)
    report(
        "controller-crash",
        seed=rng_seed,
        faults_injected=co.stats["kills"],
        kills_mid_operation=co.stats["kills_mid_operation"],
        driver_restarts=driver.starts - 1,
        retries=co.stats["retries"],
        calls_converged=co.stats["calls"],
        leaked=leaked,
        duplicated=duplicated,
        unasked_deletes=len(unasked),
        seconds=round(time.monotonic() - started),
    )
    assert instance_names == kept_instances, f"leaked {instance_names - kept_instances}"
    assert set(backups) == kept_backups, f"leaked {set(backups) - kept_backups}"
    assert all(i.state == "READY" for i in instances.values()) and all(
        b.state == "READY" for b in backups.values()
    )
    assert duplicated == 0, (
        {n: r for n, r in ids.items() if len(r) > 1},
        {k: n for k, n in made_for.items() if n > 1},
    )
    assert unasked == [], unasked
    assert co.stats["kills_mid_operation"] > 0, "no kill landed while a cloud operation ran"
