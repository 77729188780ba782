"""csi.cloud.gcp (the real google-cloud-filestore client) against the emulator over loopback."""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from csi.cloud import CloudError, ErrorKind, Instance, OperationPending, instance_name
from csi.cloud.emulator import EmulatorState, start_emulator
from csi.cloud.gcp import GcpFilestore

ZONE = "us-central1-c"
REGION = "us-central1"


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState(op_delay=0.05)


@pytest.fixture
def cloud(state: EmulatorState) -> Iterator[GcpFilestore]:
    server, endpoint = start_emulator(state=state)
    client = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02, poll_maximum=0.1, page_size=2)
    try:
        yield client
    finally:
        client.close()
        server.stop(0).wait()


def _inst(name: str, capacity: int = 1024, **changes: object) -> Instance:
    base = Instance(name=name, location=ZONE, tier="BASIC_HDD", capacity_gib=capacity)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_create_get_list_expand_delete(cloud: GcpFilestore) -> None:
    made = cloud.create_instance(_inst("vol-a", labels={"owner": "csi"}), wait=10)
    assert made.state == "READY" and made.share_name == "vol1" and made.capacity_gib == 1024
    assert made.ip is not None and ipaddress.ip_address(made.ip).is_loopback
    assert dict(made.labels) == {"owner": "csi"}
    assert cloud.get_instance(ZONE, "vol-a") == made

    for n in ("vol-b", "vol-c", "vol-d"):
        cloud.create_instance(_inst(n), wait=10)
    listed = cloud.list_instances()  # page_size=2: the pager follows next_page_token
    assert [i.name for i in listed] == ["vol-a", "vol-b", "vol-c", "vol-d"]
    assert len({i.ip for i in listed}) == 4
    assert [i.name for i in cloud.list_instances(ZONE)] == ["vol-a", "vol-b", "vol-c", "vol-d"]
    assert cloud.list_instances("europe-west1-b") == []

    grown = cloud.expand_instance(ZONE, "vol-a", 2048, wait=10)
    assert grown.capacity_gib == 2048 and cloud.get_instance(ZONE, "vol-a").capacity_gib == 2048

    cloud.delete_instance(ZONE, "vol-a", wait=10)
    with pytest.raises(CloudError) as err:
        cloud.get_instance(ZONE, "vol-a")
    assert err.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(CloudError) as err:
        cloud.delete_instance(ZONE, "vol-a", wait=10)
    assert err.value.kind is ErrorKind.NOT_FOUND


def test_already_exists_and_validation(cloud: GcpFilestore) -> None:
    cloud.create_instance(_inst("vol-a"), wait=10)
    with pytest.raises(CloudError) as err:
        cloud.create_instance(_inst("vol-a"), wait=10)
    assert err.value.kind is ErrorKind.ALREADY_EXISTS
    for bad in (_inst("Vol_A"), _inst("vol-x", capacity=50), _inst("vol-y", share_name="bad-name")):
        with pytest.raises(CloudError) as err:
            cloud.create_instance(bad, wait=10)
        assert err.value.kind is ErrorKind.INVALID_ARGUMENT, bad
    with pytest.raises(CloudError) as err:
        cloud.create_instance(_inst("vol-z", tier="NOT_A_TIER"), wait=10)
    assert err.value.kind is ErrorKind.INVALID_ARGUMENT
    with pytest.raises(CloudError) as err:
        cloud.expand_instance(ZONE, "vol-a", 512, wait=10)
    assert err.value.kind is ErrorKind.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("changes", "ok"),
    [
        ({"capacity_gib": 65433}, True),
        ({"capacity_gib": 65434}, False),  # past 63.9 TiB
        ({"tier": "ZONAL", "capacity_gib": 9984}, True),
        ({"tier": "ZONAL", "capacity_gib": 10000}, False),  # between ZONAL's two bands
        ({"share_name": "s" * 16}, True),
        ({"share_name": "s" * 17}, False),  # basic tiers: at most 16
        ({"tier": "ZONAL", "share_name": "s" * 63}, True),
        ({"tier": "ZONAL", "share_name": "s" * 64}, False),
    ],
)
def test_emulator_enforces_the_filestore_facts(
    cloud: GcpFilestore, changes: dict[str, object], ok: bool
) -> None:
    """The emulator refuses exactly what csi.filestore says Filestore refuses."""
    wanted = _inst("vol-f", **changes)
    if ok:
        assert cloud.create_instance(wanted, wait=10).capacity_gib == wanted.capacity_gib
        return
    with pytest.raises(CloudError) as err:
        cloud.create_instance(wanted, wait=10)
    assert err.value.kind is ErrorKind.INVALID_ARGUMENT


