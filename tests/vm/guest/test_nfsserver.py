"""The test support's NFS server per Filestore instance (tests/support/nfsserver.py) leaves nothing behind.

rpcbind, rpc.statd, nfsdcld and rpc.mountd daemonize: their parent exits, so killing the shell that
started them ended none of them, and each deleted instance left four daemons (and, through them, its
network and mount namespaces) running for the rest of the guest's life.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.nfsserver import NfsServer

pytestmark = pytest.mark.privileged

#: TEST-NET-1, outside the emulator's instance pool (nfsserver.INSTANCE_POOL) and the other tests' servers
ADDRESS = "192.0.2.60"
DAEMONS = {"rpcbind", "rpc.statd", "nfsdcld", "rpc.mountd"}


def _processes(mount_ns: str) -> dict[int, str]:
    """PID → command name of every process whose mount namespace is ``mount_ns``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/mnt") == mount_ns:
                with open(f"/proc/{entry}/comm") as comm:
                    found[int(entry)] = comm.read().strip()
        except OSError:  # gone meanwhile
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_close_ends_every_daemon_and_frees_the_address(export_dir: str) -> None:
    name = "nfsserver-close"
    for round_ in range(2):  # the address again, as the emulator hands out a deleted instance's
        server = NfsServer(name, ADDRESS, os.path.join(export_dir, f"data{round_}"))
        server.start()
        try:
            mount_ns = os.readlink(f"/proc/{server.holder}/ns/mnt")
            started = _processes(mount_ns)
            assert DAEMONS <= set(started.values()), started
            served = subprocess.run(
                ["rpcinfo", "-T", "tcp", ADDRESS, "nfs", "3"], capture_output=True, text=True, check=False
            )
            assert served.returncode == 0, served.stderr
        finally:
            server.close()
        assert [pid for pid in started if _alive(pid)] == []
        assert _processes(mount_ns) == {}
        assert (
            name
            not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        )
        route = subprocess.run(
            ["ip", "route", "show", f"{ADDRESS}/32"], capture_output=True, text=True, check=False
        ).stdout
        assert route == ""
    server.close()  # idempotent
