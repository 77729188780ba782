"""Symlink races on mount targets (the CVE-2021-25741 class) cannot move a mount out of the kubelet root.

A thread swaps a target's parent directory for a symlink to a directory outside the root, over and
over, while binds run through the mountkit API with ``beneath=root`` (both API paths) and through
the node service.  Afterwards the mount table must hold nothing outside the root, and every bind
either landed at its target inside the root or was refused with a clear error.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Any

import pytest

from csi.errors import CsiError
from csi.locks import VolumeLocks
from csi.node.service import NodeServicer
from csi.proto import csi_pb2
from mountkit import Mounter, _sys
from mountkit.errors import MountError
from mountkit.table import MountTable

pytestmark = pytest.mark.privileged

ATTEMPTS = 1500


def _start_racer(parent: str, hidden: str, outside: str) -> tuple[int, int]:
    """A process (no GIL shared with the binds) swapping ``parent`` for a symlink to ``outside`` until
    SIGTERM."""
    rfd, wfd = os.pipe()
    # SIGTERM stays blocked across the fork until the child's handler is in place: on a loaded machine
    # the parent may be done and stop the racer before the child has run a line, which killed it mute.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        swaps = 0
        while not stop:
            os.rename(parent, hidden)
            os.symlink(outside, parent)
            # Each state is held across a yield, so that binds meet both (both outcomes of the race
            # are checked) whether or not the racer shares a CPU with them: on an idle machine it
            # otherwise swaps so fast that every bind is refused, and on a busy one, where both
            # run on one CPU, a bind runs only while the real directory is back.
            time.sleep(0)
            os.unlink(parent)
            os.rename(hidden, parent)
            swaps += 1
            time.sleep(0)
        os.write(wfd, str(swaps).encode())
        os._exit(0)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.close(wfd)
    return pid, rfd


def _stop_racer(pid: int, rfd: int) -> int:
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    with os.fdopen(rfd) as inp:
        return int(inp.read())


def _race(scratch: str, how: str) -> dict[str, Any]:
    root, outside = os.path.join(scratch, "kubelet"), os.path.join(scratch, "outside")
    staging = os.path.join(root, "plugins", "staging", "vol")
    parent = os.path.join(root, "pods", "uid", "volumes", "pvc")
    hidden = parent + ".real"
    for d in (staging, parent, outside):
        os.makedirs(d)
    _sys.mount("share", staging, "tmpfs", 0, "size=1m")
    if how == "legacy":
        _sys.mark_unsupported("open_tree")  # this child only: mount(2) onto /proc/self/fd/N
    targets = [os.path.join(parent, f"m{i}") for i in range(ATTEMPTS)]
    for t in targets:
        if how != "node":  # the node creates its targets itself
            os.mkdir(t)
            os.mkdir(os.path.join(outside, os.path.basename(t)))  # the symlink must lead somewhere real
    racer = _start_racer(parent, hidden, outside)
    mounter = Mounter(probe_timeout=2.0)
    node = NodeServicer("n", "z", root, mounter, VolumeLocks(), 2.0)
    cap = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(
            mode=csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
        ),
    )
    ok, refused, errors = 0, 0, set()
    try:
        for i, t in enumerate(targets):
            try:
                if how == "node":
                    node.NodePublishVolume(
                        csi_pb2.NodePublishVolumeRequest(
                            volume_id="vol",
                            staging_target_path=staging,
                            target_path=t,
                            volume_capability=cap,
                            readonly=bool(i % 2),
                        ),
                        None,  # type: ignore[arg-type]
                    )
                else:
                    mounter.bind(staging, t, readonly=how != "rw", beneath=root)
                ok += 1
            except MountError as exc:
                assert exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR, errno.EAGAIN), exc
                errors.add(f"{type(exc).__name__}: {exc}")
                refused += 1
            except CsiError as exc:
                errors.add(f"{exc.code.name}: {exc.message}")
                refused += 1
    finally:
        swaps = _stop_racer(*racer)
    table = MountTable.read()
    mine = [m for m in table if m.mount_point.startswith(scratch + "/")]
    escaped = [m.mount_point for m in mine if not m.mount_point.startswith(root + "/")]
    binds = {m.mount_point for m in mine if m.mount_point.startswith(parent + "/")}
    stray = sorted(os.listdir(outside)) if how == "node" else []
    return {
        "swaps": swaps,
        "ok": ok,
        "refused": refused,
        "escaped": escaped,
        "binds": len(binds),
        "stray": stray,
        "errors": sorted(errors)[:4],
    }


@pytest.mark.parametrize("how", ["rw", "ro", "legacy", "node"])
def test_swapped_parent_never_redirects_a_bind(in_ns: Any, how: str) -> None:
    r = in_ns(_race, how, timeout=300)
    print(
        f"\n[{how}] swaps={r['swaps']} attempts={ATTEMPTS} successes={r['ok']} refusals={r['refused']} "
        f"mounts outside root={len(r['escaped'])} stray dirs outside={len(r['stray'])} "
        f"sample errors={r['errors']}"
    )
    assert r["escaped"] == [] and r["stray"] == []
    assert r["ok"] + r["refused"] == ATTEMPTS and r["binds"] == r["ok"]
    # The race really ran both ways (how many swaps that took depends on the machine's load).
    assert r["swaps"] > 0 and r["refused"] > 0 and r["ok"] > 0
