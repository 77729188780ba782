"""The driver against failing Filestore servers: a replaced export (ESTALE) and a stopped nfsd (hang, v3
and v4.1).

The driver runs with a short probe timeout so that a dead share turns into an answer (abnormal
condition, a detached mount) instead of a hung RPC, and a healthy volume keeps being served.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.csiutil import (
    create_volume,
    mount_rows,
    publish,
    run_driver,
    stage,
    unpublish,
    volume_stats,
)
from tests.support.nfsserver import Filestore, NfsServer

pytestmark = pytest.mark.privileged

PROBE = 2.0


def _server(filestore: Filestore, volume: Any) -> NfsServer:
    ip = volume.volume_context["ip"]
    return next(s for s in filestore.servers.values() if s.ip == ip)


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t = time.monotonic()
    result = fn(*args, **kwargs)
    return time.monotonic() - t, result


def _driver(filestore: Filestore) -> Any:
    return run_driver(
        "--cloud=emulator", f"--emulator-endpoint={filestore.endpoint}", f"--probe-timeout={PROBE}"
    )


def test_stale_export_is_reported_and_recovered(filestore: Filestore) -> None:
    with _driver(filestore) as driver:
        volume = create_volume(driver, "pvc-stale")
        server = _server(filestore, volume)
        staging, target = driver.staging("pvc-stale"), driver.target("pod", "pvc-stale")
        stage(driver, volume, staging)
        publish(driver, volume, staging, target)
        driver.sh(f"echo before > {target}/f")
        assert Path(os.path.join(server.data_dir, "f")).read_text() == "before\n"

        new_dir = server.data_dir + "-new"
        server.replace_export(new_dir, fsid=server.fsid + 100)
        stale = driver.sh(f"ls {staging}", check=False, timeout=30)
        assert stale.returncode != 0 and "Stale file handle" in stale.stderr, stale

        seconds, stats = _timed(volume_stats, driver, volume, target)
        print(f"NodeGetVolumeStats on a stale share: {seconds:.2f} s")
        assert stats.volume_condition.abnormal and stats.volume_condition.message
        assert not stats.usage

        seconds, _ = _timed(stage, driver, volume, staging)
        print(f"NodeStageVolume over a stale mount: {seconds:.2f} s")
        assert driver.ns("ls", "-A", staging).stdout == ""  # the new, empty export
        seconds, _ = _timed(publish, driver, volume, staging, target)
        print(f"NodePublishVolume over a stale bind: {seconds:.2f} s")
        driver.sh(f"echo after > {target}/g")
        assert sorted(os.listdir(new_dir)) == ["g"]
        assert Path(os.path.join(new_dir, "g")).read_text() == "after\n"
        stats = volume_stats(driver, volume, target)
        assert not stats.volume_condition.abnormal and stats.usage


#: volume parameters per NFS version: Filestore serves NFSv4.1 on the zonal (and regional, enterprise) tiers
PROTOCOLS = {
    "v3": ({}, "nfs", "vers=3"),
    "v4.1": ({"tier": "zonal", "protocol": "NFS_V4_1"}, "nfs4", "vers=4.1"),
}


@pytest.mark.parametrize("version", list(PROTOCOLS))
def test_dead_server_answers_in_time_and_comes_back(filestore: Filestore, version: str) -> None:
    parameters, fstype, vers = PROTOCOLS[version]
    with _driver(filestore) as driver:
        dead_vol = create_volume(driver, "pvc-dead", **parameters)
        live_vol = create_volume(driver, "pvc-live", **parameters)
        dead, live = _server(filestore, dead_vol), _server(filestore, live_vol)
        ds, ls = driver.staging("pvc-dead"), driver.staging("pvc-live")
        stage(driver, dead_vol, ds)
        stage(driver, live_vol, ls)
        staged = mount_rows(driver, "FSTYPE", "OPTIONS")
        for path in (ds, ls):  # the version asked for is the version mounted
            assert staged[path][0] == fstype and vers in staged[path][1].split(","), staged[path]
        dt = driver.target("dead-pod", "pvc-dead")
        publish(driver, dead_vol, ds, dt)
        baseline: list[float] = []
        for i in range(3):
            seconds, _ = _timed(publish, driver, live_vol, ls, driver.target(f"warm-{i}", "pvc-live"))
            baseline.append(seconds)
        normal = max(baseline)
        print(f"NodePublishVolume, healthy: {', '.join(f'{s:.2f}' for s in baseline)} s")

        dead.stop_nfsd()
        answers: dict[str, tuple[float, Any]] = {}

        def on_dead_volume() -> None:
            answers["stats"] = _timed(volume_stats, driver, dead_vol, dt, timeout=120)
            answers["unpublish"] = _timed(unpublish, driver, dead_vol, dt, timeout=120)

        worker = threading.Thread(target=on_dead_volume)
        worker.start()
        live_latency: list[float] = []
        while worker.is_alive() and len(live_latency) < 20:
            target = driver.target(f"live-{len(live_latency)}", "pvc-live")
            seconds, _ = _timed(publish, driver, live_vol, ls, target)
            live_latency.append(seconds)
            driver.sh(f"echo {len(live_latency)} > {target}/n")
        worker.join(timeout=120)
        assert not worker.is_alive(), "the RPCs on the dead volume hung"
        stats_s, stats = answers["stats"]
        unpublish_s, _ = answers["unpublish"]
        print(
            f"{version} dead volume: NodeGetVolumeStats {stats_s:.2f} s, "
            f"NodeUnpublishVolume {unpublish_s:.2f} s"
        )
        print(
            f"{version} healthy volume meanwhile: {len(live_latency)} publishes, "
            f"max {max(live_latency):.2f} s"
        )
        assert stats.volume_condition.abnormal and stats.volume_condition.message
        # Each is bounded by the probe deadlines it runs (a few), not by the server.
        assert stats_s < 4 * PROBE + 5 and unpublish_s < 4 * PROBE + 5
        assert live_latency and max(live_latency) < max(3 * normal, normal + 2.0)
        assert Path(os.path.join(live.data_dir, "n")).read_text() == f"{len(live_latency)}\n"

        dead.start_nfsd()
        seconds, _ = _timed(stage, driver, dead_vol, ds)
        print(f"{version} NodeStageVolume after nfsd restart: {seconds:.2f} s")
        back = driver.target("back-pod", "pvc-dead")
        publish(driver, dead_vol, ds, back)
        driver.sh(f"echo back > {back}/again", timeout=120)
        assert Path(os.path.join(dead.data_dir, "again")).read_text() == "back\n"
