"""NSM (rpc.statd) for NFSv3 locks on the node: find the one running, else run our own.

An NFSv3 mount with NLM locking needs the node's rpc.statd: the kernel's lockd asks it (SM_MON) to
watch each server it takes a lock on, and when that server restarts and forgets its locks, its statd
notifies ours (SM_NOTIFY), which tells lockd to reclaim them in the server's grace period. Without
statd, the kernel still grants locks on this kernel (after its upcall times out), but nobody is ever
told of a server restart: the server forgets the locks, another client takes them, and the
applications here go on believing they hold them (docs/nfsv3-locking.md, measured on Linux 6.1).

:func:`probe` asks rpcbind on loopback, as the kernel does, whether a statd is registered and then
pings it, so a registration left behind by a dead statd does not count. :class:`StatdSupervisor`
starts what is missing (rpcbind, then ``rpc.statd``), never touches one the host already runs, and
keeps ours running. ``filestore-csi-driver nsm`` runs it as the DaemonSet's ``nfs-services``
container; :func:`ensure_statd` is the one-call form for other callers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from csi.lockrelease import oncrpc
from csi.process import add_log_level, configure_logging, stop_on_signals

log = logging.getLogger(__name__)

#: ONC RPC (RFC 5531) and the portmapper protocol v2 (RFC 1833): what probe() needs of them.
RPCBIND_PORT = 111
PMAP_PROGRAM, PMAP_VERSION, PMAPPROC_GETPORT = 100000, 2, 3
NSM_PROGRAM, NSM_VERSION = 100024, 1
IPPROTO_UDP = socket.IPPROTO_UDP

#: where the kernel and statd find rpcbind: loopback in the node's network namespace.
LOOPBACK = "127.0.0.1"
#: the node's state directory default: monitored servers (sm/), notified (sm.bak/), our NSM state number.
DEFAULT_STATE_DIR = "/var/lib/kubelet/plugins/filestore.csi.storage.gke.io/nsm"
#: records the boot whose reboot notification was sent, so a container restart does not send another.
NOTIFIED_BOOT = "notified-boot-id"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


RpcError = oncrpc.RpcError  # an RPC got no usable answer (nothing listening, a timeout, or a refusal)


@dataclasses.dataclass(frozen=True, slots=True)
class NsmStatus:
    """Whether NLM's lock recovery can work here; ``detail`` says what was found, for logs and errors."""

    ready: bool
    detail: str


def rpc_call(
    program: int,
    version: int,
    procedure: int,
    args: bytes = b"",
    *,
    host: str = LOOPBACK,
    port: int = RPCBIND_PORT,
    timeout: float = 1.0,
) -> bytes:
    """One ONC RPC call over UDP (one datagram each way, no record marking: RFC 5531 §10), framed by
    :mod:`csi.lockrelease.oncrpc`; the reply's result bytes, or :class:`RpcError`."""
    xid = oncrpc.new_xid()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, port))
            sock.send(oncrpc.call_message(xid, program, version, procedure, args))
            deadline = time.monotonic() + timeout
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                reply = sock.recv(65536)
                if reply[:4] == oncrpc.pack_uint(xid):  # a late answer to an earlier call is skipped
                    break
        except OSError as exc:  # ECONNREFUSED from an ICMP port unreachable, or a timeout
            raise RpcError(
                exc.errno, f"RPC program {program} at {host}:{port}: {exc.strerror or exc}"
            ) from None
    try:
        return oncrpc.parse_reply(xid, reply)
    except RpcError as exc:
        raise RpcError(f"RPC program {program} at {host}:{port}: {exc}") from None


def getport(
    program: int, version: int, *, host: str = LOOPBACK, port: int = RPCBIND_PORT, timeout: float = 1.0
) -> int:
    """The UDP port rpcbind has for ``program``/``version`` (0: not registered); RpcError: no rpcbind."""
    result = rpc_call(
        PMAP_PROGRAM,
        PMAP_VERSION,
        PMAPPROC_GETPORT,
        struct.pack(">4I", program, version, IPPROTO_UDP, 0),
        host=host,
        port=port,
        timeout=timeout,
    )
    if len(result) < 4:
        raise RpcError("rpcbind: short GETPORT reply")
    port_found: int = struct.unpack_from(">I", result)[0]
    return port_found


def probe(*, host: str = LOOPBACK, rpcbind_port: int = RPCBIND_PORT, timeout: float = 1.0) -> NsmStatus:
    """Is a live statd registered with rpcbind here? (rpcbind's GETPORT, then statd's NULL procedure)"""
    try:
        port = getport(NSM_PROGRAM, NSM_VERSION, host=host, port=rpcbind_port, timeout=timeout)
    except RpcError as exc:
        return NsmStatus(False, f"rpcbind does not answer at {host}:{rpcbind_port} ({exc})")
    if port == 0:
        return NsmStatus(False, f"rpcbind at {host}:{rpcbind_port} answers, but no rpc.statd is registered")
    try:
        rpc_call(NSM_PROGRAM, NSM_VERSION, 0, host=host, port=port, timeout=timeout)
    except RpcError as exc:
        return NsmStatus(False, f"rpc.statd is registered at port {port} but does not answer ({exc})")
    return NsmStatus(True, f"rpc.statd answers at {host}:{port}")


