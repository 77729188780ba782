"""One NFS server per Filestore instance, each in its own network and mount namespace.

A Filestore instance is a server of its own at its own address, and the CSI node mounts
``<ip>:/<share>``: two instances' shares have the same path and differ only by server address. One
kernel NFS server cannot tell requests apart by the address they were sent to, so each instance gets
a network namespace (nfsd is per network namespace) joined to the guest by a veth pair, and a mount
namespace in which its data directory is bound at ``/<share>`` and its own rpcbind, mountd and
export table run; and a PID namespace, whose every process (the daemons among them) ends with the
server's :meth:`NfsServer.close`. The guest, which has no network device, is the only thing on these links.

A multishare instance starts with no export; each of its shares, when created, is bound at
``/<share>`` and exported under an fsid of its own, and unexported when deleted.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from csi.cloud import Instance, MultishareInstance, Share

#: the guest's end of every veth link; instance addresses come from the same documentation range.
CLIENT_ADDR = "192.0.2.1"


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def server_holds_lock(data_file: str) -> bool:
    """Does a kernel NFS server's lockd hold a lock on ``data_file`` (its inode on the export, in
    /proc/locks)?

    The servers run in this kernel, so their locks are this machine's: the export's device and inode
    name the file whatever path a client used.
    """
    st = os.stat(data_file)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "
    with open("/proc/locks") as f:
        return any(key in line for line in f)


@dataclass
class NfsServer:
    """An NFS server at ``ip`` exporting ``data_dir`` as ``/<share>`` (v3 and v4.x); no share: none yet."""

    name: str
    ip: str
    data_dir: str
    share: str = "vol1"
    fsid: int = 1
    _init: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _holder: int = field(default=0, repr=False)

    @property
    def _link(self) -> str:
        return f"v{abs(hash(self.name)) % 10**8}"

    def start(self) -> None:
        """Create the namespaces and the link, then start rpcbind, mountd and nfsd inside; undone on
        failure."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        _sh("ip", "netns", "add", self.name)
        host, peer = self._link + "h", self._link + "n"
        _sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
        _sh("ip", "link", "set", peer, "netns", self.name)
        if (
            subprocess.run(
                ["ip", "addr", "show", "dev", "lo", "to", CLIENT_ADDR],
                check=False,
                capture_output=True,
                text=True,
            ).stdout
            == ""
        ):
            _sh("ip", "addr", "add", f"{CLIENT_ADDR}/32", "dev", "lo")
        _sh("ip", "link", "set", host, "up")
        _sh("ip", "route", "add", f"{self.ip}/32", "dev", host, "src", CLIENT_ADDR)
        _sh("ip", "-n", self.name, "link", "set", "lo", "up")
        _sh("ip", "-n", self.name, "addr", "add", f"{self.ip}/32", "dev", peer)
        _sh("ip", "-n", self.name, "link", "set", peer, "up")
        _sh("ip", "-n", self.name, "route", "add", f"{CLIENT_ADDR}/32", "dev", peer)
        # The holder, a long-lived shell, is the init of a PID namespace of its own: rpcbind, rpc.statd,
        # nfsdcld and rpc.mountd daemonize (their parent exits), and the kernel kills every process of a PID
        # namespace when its init dies, so none outlives close(). Commands later enter its namespaces by PID.
        self._init = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.name,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--kill-child",
                "bash",
                "-c",
                _SERVER_SCRIPT,
                "nfsserver",
                self.ip,
                self.data_dir,
                self.share,
                str(self.fsid),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self._init.stdout is not None
        line = self._init.stdout.readline().decode().strip()
        word, _, holder = line.partition(" ")
        if word != "ready" or not holder.isdigit():
            rest = self._init.stdout.read().decode(errors="replace") if self._init.poll() is not None else ""
            raise RuntimeError(f"NFS server {self.name} did not start: {line} {rest}")
        self._holder = int(holder)

    @property
    def holder(self) -> int:
        """PID of the process holding the server's namespaces (the init of its PID namespace); 0 when
        stopped."""
        return self._holder

    def run(self, script: str) -> str:
        """Run a shell script inside the server's network and mount namespaces."""
        out = subprocess.run(self._inside(script), check=True, capture_output=True, text=True)
        return out.stdout

    def _inside(self, script: str) -> list[str]:
        assert self._init is not None
        return ["nsenter", "-t", str(self._holder), "-m", "-n", "bash", "-c", script]

    def restart_after_crash(self) -> None:
        """Come back as a crashed server does: NLM locks forgotten, a new NLM grace period.

        A clean nfsd stop unmonitors every NLM client (lockd's SM_UNMON deletes the client's record
        in statd's ``sm/``), which would leave :meth:`notify_clients` nobody to tell. A crash leaves
        the records on disk, so they are kept across the stop.
        """
        self.run(
            "rm -rf /run/sm.kept && cp -a /var/lib/nfs/sm /run/sm.kept && "
            f"echo {self.ip} > /proc/fs/nfsd/unlock_ip && rpc.nfsd 0 && rpc.nfsd --host {self.ip} 4 && "
            "cp -a /run/sm.kept/. /var/lib/nfs/sm/ && rm -rf /run/sm.kept"
        )

    def notify_clients(self) -> subprocess.Popen[bytes]:
        """sm-notify with a new NSM state number to every client in ``sm/``, as statd does at boot.

        In the foreground (``-d``): it exits once every client's statd answered, and retries while
        one does not; the caller stops it (our own child, by PID: nsenter and bash exec into it).
        """
        return subprocess.Popen(
            self._inside("exec sm-notify -d -f"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def end_nlm_grace(self) -> None:
        """End the NLM grace period now (new locks are refused with DENIED_GRACE_PERIOD during it)."""
        self.run("echo Y > /proc/fs/lockd/nlm_end_grace")

    def stop_nfsd(self) -> None:
        """Stop the kernel server: clients with hard mounts now hang, as on a dead Filestore."""
        self.run("rpc.nfsd 0")

    def start_nfsd(self) -> None:
        self.run(f"rpc.nfsd --host {self.ip} 4 && (echo Y > /proc/fs/nfsd/v4_end_grace) 2>/dev/null; true")

    def replace_export(self, new_data_dir: str, fsid: int) -> None:
        """Serve another directory under a new fsid: clients' file handles go stale (ESTALE)."""
        os.makedirs(new_data_dir, exist_ok=True)
        self.fsid, self.data_dir = fsid, new_data_dir
        self.run(
            f"exportfs -ua && umount -l /{self.share} && mount --bind {new_data_dir} /{self.share} && "
            f"echo '/{self.share} {CLIENT_ADDR}(rw,no_root_squash,insecure,no_subtree_check,fsid={fsid})' "
            "> /etc/exports && exportfs -r"
        )

    def add_export(self, share: str, data_dir: str) -> None:
        """Export ``data_dir`` as ``/<share>`` too (a multishare instance's new share)."""
        self.fsid += 1
        self.run(
            f"mkdir -p /{share} && mount --bind {data_dir} /{share} && "
            f"echo '/{share} {CLIENT_ADDR}(rw,no_root_squash,insecure,no_subtree_check,fsid={self.fsid})' "
            ">> /etc/exports && exportfs -r"
        )

    def remove_export(self, share: str) -> None:
        """Stop exporting ``/<share>`` (a deleted share)."""
        self.run(
            f"exportfs -u {CLIENT_ADDR}:/{share}; grep -v '^/{share} ' /etc/exports > /run/exports.new; "
            f"cat /run/exports.new > /etc/exports && exportfs -r && umount -l /{share} && rmdir /{share}"
        )

    def close(self) -> None:
        """Stop the server, end every process it started, and remove its namespace and link (the data
        directory stays). Idempotent; also undoes a :meth:`start` that failed half-way."""
        if self._init is not None:
            try:
                if self._holder:
                    self.run("rpc.nfsd 0; exportfs -ua; true")
            finally:
                # By PID: the holder (the PID namespace's init; the kernel then kills the daemons),
                # else our child unshare (--kill-child); unshare exits only after its child, and the
                # child's exit waits for the whole namespace to be gone.
                os.kill(self._holder or self._init.pid, signal.SIGKILL)
                self._init.wait()
                self._init, self._holder = None, 0
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "delete", self._link + "h"], check=False, capture_output=True)


