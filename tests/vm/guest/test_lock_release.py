"""NFSv3 lock release end to end with real kernel locks: a dead node's fcntl lock goes to the waiting node.

Three machines on one bridge, each a network, mount and UTS namespace with its own address, rpcbind
and rpc.statd: the Filestore instance (knfsd) and two client nodes. Each node stages the NFSv3
volume through the driver's ``NodeServicer`` with lock release on, so the stage writes the node's
entry into its ConfigMap (``csi.lockrelease.store``). Node A takes an fcntl lock and dies: its link
is cut and its process killed, so its unlock never reaches the server. Node B asks for the same lock
and blocks in F_SETLKW. The lock-release controller (``csi.lockrelease.controller``) makes a pass:
node A's Node still exists, nothing is released, and B is still blocked after
:data:`BLOCKED_WINDOW` seconds (the negative control: nothing but the release frees the lock). Then
node A's Node is deleted, and the next pass sends RELEASE_ALL_LOCKS for A's address to the
instance's address (portmapper GETPORT, then program 200002, ``csi.lockrelease.rpc``). There the
stand-in (tests/support/lockserver.py) does what Filestore does, the way a Linux server offers it: it
sends the reboot notification A's statd would send after a restart (NSM SM_NOTIFY, docs/lockrelease.md)
to the server's statd, whose lockd drops every lock A held and grants B's waiting request.

What is not real: the Kubernetes API server (the kube-apiserver does not run in the emulated guest;
tests/support/memkube.py keeps the ConfigMaps and Nodes, and the driver's code reaches it through
the ``kubernetes`` client and a kubeconfig as in production); the node's identity (instance id and
internal IP given, not read from the metadata server); the portmapper's port (the stand-in's, not
111, which the server's rpcbind holds); and what the instance does on RELEASE_ALL_LOCKS (SM_NOTIFY
to a Linux server's statd, for Filestore's own mechanism). The ConfigMap entry, the controller's
decision, the RPC on the wire, the kernel's NLM locks, statd and lockd are real.
"""

from __future__ import annotations

import functools
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from pyroute2 import netns

from csi.lockrelease import rpc
from csi.lockrelease.controller import LockReleaseController
from csi.lockrelease.kube import api_client
from csi.lockrelease.lockinfo import INSTANCE_ID_ANNOTATION, NAMESPACE, LockKey, configmap_name
from csi.node import nsm
from tests.support.lockserver import LockServer
from tests.support.memkube import MemKube
from tests.support.nfsserver import server_holds_lock

pytestmark = pytest.mark.privileged

ROOT = str(Path(__file__).resolve().parents[3])
NET = "198.51.100"  # TEST-NET-2: apart from nfsserver.py's TEST-NET-1 links
BRIDGE = "lrbr0"
GUEST_IP, FS_IP = f"{NET}.1", f"{NET}.17"
PROJECT, ZONE, INSTANCE, SHARE = "test-project", "us-central1-a", "fs-1", "vol1"
VOLUME_ID = f"modeInstance/{ZONE}/{INSTANCE}/{SHARE}"
#: NSM's SM_NOTIFY procedure, and a state number no real statd reaches (lockd acts on a changed one)
SM_NOTIFY = 6
NOTIFY_STATE = 0x7FFFFFFF
#: how long node B must stay blocked while nothing releases node A's lock
BLOCKED_WINDOW = 10.0
#: bounds: a node's start and stage (imports and a mount on the emulated CPU), the grant after the release
STAGE_TIMEOUT = 400.0
GRANT_TIMEOUT = 60.0
STEP_TIMEOUT = 60.0
REAP_TIMEOUT = 30.0

_T0 = time.monotonic()


def say(message: str) -> None:
    """One step of the test, with seconds since the module was imported (for a guest run's log)."""
    print(f"[{time.monotonic() - _T0:7.1f} s] {message}", flush=True)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    ip: str
    instance_id: str


NODE_A = NodeSpec("lr-node-a", f"{NET}.33", "1001")
NODE_B = NodeSpec("lr-node-b", f"{NET}.34", "1002")

_COMMON = r"""
set -e
hostname "$0"
mount -t tmpfs nfsstate /var/lib/nfs
mkdir -p /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs
mount -t tmpfs nfsrun /run
mkdir -p /run/rpcbind /run/rpc_pipefs /run/kubelet
rpcbind
rpc.statd
"""

