"""What a real GKE cluster needs of CreateVolume: no leaked instance, extra labels, mount options.

Over the real gRPC path against the Filestore emulator (controllerutil's ``running_driver``).
The external-provisioner retries CreateVolume on ABORTED, UNAVAILABLE and DEADLINE_EXCEEDED and keeps
retrying (then deletes the volume) even when the PVC is deleted meanwhile; on a final code such as
INTERNAL it gives up, and a deleted PVC then leaks an instance that exists. So: an instance that may
still become READY gets a retried code, and a failed one we created is deleted before we answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from csi.cloud import CloudError, ErrorKind, Instance, instance_name
from csi.proto import csi_pb2
from tests.support.controllerutil import ZONE, Driver, code_of, create, mount_cap, running_driver


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    with running_driver(tmp_path) as d:
        yield d


def _request(name: str, **kwargs: object) -> csi_pb2.CreateVolumeRequest:
    return csi_pb2.CreateVolumeRequest(name=name, volume_capabilities=[mount_cap()], **kwargs)  # type: ignore[arg-type]


def _instances(d: Driver) -> list[Instance]:
    return d.cloud.list_instances("-")


# --- leak safety ------------------------------------------------------------------------------------


def test_a_creating_instance_is_retryable_and_the_retry_gets_the_same_instance(driver: Driver) -> None:
    driver.state.hold()
    driver.servicer._timeout = 0.2
    request = _request("held")
    assert code_of(driver.ctl.CreateVolume, request) == grpc.StatusCode.DEADLINE_EXCEEDED  # our wait ran out
    assert code_of(driver.ctl.CreateVolume, request) == grpc.StatusCode.ABORTED  # found CREATING
    [creating] = _instances(driver)
    assert creating.state == "CREATING"
    driver.state.release()
    volume = driver.ctl.CreateVolume(request).volume
    assert volume.volume_id == f"modeInstance/{ZONE}/held/vol1"
    [ready] = _instances(driver)
    assert (ready.name, ready.ip, ready.state) == (creating.name, creating.ip, "READY")


@pytest.mark.parametrize("state", ["REPAIRING", "RESTORING", "SUSPENDING", "RESUMING"])
def test_an_instance_in_a_passing_state_is_unavailable(driver: Driver, state: str) -> None:
    create(driver, "busy")
    driver.state.set_instance_state(instance_name("proj", ZONE, "busy"), state)
    assert code_of(driver.ctl.CreateVolume, _request("busy")) == grpc.StatusCode.UNAVAILABLE
    driver.state.set_instance_state(instance_name("proj", ZONE, "busy"), "READY")
    assert create(driver, "busy").volume_id == f"modeInstance/{ZONE}/busy/vol1"


def test_a_failed_creation_is_deleted_before_the_error_returns(driver: Driver) -> None:
    driver.state.fail_next_create("no capacity in the zone")
    request = _request("doomed")
    with pytest.raises(grpc.RpcError) as info:
        driver.ctl.CreateVolume(request)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "ERROR" in (info.value.details() or "") and "deleted" in (info.value.details() or "")
    assert _instances(driver) == []  # gone before the answer: nothing left to leak
    volume = driver.ctl.CreateVolume(request).volume  # the provisioner's retry creates it afresh
    assert volume.volume_id == f"modeInstance/{ZONE}/doomed/vol1"
    assert [i.state for i in _instances(driver)] == ["READY"]


def test_an_instance_found_in_error_is_deleted_when_ours(driver: Driver) -> None:
    create(driver, "broke")
    driver.state.set_instance_state(instance_name("proj", ZONE, "broke"), "ERROR")
    assert code_of(driver.ctl.CreateVolume, _request("broke")) == grpc.StatusCode.INTERNAL
    assert _instances(driver) == []


def test_an_instance_in_error_not_created_by_us_is_left_alone(driver: Driver) -> None:
    cloud = driver.cloud
    driver.state.fail_next_create()
    foreign = Instance(
        name="theirs", location=ZONE, tier="BASIC_HDD", capacity_gib=1024, labels={"owner": "me"}
    )
    with pytest.raises(CloudError) as info:
        cloud.create_instance(foreign, wait=5)
    assert info.value.kind is ErrorKind.INTERNAL
    assert code_of(driver.ctl.CreateVolume, _request("theirs")) == grpc.StatusCode.INTERNAL
    [left] = _instances(driver)
    assert (left.name, left.state) == ("theirs", "ERROR")


# --- --extra-labels and the mount-options parameter ---------------------------------------------


def test_extra_labels_go_on_every_instance_and_win_over_storageclass_labels(tmp_path: Path) -> None:
    with running_driver(tmp_path, extra_labels={"cluster": "prod", "team": "platform"}) as d:
        create(d, "labelled", parameters={"labels": "team=storage,app=db"})
        labels = d.cloud.get_instance(ZONE, "labelled").labels
    assert {k: labels[k] for k in ("cluster", "team", "app")} == {
        "cluster": "prod",
        "team": "platform",
        "app": "db",
    }
    assert labels["storage_gke_io_created-by"] == "filestore_csi_storage_gke_io"


def test_mount_options_reach_the_node_in_volume_context(driver: Driver) -> None:
    volume = create(driver, "opts", parameters={"mount-options": "hard,nconnect=4"})
    assert volume.volume_context["mountOptions"] == "hard,nconnect=4"
    assert "mountOptions" not in create(driver, "plain").volume_context


@pytest.mark.parametrize("options", ["hard,,soft", "bind", "addr=10.1.2.3", "remount,ro"])
def test_bad_mount_options_are_invalid_before_any_instance(driver: Driver, options: str) -> None:
    request = _request("bad-opts", parameters={"mount-options": options})
    assert code_of(driver.ctl.CreateVolume, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert _instances(driver) == []