@dataclass
class Filestore:
    """The Filestore emulator with one real NFS server per READY instance, keyed by instance name."""

    endpoint: str
    export_root: str
    servers: dict[str, NfsServer] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)

    def data_dir(self, instance: str, share: str = "vol1") -> str:
        return os.path.join(self.export_root, instance, share)


#: instance addresses: TEST-NET-1 like the guest's end (CLIENT_ADDR), reached over the veth links
INSTANCE_POOL = "192.0.2.16/28"


@contextmanager
def filestore_emulator(export_root: str) -> Iterator[Filestore]:
    """Run the emulator on loopback; its instance hooks start/close an NfsServer at each instance IP.

    ``export_root`` must be on a filesystem nfsd can export (a tmpfs, not the guest's overlay root).
    """
    from csi.cloud.emulator import EmulatorState, start_emulator

    os.makedirs(export_root)
    box: list[Filestore] = []

    def created(inst: Instance) -> None:
        assert inst.ip is not None
        # A multishare instance (no file share in Filestore v1's view) serves its shares' directories.
        data_dir = (
            box[0].data_dir(inst.name, inst.share_name)
            if inst.share_name
            else os.path.join(export_root, inst.name)
        )
        server = NfsServer(inst.name, inst.ip, data_dir, inst.share_name)
        server.start()
        box[0].servers[inst.name] = server

    def share_created(inst: MultishareInstance, share: Share) -> None:
        box[0].servers[inst.name].add_export(share.mount_name, box[0].data_dir(inst.name, share.mount_name))

    def share_deleted(inst: MultishareInstance, share: Share) -> None:
        box[0].servers[inst.name].remove_export(share.mount_name)

    def deleted(inst: Instance) -> None:
        server = box[0].servers.pop(inst.name, None)
        if server is not None:
            server.close()
            box[0].closed.append(inst.name)

    state = EmulatorState(
        op_delay=0.2,
        ip_pool=INSTANCE_POOL,
        export_root=export_root,
        on_instance_created=created,
        on_instance_deleted=deleted,
        on_share_created=share_created,
        on_share_deleted=share_deleted,
    )
    server, endpoint = start_emulator("127.0.0.1", 0, state=state)
    box.append(Filestore(endpoint, export_root))
    try:
        yield box[0]
    finally:
        server.stop(0)
        for nfs in box[0].servers.values():
            nfs.close()