#: the instance: its data directory ($2) exported as /vol1 to the bridge's network, v3 only
_SERVER = r"""
mkdir -p /vol1
mount --bind "$2" /vol1
mount -t tmpfs nfsetc /etc/exports.d 2>/dev/null || true
echo "/vol1 198.51.100.0/24(rw,no_root_squash,insecure,no_subtree_check,fsid=1)" > /run/exports
mount --bind /run/exports /etc/exports
mount -t nfsd nfsd /proc/fs/nfsd
mount -t rpc_pipefs rpc_pipefs /run/rpc_pipefs
nfsdcld
exportfs -r
rpc.mountd
rpc.nfsd --host "$1" 4
echo Y > /proc/fs/lockd/nlm_end_grace  # a new instance has no locks to be reclaimed
"""

_READY = "\necho ready\nexec sleep infinity\n"


def _sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=STEP_TIMEOUT).stdout


class Lines:
    """A child's stdout, line by line, each awaited with a deadline (a blocked lock prints nothing)."""

    def __init__(self, proc: subprocess.Popen[str], what: str, stderr: Path | None = None) -> None:
        self.proc, self.what, self.stderr = proc, what, stderr
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def next(self, timeout: float) -> str:
        """The next line; AssertionError when the child ended or said nothing within ``timeout``."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.what}: nothing within {timeout:.0f} s") from None
        if line is None:
            err = (
                self.stderr.read_text(errors="replace")[-3000:]
                if self.stderr and self.stderr.exists()
                else ""
            )
            raise AssertionError(f"{self.what} ended (status {self.proc.poll()}): {err}")
        say(f"{self.what}: {line}")
        return line

    def tell(self, line: str) -> None:
        """One line to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def silent_for(self, seconds: float) -> bool:
        """True when the child printed nothing for ``seconds`` (and still runs)."""
        try:
            line = self._lines.get(timeout=seconds)
        except queue.Empty:
            return self.proc.poll() is None
        say(f"{self.what}: {line}")
        return False


class Box:
    """A machine on the bridge: a network namespace at ``ip`` and, held by a shell, mount and UTS ones."""

    def __init__(self, name: str, ip: str, script: str, *args: str, stop: str = "") -> None:
        self.name, self.ip, self.stop = name, ip, stop
        self.link = f"{name}h"
        self.init: subprocess.Popen[str] | None = None
        _sh("ip", "netns", "add", name)
        _sh("ip", "link", "add", self.link, "type", "veth", "peer", "name", f"{name}n")
        _sh("ip", "link", "set", f"{name}n", "netns", name)
        _sh("ip", "link", "set", self.link, "master", BRIDGE, "up")
        _sh("ip", "-n", name, "addr", "add", f"{ip}/24", "dev", f"{name}n")
        _sh("ip", "-n", name, "link", "set", "lo", "up")
        _sh("ip", "-n", name, "link", "set", f"{name}n", "up")
        self.init = subprocess.Popen(
            ["ip", "netns", "exec", name, "unshare", "--mount", "--uts", "--propagation", "private",
             "bash", "-c", _COMMON + script + _READY, name, ip, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        if (line := Lines(self.init, name).next(STEP_TIMEOUT)) != "ready":
            raise RuntimeError(f"{name} did not start: {line}")

    def enter(self, *argv: str) -> list[str]:
        """``argv`` run inside this machine's namespaces."""
        assert self.init is not None
        return ["nsenter", "-t", str(self.init.pid), "-m", "-n", "-u", *argv]

    def run(self, script: str) -> str:
        return _sh(*self.enter("bash", "-c", script))

    def set_link(self, up: bool) -> None:
        """Plug or pull this machine's cable (its end on the bridge)."""
        _sh("ip", "link", "set", self.link, "up" if up else "down")

    def close(self) -> None:
        """Stop what runs in the namespace (our own children and their daemons, by PID), then remove it."""
        if self.init is not None:
            if self.stop:
                # A clean stop is a courtesy: nfsd's shutdown can wait on lockd's callbacks to a node
                # that is gone (seen once, after the test had passed); the kills below end it anyway.
                try:
                    subprocess.run(
                        self.enter("bash", "-c", self.stop),
                        check=False,
                        capture_output=True,
                        timeout=STEP_TIMEOUT,
                    )
                except subprocess.TimeoutExpired:
                    say(f"{self.name}: '{self.stop}' still running after {STEP_TIMEOUT:.0f} s; killing")
            for pid in subprocess.run(
                ["ip", "netns", "pids", self.name], check=False, capture_output=True, text=True
            ).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.init.wait(STEP_TIMEOUT)
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "delete", self.link], check=False, capture_output=True)