@dataclasses.dataclass
class StatdSupervisor:
    """Starts rpcbind and rpc.statd where none answers, and restarts ours when they die.

    What the host already runs is used, never stopped or doubled: each :meth:`ensure` starts only
    what :func:`probe` finds missing. Our statd keeps its records in ``state_dir``, which must
    survive container restarts (a hostPath): a restarted statd reads the servers it watches from
    ``sm/`` and so still hears their restarts. The reboot notification (``sm-notify``), which tells
    the servers to drop every lock this node held, is sent once per boot of the node, not per start
    of the container: a container restart must not cost running applications their locks.
    """

    state_dir: str = DEFAULT_STATE_DIR
    rpcbind: str = "rpcbind"
    statd: str = "rpc.statd"
    sm_notify: str = "sm-notify"
    timeout: float = 10.0
    boot_id_path: str = BOOT_ID
    _children: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict, repr=False)

    def ensure(self) -> NsmStatus:
        """Make statd answer here; idempotent: a live statd (ours or the host's) is left as it is.

        Returns the final :func:`probe`; raises RuntimeError when what we started never answers.
        """
        status = probe()
        if status.ready:
            return status
        self._reap()
        try:
            getport(PMAP_PROGRAM, PMAP_VERSION)
        except RpcError:
            os.makedirs("/run/rpcbind", exist_ok=True)
            self._start("rpcbind", [self.rpcbind, "-f", "-w"])
            self._wait(_answers_getport, "rpcbind")
        status = probe()
        if not status.ready:
            if "statd" in self._children:  # ours, registered but not answering: replace it
                self._stop("statd")
            for sub in ("sm", "sm.bak"):
                os.makedirs(os.path.join(self.state_dir, sub), exist_ok=True)
            self._start("statd", [self.statd, "--foreground", "--no-notify", "-P", self.state_dir])
            self._wait(lambda: probe().ready, "rpc.statd")
            self._notify_once_per_boot()
            status = probe()
        log.info("NSM ready: %s", status.detail)
        return status

    def owns(self) -> list[str]:
        """The daemons this supervisor started and that still run."""
        self._reap()
        return sorted(self._children)

    def run(self, stop: threading.Event, interval: float = 10.0) -> None:
        """:meth:`ensure` every ``interval`` seconds until ``stop`` is set; then stop what we started."""
        try:
            while True:
                try:
                    self.ensure()
                except (OSError, RuntimeError) as exc:
                    log.error("NSM: %s", exc)
                if stop.wait(interval):
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop the daemons we started (statd first, then rpcbind), by PID."""
        for name in ("statd", "rpcbind"):
            if name in self._children:
                self._stop(name)

    def _start(self, name: str, argv: list[str]) -> None:
        path = shutil.which(argv[0], path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if path is None:
            raise RuntimeError(f"{argv[0]} is not installed (Debian: apt-get install rpcbind nfs-common)")
        log.info("starting %s", " ".join(argv))
        self._children[name] = subprocess.Popen([path, *argv[1:]], stdin=subprocess.DEVNULL)

    def _stop(self, name: str) -> None:
        proc = self._children.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _reap(self) -> None:
        for name, proc in list(self._children.items()):
            if proc.poll() is not None:
                log.warning("%s (pid %d) exited with status %d", name, proc.pid, proc.returncode)
                del self._children[name]

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not ready():
            self._reap()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer within {self.timeout:.0f} s")
            time.sleep(0.1)

    def _notify_once_per_boot(self) -> None:
        """sm-notify when this boot has not notified yet (the node rebooted: its locks are gone)."""
        with open(self.boot_id_path) as f:
            boot = f.read().strip()
        marker = os.path.join(self.state_dir, NOTIFIED_BOOT)
        try:
            with open(marker) as f:
                if f.read().strip() == boot:
                    return
        except FileNotFoundError:
            pass
        path = shutil.which(self.sm_notify, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if path is None:
            raise RuntimeError(f"{self.sm_notify} is not installed (Debian: apt-get install nfs-common)")
        # -f: sm-notify's own once-per-boot guard lives in /run, which a container does not keep.
        subprocess.run(
            [path, "-f", "-P", self.state_dir], check=True, stdin=subprocess.DEVNULL, timeout=self.timeout
        )
        with open(marker + ".tmp", "w") as f:
            f.write(boot + "\n")
        os.replace(marker + ".tmp", marker)


def _answers_getport() -> bool:
    try:
        getport(PMAP_PROGRAM, PMAP_VERSION)
    except RpcError:
        return False
    return True


def ensure_statd(state_dir: str = DEFAULT_STATE_DIR) -> tuple[NsmStatus, StatdSupervisor]:
    """Make a statd answer on this node now; the supervisor holds what it started (``close`` stops it)."""
    supervisor = StatdSupervisor(state_dir=state_dir)
    return supervisor.ensure(), supervisor


def run_nsm(argv: Sequence[str]) -> int:
    """``filestore-csi-driver nsm``: the DaemonSet's nfs-services container."""
    parser = argparse.ArgumentParser(
        prog="filestore-csi-driver nsm",
        description=(
            "Keep rpc.statd (NFSv3 lock recovery) running on this node: the host's if it runs one, else ours."
        ),
    )
    parser.add_argument(
        "--state-dir", default=DEFAULT_STATE_DIR, help="statd's records; keep it on the node (hostPath)"
    )
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between checks")
    add_log_level(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    StatdSupervisor(state_dir=args.state_dir).run(stop_on_signals(), args.interval)
    return 0