def test_backup_and_restore(cloud: GcpFilestore) -> None:
    cloud.create_instance(_inst("src"), wait=10)
    source = instance_name("proj", ZONE, "src")
    backup = cloud.create_backup(REGION, "bk-1", source, "vol1", wait=10)
    assert backup.name == f"projects/proj/locations/{REGION}/backups/bk-1"
    assert (backup.state, backup.source_instance, backup.capacity_gib) == ("READY", source, 1024)
    assert cloud.get_backup(backup.name) == backup
    assert [b.name for b in cloud.list_backups()] == [backup.name]

    restored = cloud.create_instance(_inst("copy", source_backup=backup.name), wait=10)
    assert restored.source_backup == backup.name and restored.state == "READY"

    with pytest.raises(CloudError) as err:
        cloud.create_instance(_inst("nope", source_backup=backup.name + "x"), wait=10)
    assert err.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(CloudError) as err:
        cloud.create_backup(REGION, "bk-2", instance_name("proj", ZONE, "missing"), "vol1", wait=10)
    assert err.value.kind is ErrorKind.NOT_FOUND

    cloud.delete_backup(backup.name, wait=10)
    with pytest.raises(CloudError) as err:
        cloud.get_backup(backup.name)
    assert err.value.kind is ErrorKind.NOT_FOUND


def test_injected_errors(cloud: GcpFilestore, state: EmulatorState) -> None:
    state.inject("CreateInstance", grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(CloudError) as err:
        cloud.create_instance(_inst("vol-a"), wait=10)
    assert err.value.kind is ErrorKind.PERMISSION_DENIED
    assert cloud.create_instance(_inst("vol-a"), wait=10).state == "READY"  # the fault was used up

    # GetInstance is retried on UNAVAILABLE by the client's default policy: one fault is absorbed.
    state.inject("GetInstance", grpc.StatusCode.UNAVAILABLE, count=1)
    assert cloud.get_instance(ZONE, "vol-a").name == "vol-a"

    state.inject("ListInstances", grpc.StatusCode.INTERNAL)
    with pytest.raises(CloudError) as err:
        cloud.list_instances()
    assert err.value.kind is ErrorKind.INTERNAL

    # A failure while polling the operation surfaces too.
    state.inject("GetOperation", grpc.StatusCode.FAILED_PRECONDITION)
    with pytest.raises(CloudError) as err:
        cloud.delete_instance(ZONE, "vol-a", wait=10)
    assert err.value.kind is ErrorKind.FAILED_PRECONDITION


def test_quota() -> None:
    state = EmulatorState(op_delay=0.0, max_instances=2, max_capacity_gib=3072)
    server, endpoint = start_emulator(state=state)
    cloud = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02)
    try:
        cloud.create_instance(_inst("a"), wait=10)
        cloud.create_instance(_inst("b", capacity=2048), wait=10)
        with pytest.raises(CloudError) as err:
            cloud.create_instance(_inst("c"), wait=10)
        assert err.value.kind is ErrorKind.RESOURCE_EXHAUSTED
        with pytest.raises(CloudError) as err:
            cloud.expand_instance(ZONE, "a", 2048, wait=10)
        assert err.value.kind is ErrorKind.RESOURCE_EXHAUSTED
    finally:
        cloud.close()
        server.stop(0).wait()


def test_operation_pending_then_done() -> None:
    state = EmulatorState(op_delay=0.5)
    server, endpoint = start_emulator(state=state)
    cloud = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.05, poll_maximum=0.1)
    try:
        with pytest.raises(OperationPending) as err:
            cloud.create_instance(_inst("slow"), wait=0.1)
        assert err.value.kind is ErrorKind.DEADLINE_EXCEEDED
        assert "/operations/operation-" in err.value.operation
        assert cloud.get_instance(ZONE, "slow").state == "CREATING"
        with pytest.raises(CloudError) as refused:  # not READY yet: refused before any operation
            cloud.expand_instance(ZONE, "slow", 2048, wait=10)
        assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
        time.sleep(0.6)
        assert cloud.get_instance(ZONE, "slow").state == "READY"  # the operation went on
        with pytest.raises(OperationPending):
            cloud.delete_instance(ZONE, "slow", wait=0)
        assert cloud.get_instance(ZONE, "slow").state == "DELETING"
    finally:
        cloud.close()
        server.stop(0).wait()