class NodeBox(Box):
    """A client node: a Box whose node script (tests/support/locknode.py) stages the volume and locks."""

    def __init__(self, spec: NodeSpec, kubeconfig: Path, logs: Path) -> None:
        super().__init__(spec.name, spec.ip, "")
        self.spec, self.kubeconfig, self.logs = spec, kubeconfig, logs
        self.script: Lines | None = None

    def start(self, action: str) -> Lines:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        stderr = self.logs / f"{self.name}.stderr"
        with stderr.open("w") as err:
            proc = subprocess.Popen(
                self.enter(sys.executable, "-m", "tests.support.locknode", self.spec.name, self.spec.ip,
                           self.spec.instance_id, str(self.kubeconfig), PROJECT, ZONE, VOLUME_ID, FS_IP,
                           SHARE, action),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
                env={**env, "PYTHONPATH": ROOT},
            )  # fmt: skip
        self.script = Lines(proc, f"{self.name} ({action})", stderr)
        return self.script

    def stop_script(self) -> None:
        """SIGKILL the node script (our child, by PID) without waiting: its exit may wait on the network."""
        if self.script is not None and self.script.proc.poll() is None:
            self.script.proc.kill()

    def reap_script(self) -> None:
        """Wait a while for the killed script: a dead node's exit finishes once its unlock is answered."""
        if self.script is not None:
            try:
                self.script.proc.wait(REAP_TIMEOUT)
            except subprocess.TimeoutExpired:
                say(f"{self.name}: its node script still exiting after {REAP_TIMEOUT:.0f} s; left behind")


def _in_netns(name: str, build: Callable[[], Any]) -> Any:
    """``build()`` on a thread inside network namespace ``name``: its sockets, and the threads it
    starts, live there."""
    built: list[Any] = []

    def run() -> None:
        netns.setns(name, flags=0)  # this thread only; 0: never create a namespace
        built.append(build())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(STEP_TIMEOUT)
    assert built, f"nothing built in network namespace {name}"
    return built[0]


def _xdr_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">I", len(data)) + data + b"\0" * (-len(data) % 4)


def notify_reboot(server_ip: str, client_ip: str) -> None:
    """SM_NOTIFY to the server's rpc.statd: ``client_ip`` restarted, so its lockd drops that client's locks.

    The server's lockd monitors an NLM client under its address (``nsm_use_hostnames`` off), which
    is the name statd matches.
    """
    port = nsm.getport(nsm.NSM_PROGRAM, nsm.NSM_VERSION, host=server_ip, timeout=5.0)
    args = _xdr_string(client_ip) + struct.pack(">I", NOTIFY_STATE)
    nsm.rpc_call(nsm.NSM_PROGRAM, nsm.NSM_VERSION, SM_NOTIFY, args, host=server_ip, port=port, timeout=5.0)
    say(f"stand-in: SM_NOTIFY for {client_ip} answered by the server's statd")


def _node_object(spec: NodeSpec) -> client.V1Node:
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=spec.name, annotations={INSTANCE_ID_ANNOTATION: spec.instance_id}),
        status=client.V1NodeStatus(addresses=[client.V1NodeAddress(type="InternalIP", address=spec.ip)]),
    )


def _entries(core: client.CoreV1Api, spec: NodeSpec) -> dict[str, str]:
    try:
        return dict(core.read_namespaced_config_map(configmap_name(spec.name), NAMESPACE).data or {})
    except client.ApiException as exc:
        if exc.status == 404:
            return {}
        raise


def _key(spec: NodeSpec) -> str:
    return LockKey(PROJECT, ZONE, INSTANCE, SHARE, spec.instance_id, spec.ip).key


@dataclass
class Cluster:
    server: Box
    node_a: NodeBox
    node_b: NodeBox
    kubeconfig: Path
    data_dir: str


