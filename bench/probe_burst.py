"""A burst of liveness probes of one staged share, in process: mountkit trees compared in one run.

In a private mount namespace holding 10,000 kubelet binds and one staged tmpfs (bench_kubelet's
``_stage``), measured per tree:

  * ``probe burst``: BURST threads released by a barrier, each calling
    ``Mounter.is_live_mountpoint(staging)`` once (as BURST concurrent publishes of one share do);
  * ``publish burst``: BURST threads each calling the whole ``NodeServicer.NodePublishVolume`` (built
    as csi/main.py builds it) of the staged share to a target of its own, then, untimed, unpublishing;
  * ``sequential probe``: one caller's ``is_live_mountpoint(staging)``, p50 and p99.

Each burst is reported as its wall (median over ``--rounds``) and the process's voluntary and
involuntary context switches (getrusage, every thread), per call.  Each tree runs in its own
process, trees alternating, so their figures come from one run on one machine state::

    python bench/probe_burst.py --tree /path/to/base --tree /path/to/branch --runs 3

Not part of ``bench/run``: it compares trees (e.g. a branch against main), it does not record a result.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

BURST = 110
HERE = os.path.dirname(os.path.abspath(__file__))


def _switches() -> tuple[int, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw, usage.ru_nivcsw


def _jobs() -> tuple[int, int]:
    """(probes the C pool started, callers that joined one in flight); (0, 0) before probes were shared."""
    from mountkit import _sys

    return _sys.probe_jobs() if hasattr(_sys, "probe_jobs") else (0, 0)


def _burst(calls: list[Callable[[], Any]]) -> tuple[float, int, int, int, int]:
    """(wall, voluntary, involuntary switches, probes started, probes joined) of every call on a thread of
    its own, released at once."""
    barrier = threading.Barrier(len(calls) + 1)
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    time.sleep(0.05)  # every thread waits at the barrier
    vol, invol = _switches()
    started, joined = _jobs()
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    vol2, invol2 = _switches()
    started2, joined2 = _jobs()
    if errors:
        raise errors[0]
    return wall, vol2 - vol, invol2 - invol, started2 - started, joined2 - joined


def _measure(scratch: str, rounds: int, sequential: int) -> dict[str, Any]:
    """In the namespace child: the three figures of this tree."""
    sys.path.insert(0, HERE)
    from bench_kubelet import _stage

    from csi.locks import VolumeLocks
    from csi.main import Identity, _make_node, build_parser
    from csi.node import kubelet
    from csi.proto import csi_pb2
    from mountkit import Mounter

    root, staging, _ = _stage(scratch, 10000)
    mounter = Mounter(probe_timeout=10.0)
    args = build_parser().parse_args(
        ["--mode", "node", "--node-id", "n", "--zone", "z", "--kubelet-root", root]
    )
    node = _make_node(args, Identity("", "z", "n"), VolumeLocks(), root, [])
    cap = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(
            mode=csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
        ),
    )
    targets = [kubelet.publish_target(root, f"burst-{i:03d}", "pvc-burst") for i in range(BURST)]
    for t in targets:
        os.makedirs(os.path.dirname(t), exist_ok=True)

    def publish(target: str) -> Callable[[], Any]:
        request = csi_pb2.NodePublishVolumeRequest(
            volume_id="v",
            staging_target_path=staging,
            target_path=target,
            volume_capability=cap,
            readonly=True,
        )
        return lambda: node.NodePublishVolume(request, None)  # type: ignore[arg-type]

    def unpublish_all() -> None:
        for t in targets:
            node.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id="v", target_path=t), None)  # type: ignore[arg-type]

    out: dict[str, Any] = {"probe burst": [], "publish burst": []}
    for _ in range(rounds):
        out["probe burst"].append(_burst([lambda: mounter.is_live_mountpoint(staging)] * BURST))
        out["publish burst"].append(_burst([publish(t) for t in targets]))
        assert all(mounter.is_mountpoint(t) for t in targets), "a publish left its target unmounted"
        unpublish_all()
    times = []
    for _ in range(sequential):
        start = time.perf_counter_ns()
        mounter.is_live_mountpoint(staging)
        times.append(time.perf_counter_ns() - start)
    times.sort()
    out["sequential probe"] = (times[len(times) // 2], times[len(times) * 99 // 100])
    return out


def _child(rounds: int, sequential: int) -> None:
    sys.path.insert(0, HERE)
    import common

    print(json.dumps(common.in_private_ns(_measure, rounds, sequential)))


def _summary(runs: list[dict[str, Any]]) -> dict[str, str]:
    out = {}
    for key in ("probe burst", "publish burst"):
        bursts = [b for run in runs for b in run[key]]
        wall = statistics.median(b[0] for b in bursts) * 1000
        vol = statistics.median(b[1] for b in bursts) / BURST
        invol = statistics.median(b[2] for b in bursts) / BURST
        started = statistics.median(b[3] for b in bursts)
        joined = statistics.median(b[4] for b in bursts)
        out[key] = (
            f"wall {wall:6.2f} ms, {vol:5.2f} voluntary + {invol:5.2f} involuntary switches per call, "
            f"probes started/joined {started:g}/{joined:g}"
        )
    p50 = statistics.median(run["sequential probe"][0] for run in runs) / 1000
    p99 = statistics.median(run["sequential probe"][1] for run in runs) / 1000
    out["sequential probe"] = f"p50 {p50:5.2f} us, p99 {p99:5.2f} us"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", action="append", default=[], help="a mountkit tree (PYTHONPATH); repeat")
    parser.add_argument("--runs", type=int, default=3, help="processes per tree, alternating")
    parser.add_argument("--rounds", type=int, default=10, help="bursts of each kind per process")
    parser.add_argument("--sequential", type=int, default=3000, help="sequential probes per process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.rounds, args.sequential)
        return
    trees = args.tree or [os.path.dirname(HERE)]
    runs: dict[str, list[dict[str, Any]]] = {tree: [] for tree in trees}
    for _ in range(args.runs):
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=tree)
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--rounds", str(args.rounds)]
            got = subprocess.run(
                [*cmd, "--sequential", str(args.sequential)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            runs[tree].append(json.loads(got.stdout.strip().splitlines()[-1]))
    for tree in trees:
        print(tree)
        for key, line in _summary(runs[tree]).items():
            print(f"  {key:17s} {line}")


if __name__ == "__main__":
    main()