def test_export_dirs_follow_instances_and_backups(tmp_path: Path) -> None:
    created: list[str] = []
    state = EmulatorState(
        op_delay=0.0, export_root=tmp_path, on_instance_created=lambda i: created.append(i.name)
    )
    server, endpoint = start_emulator(state=state)
    cloud = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02)
    try:
        cloud.create_instance(_inst("src"), wait=10)
        assert (tmp_path / "src" / "vol1").is_dir() and created == ["src"]
        (tmp_path / "src" / "vol1" / "data.txt").write_text("hello")
        backup = cloud.create_backup(REGION, "bk", instance_name("proj", ZONE, "src"), "vol1", wait=10)
        assert backup.storage_bytes == 5
        cloud.create_instance(_inst("dst", source_backup=backup.name), wait=10)
        assert (tmp_path / "dst" / "vol1" / "data.txt").read_text() == "hello"
        cloud.delete_instance(ZONE, "src", wait=10)
        assert not (tmp_path / "src").exists()
    finally:
        cloud.close()
        server.stop(0).wait()


def test_loopback_only() -> None:
    with pytest.raises(ValueError):
        EmulatorState(ip_pool="10.0.0.0/24")
    with pytest.raises(ValueError):
        start_emulator("0.0.0.0")


def test_module_runs_alone() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "csi.emulator", "--port", "0", "--op-delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("127.0.0.1:")
        cloud = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02)
        assert cloud.create_instance(_inst("solo"), wait=10).state == "READY"
        cloud.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_no_rpc_sees_an_instance_whose_hook_has_not_returned() -> None:
    """Hooks start and stop the instances' servers: until one returns, other RPCs wait, so a new instance
    never gets an address whose old server is still being torn down, nor is seen READY before it is up."""
    entered, release = threading.Event(), threading.Event()

    def slow(inst: Instance) -> None:
        entered.set()
        release.wait(10)

    # a pool of two addresses (127.0.100.1 and .2): "a" takes one, "b" the other
    state = EmulatorState(op_delay=0.0, ip_pool="127.0.100.0/30", on_instance_deleted=slow)
    server, endpoint = start_emulator(state=state)
    cloud = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02)
    results: dict[str, Instance] = {}
    try:
        old_ip = cloud.create_instance(_inst("a"), wait=10).ip
        cloud.create_instance(_inst("b"), wait=10)
        deleting = threading.Thread(target=cloud.delete_instance, args=(ZONE, "a"), kwargs={"wait": 10})
        deleting.start()
        assert entered.wait(10)
        creating = threading.Thread(
            target=lambda: results.update(c=cloud.create_instance(_inst("c"), wait=10))
        )
        creating.start()
        creating.join(0.5)
        assert creating.is_alive() and not results  # waits for a's teardown, not RESOURCE_EXHAUSTED
        release.set()
        deleting.join(10)
        creating.join(10)
        assert results["c"].ip == old_ip  # a's address, once its server is gone
    finally:
        release.set()
        cloud.close()
        server.stop(0).wait()

    entered.clear()
    release.clear()
    state = EmulatorState(op_delay=0.0, on_instance_created=slow)
    server, endpoint = start_emulator(state=state)
    cloud = GcpFilestore("proj", endpoint=endpoint, poll_initial=0.02)
    try:
        creating = threading.Thread(target=cloud.create_instance, args=(_inst("d"),), kwargs={"wait": 10})
        creating.start()
        assert entered.wait(10)
        looking = threading.Thread(target=lambda: results.update(d=cloud.get_instance(ZONE, "d")))
        looking.start()
        looking.join(0.5)
        assert looking.is_alive() and "d" not in results  # not READY to anyone before its server is up
        release.set()
        looking.join(10)
        creating.join(10)
        assert results["d"].state == "READY"
    finally:
        release.set()
        cloud.close()
        server.stop(0).wait()
