"""NFSv3 locks survive a Filestore restart with the driver's rpc.statd (docs/nfsv3-locking.md).

The emulated instance is a kernel NFS server in a network namespace of its own (its address, its
rpcbind and statd), so its restart notification really crosses a link to the guest's statd. The
guest's own statd is stopped first: what answers is the one ``filestore-csi-driver nsm`` starts, as
the DaemonSet's nfs-services container does. The server "restarts" the way a crash looks to NLM
(``nfsserver.NfsServer.restart_after_crash``): every lock it granted is dropped, nfsd starts again (a new
NLM grace period) with its statd's monitor records intact, and ``sm-notify`` sends SM_NOTIFY with a
new state number to the clients it monitored. The same restart once more with the node's statd
stopped is the negative control: nothing is reclaimed and another client takes the lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from csi.node import nsm
from csi.proto import csi_pb2
from tests.support.csiutil import (
    Driver,
    create_volume,
    publish,
    run_driver,
    stage,
    stop,
    unpublish,
    unstage,
    until_done,
)
from tests.support.nfsserver import Filestore, NfsServer, server_holds_lock

pytestmark = pytest.mark.privileged

GUEST_STATD_PID = "/run/rpc.statd.pid"
#: F_SETLK on the whole file; prints GRANTED and holds it (argv[2] seconds), or REFUSED <errno name>
LOCKER = r"""
import errno, fcntl, sys, time
f = open(sys.argv[1], "r+")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError as e:
    print("REFUSED", errno.errorcode[e.errno], flush=True)
    sys.exit(1)
print("GRANTED", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def guest_statd_stopped() -> Iterator[None]:
    """The guest's own rpc.statd stopped for the test (rpcbind stays), started again after."""
    with open(GUEST_STATD_PID) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)  # the guest init's statd: this VM is the test's own
    deadline = time.monotonic() + 10
    while nsm.probe().ready:
        assert time.monotonic() < deadline, "the guest's statd did not stop"
        time.sleep(0.1)
    try:
        yield
    finally:
        subprocess.run(["rpc.statd", "--no-notify"], check=True)