_SERVER_SCRIPT = r"""
set -e
ip=$1 data=$2 share=$3 fsid=$4
read -r holder _ < /proc/self/stat  # this shell's PID outside its PID namespace (whose /proc this is)
mount -t tmpfs nfsstate /var/lib/nfs
mkdir -p /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs /var/lib/nfs/sm /var/lib/nfs/sm.bak
mount -t tmpfs nfsrun /run
mkdir -p /run/rpcbind /run/rpc_pipefs
mount -t tmpfs nfsetc /etc/exports.d 2>/dev/null || true
: > /run/exports
if [ -n "$share" ]; then
  mkdir -p "/$share"
  mount --bind "$data" "/$share"
  echo "/$share 192.0.2.1(rw,no_root_squash,insecure,no_subtree_check,fsid=$fsid)" > /run/exports
fi
mount --bind /run/exports /etc/exports
mount -t nfsd nfsd /proc/fs/nfsd
mount -t rpc_pipefs rpc_pipefs /run/rpc_pipefs
rpcbind -h "$ip"
rpc.statd
nfsdcld
exportfs -r
rpc.mountd
rpc.nfsd --host "$ip" 4
(echo Y > /proc/fs/nfsd/v4_end_grace) 2>/dev/null || true
echo Y > /proc/fs/lockd/nlm_end_grace  # a new instance has no locks to be reclaimed
echo "ready $holder"
exec sleep infinity
"""