@pytest.fixture
def cluster(export_dir: str, tmp_path: Path) -> Iterator[Cluster]:
    """The bridge, the API stand-in on the guest's end of it, the instance and the two nodes."""
    say("bridge and machines")
    _sh("modprobe", "bridge")
    _sh("ip", "link", "add", BRIDGE, "type", "bridge")
    boxes: list[Box] = []
    kube: MemKube | None = None
    try:
        _sh("ip", "addr", "add", f"{GUEST_IP}/24", "dev", BRIDGE)
        _sh("ip", "link", "set", BRIDGE, "up")
        kube = MemKube(GUEST_IP)
        kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
        boxes.append(Box("lrfs", FS_IP, _SERVER, export_dir, stop="rpc.nfsd 0; exportfs -ua"))
        say("the instance serves NFSv3")
        boxes.append(NodeBox(NODE_A, kubeconfig, tmp_path))
        boxes.append(NodeBox(NODE_B, kubeconfig, tmp_path))
        say("nodes up")
        server, node_a, node_b = boxes
        assert isinstance(node_a, NodeBox) and isinstance(node_b, NodeBox)
        yield Cluster(server, node_a, node_b, kubeconfig, export_dir)
    finally:
        say("teardown")
        nodes = [box for box in boxes if isinstance(box, NodeBox)]
        for node in nodes:
            node.set_link(True)  # a dead node's exit sends its unlock now, and ends
            node.stop_script()
        for node in nodes:
            node.reap_script()
        for box in reversed(boxes):
            box.close()
        if kube is not None:
            kube.close()
        subprocess.run(["ip", "link", "delete", BRIDGE], check=False, capture_output=True)
        say("teardown done")


def test_a_dead_nodes_lock_goes_to_the_waiting_node_only_after_release_all_locks(cluster: Cluster) -> None:
    api: Any = api_client(str(cluster.kubeconfig))
    core = client.CoreV1Api(api)
    for spec in (NODE_A, NODE_B):
        core.create_node(_node_object(spec))
    stand_in: LockServer = _in_netns(cluster.server.name, lambda: LockServer(host=FS_IP))
    stand_in.on_release = lambda node_ip: notify_reboot(FS_IP, node_ip)
    # Filestore's portmapper is at 111; here the server's rpcbind is, so the controller is told the
    # stand-in's.
    controller = LockReleaseController(
        api, functools.partial(rpc.release_all_locks, pmap_port=stand_in.pmap_port)
    )
    data_file = os.path.join(cluster.data_dir, "db.lock")
    try:
        holder = cluster.node_a.start("hold")
        # Both start now: on the emulated CPU their imports take minutes. B waits for "go" to lock.
        waiter = cluster.node_b.start("wait")
        for script in (holder, waiter):
            assert script.next(STAGE_TIMEOUT) == "imported"
        for script in (holder, waiter):
            assert script.next(STAGE_TIMEOUT) == f"staged {FS_IP}:/{SHARE}"
        # The stages' records, in GFD's format.
        assert _entries(core, NODE_A) == {_key(NODE_A): FS_IP}
        assert _entries(core, NODE_B) == {_key(NODE_B): FS_IP}
        assert holder.next(STEP_TIMEOUT) == "locked"
        assert server_holds_lock(data_file), "the server's lockd holds no lock for node A"
        assert NODE_A.ip in cluster.server.run("ls /var/lib/nfs/sm").split()  # the server's statd watches A

        say("node A dies: its cable is pulled, then its process is killed")
        cluster.node_a.set_link(False)
        cluster.node_a.stop_script()
        time.sleep(2)
        assert server_holds_lock(data_file), (
            "node A's unlock reached the server: it did not die holding the lock"
        )
        # Its exit sends NLM UNLOCK, which cannot cross the cut link; whether it has ended is printed.
        say(f"node A's process: {'still exiting' if holder.proc.poll() is None else 'gone'}")

        waiter.tell("go")
        busy = waiter.next(STEP_TIMEOUT)
        assert busy in ("busy EAGAIN", "busy EACCES"), busy  # node A's lock stands on the server

        say("controller pass with node A's Node still there")
        assert controller.reconcile() == 0
        assert stand_in.released == []
        say(f"negative control: node B stays blocked for {BLOCKED_WINDOW:.0f} s")
        assert waiter.silent_for(BLOCKED_WINDOW), "node B got the lock with nothing released"
        assert server_holds_lock(data_file)

        say("node A's Node is deleted; controller pass")
        core.delete_node(NODE_A.name)
        started = time.monotonic()
        assert controller.reconcile() == 1
        assert stand_in.released == [NODE_A.ip]
        assert _entries(core, NODE_A) == {}  # released, so the record goes
        assert _entries(core, NODE_B) == {_key(NODE_B): FS_IP}  # a live node's record stays
        assert waiter.next(GRANT_TIMEOUT) == "locked", "node B never got the lock"
        say(f"node B holds the lock {time.monotonic() - started:.1f} s after the release pass")
        assert controller.reconcile() == 0  # nothing left to release
    finally:
        stand_in.close()
        api.close()