def _locker(driver: Driver, path: str, hold: float) -> subprocess.Popen[str]:
    """A process in the driver's mount namespace (where the pod's volume is) locking ``path``."""
    return subprocess.Popen(
        [
            "nsenter",
            f"--mount=/proc/{driver.pid}/ns/mnt",
            "--",
            "/usr/bin/python3",
            "-c",
            LOCKER,
            path,
            str(hold),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def _other_client(server: NfsServer, file: str, hold: float) -> subprocess.Popen[str]:
    """Another NLM lock owner, whose lock requests only the server answers.

    A second process on the pod's mount would not do: the NFS client checks its own lock table
    before it asks the server, so the holder's lock refuses it locally even when the server has
    forgotten it. This one mounts the share again with ``nosharecache`` (a superblock, and so a
    lock table, of its own) in a private mount namespace; its requests reach the server as another
    owner (svid) of this node.
    """
    script = (  # over /mnt, in this namespace only
        f"mount -i -t nfs -o vers=3,addr={server.ip},nosharecache {server.ip}:/{server.share} /mnt && "
        f'exec /usr/bin/python3 -c "$0" /mnt/{file} {hold}'
    )
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", script, LOCKER],
        stdout=subprocess.PIPE,
        text=True,
    )


def _answer(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out.strip()


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.5)


#: how long the negative control waits for a reclaim that must not come (with statd it takes ~1 s)
NO_RECLAIM_WINDOW = 5.0
REFUSED = ("REFUSED EAGAIN", "REFUSED EACCES")


def test_a_lock_is_reclaimed_after_a_server_restart(
    guest_statd_stopped: None, filestore: Filestore, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    flags = (
        "--cloud=emulator",
        f"--emulator-endpoint={filestore.endpoint}",
        "--probe-timeout=5",
        "--nfs-lock-check=refuse",
    )
    with run_driver(*flags, timeout=300) as driver:
        volume = create_volume(driver, "pvc-locks")  # tier standard: NFS_V3
        server = filestore.servers[next(iter(filestore.servers))]
        staging, target = driver.staging("pvc-locks"), driver.target("db", "pvc-locks")

        # No statd on the node: the stage is refused, nothing is mounted.
        with pytest.raises(grpc.RpcError) as refused:
            stage(driver, volume, staging)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value
        assert "rpc.statd" in (refused.value.details() or "")
        assert not os.path.exists(staging)

        # The nfs-services container: our statd, registered with the guest's rpcbind.
        state_dir = str(tmp_path / "nsm")
        services = subprocess.Popen(
            [sys.executable, "-m", "csi.main", "nsm", f"--state-dir={state_dir}", "--interval=1"],
        )
        try:
            _wait_for("the driver's statd", lambda: nsm.probe().ready, 120)
            # Its sm-notify (once per boot) runs after statd answers: the marker says it is done.
            _wait_for(
                "nsm's boot notification",
                lambda: os.path.exists(os.path.join(state_dir, nsm.NOTIFIED_BOOT)),
                60,
            )
            children = _children(services.pid)
            assert [name for _pid, name in children] == ["rpc.statd"], children  # the guest's rpcbind is used

            stage(driver, volume, staging)
            publish(driver, volume, staging, target)
            data_file = os.path.join(filestore.data_dir(server.name), "db.sqlite")
            db = f"{target}/db.sqlite"
            driver.sh(f"echo data > {db}")

            holder = _locker(driver, db, 600)
            try:
                assert holder.stdout is not None and holder.stdout.readline().strip() == "GRANTED"
                assert server_holds_lock(data_file)
                assert os.listdir(os.path.join(state_dir, "sm")) == [
                    server.ip
                ]  # our statd watches the server
                assert _answer(_other_client(server, "db.sqlite", 0)) in REFUSED

                server.restart_after_crash()
                assert not server_holds_lock(data_file), "the restarted server still holds the lock"
                # Another client asking now, in the grace period, waits; it must never get the lock.
                second = _other_client(server, "db.sqlite", 0)
                notify = server.notify_clients()
                try:
                    _wait_for("the reclaim of the lock", lambda: server_holds_lock(data_file), 60)
                    assert notify.wait(timeout=30) == 0, "sm-notify: our statd did not answer"
                finally:
                    stop(notify)
                assert second.poll() is None, (
                    f"the second client was answered in the grace period: {_answer(second)}"
                )
                server.end_nlm_grace()
                assert _answer(second) in REFUSED
                assert _answer(_other_client(server, "db.sqlite", 0)) in REFUSED
                assert holder.poll() is None and server_holds_lock(data_file)  # the holder never lost it

                # Negative control: the same restart with no statd on the node. Nothing is reclaimed,
                # and another client takes the lock the holder still believes it holds.
                stop(services)
                assert not nsm.probe().ready
                server.restart_after_crash()
                notify = server.notify_clients()  # rpcbind here has no statd: it gives up or retries
                try:
                    time.sleep(NO_RECLAIM_WINDOW)
                    assert not server_holds_lock(data_file), "reclaimed without statd"
                finally:
                    stop(notify)
                server.end_nlm_grace()
                assert _answer(_other_client(server, "db.sqlite", 0)) == "GRANTED"
                assert holder.poll() is None  # the holder runs on, unaware
            finally:
                holder.kill()
                holder.wait()
            unpublish(driver, volume, target)
            unstage(driver, volume, staging)
        finally:
            stop(services)
        assert not _children(services.pid) or services.poll() is not None
        until_done(driver.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of ``pid``'s children."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                with open(f"/proc/{child}/comm") as c:
                    found.append((int(child), c.read().strip()))
    return sorted(found)
