"""The node plugin's memory (issue 18, docs/performance.md "Memory"): what a node loads at start, glibc's
arenas capped by the process itself, the idle trim, and metrics kept without prometheus_client."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from csi import memory
from csi.metrics import _BUCKETS, Metrics

#: what a node plugin never needs at start (the controller's cloud clients, the lock-release
#: controller's kubernetes client, NFS routing, the metrics' exposition and HTTP stacks, test tools)
NOT_AT_NODE_START = (
    "google.cloud",
    "google.auth",
    "google.api_core",
    "kubernetes",
    "pyroute2",
    "hypothesis",
    "prometheus_client",
    "http.server",
    "urllib.request",
    "email",
    "csi.controller",
    "csi.cloud.gcp",
    "csi.cloud.emulator",
    "csi.lockrelease.kube",
    "tempfile",
    "random",
)

#: the driver started as deployed (csi.main.main, node mode) up to the point it would serve: the server is
#: built and bound, then the modules loaded and glibc's arenas (a thread that mallocs after the cap was
#: set gets none of its own) are reported
_NODE_START = textwrap.dedent(
    """
    import ctypes, json, sys, threading
    import csi.main

    def report(server, grace, on_stop=None):
        server.stop(None)
        worker = threading.Thread(target=lambda: [bytearray(100_000) for _ in range(10)])
        worker.start()
        worker.join()
        libc = ctypes.CDLL(None)
        libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
        print(json.dumps(sorted(sys.modules)), flush=True)

    csi.main.serve_until_signalled = report
    sys.exit(csi.main.main(sys.argv[1:]))
    """
)


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _arenas(stderr: str) -> int:
    return len(re.findall(r"^Arena \d+:", stderr, re.MULTILINE))


def test_node_mode_starts_without_what_it_never_uses(tmp_path: Path) -> None:
    root = tmp_path / "kubelet"
    root.mkdir()
    done = _run(
        _NODE_START,
        *("--mode", "node", "--node-id", "n1", "--zone", "us-central1-c"),
        *("--endpoint", f"unix://{tmp_path}/csi.sock", "--kubelet-root", str(root)),
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"csi.node.service", "csi.server", "grpc"} <= modules  # the node was built
    loaded = sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_AT_NODE_START))
    assert loaded == []
    assert _arenas(done.stderr) == 1, done.stderr  # M_ARENA_MAX=1 was set before the threads started


def test_without_the_cap_a_thread_gets_an_arena_of_its_own() -> None:
    """The arena check above can fail: the same thread in a process that set no cap makes a second arena."""
    script = (
        _NODE_START.split("csi.main.serve_until_signalled")[0] + "report(type('S', (), {'stop': print})(), 0)"
    )
    done = _run(script.replace("import csi.main", ""))
    assert done.returncode == 0, done.stderr
    assert _arenas(done.stderr) >= 2, done.stderr


def test_a_controller_flag_given_to_a_node_is_still_checked(capsys: pytest.CaptureFixture[str]) -> None:
    from csi.main import main

    with pytest.raises(SystemExit) as info:
        main(["--mode", "node", "--node-id", "n", "--zone", "us-central1-c", "--extra-labels", "Team=x"])
    assert info.value.code == 2
    assert "--extra-labels" in capsys.readouterr().err


# --- the idle trim -----------------------------------------------------------------------------


class _Calls:
    def __init__(self) -> None:
        self.count = 0
        self.trimmed_at: list[int] = []

    def trim(self) -> bool:
        self.trimmed_at.append(self.count)
        return True


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_trimmer_trims_once_after_start_and_once_after_calls_stop() -> None:
    calls = _Calls()
    trimmer = memory.IdleTrimmer(lambda: calls.count, tick=0.02, trim=calls.trim)
    trimmer.start()
    try:
        _wait_for(lambda: calls.trimmed_at == [0])  # start-up's garbage
        time.sleep(0.1)
        assert calls.trimmed_at == [0]  # idle: nothing more
        for _ in range(20):  # calls that keep coming within every tick: no trim among them
            calls.count += 1
            time.sleep(0.005)
        assert calls.trimmed_at == [0]
        _wait_for(lambda: calls.trimmed_at == [0, 20])  # quiet after them: one trim
        time.sleep(0.1)
        assert calls.trimmed_at == [0, 20] and trimmer.trims == 2
    finally:
        trimmer.stop()


def test_trim_and_tune_reach_glibc() -> None:
    assert memory.tune_malloc(memory.ARENA_MAX) is True
    assert isinstance(memory.trim(), bool)


def test_a_trim_hands_freed_pages_back() -> None:
    def rss_kib() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    keep = [bytearray(64 * 1024) for _ in range(400)]  # 25 MiB under glibc's mmap threshold, in the heap
    for block in keep:
        block[::4096] = b"x" * len(block[::4096])  # touched: resident
    del keep[:-1]  # freed in the middle of the heap, below the last block: free() cannot shrink the top
    before = rss_kib()
    memory.trim()
    assert rss_kib() < before - 10 * 1024


# --- metrics without prometheus_client ------------------------------------------------------------


def test_metrics_write_what_prometheus_clients_counter_and_histogram_write() -> None:
    """A differential test: the same calls recorded in prometheus_client's own Counter and Histogram."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    registry = CollectorRegistry()
    labels = ("method", "grpc_status_code")
    counter = Counter(
        "csi_operations", "CSI calls handled, by method and gRPC status code.", labels, registry=registry
    )
    histogram = Histogram(
        "csi_operation_duration_seconds",
        "Time to handle a CSI call, by method and gRPC status code.",
        labels,
        buckets=_BUCKETS,
        registry=registry,
    )
    ours = Metrics()
    rng = random.Random(18)
    for _ in range(300):
        method, code = rng.choice(["NodePublishVolume", "Probe"]), rng.choice(["OK", "NOT_FOUND"])
        seconds = rng.choice([0.005, 0.0049, 0.3, 1.0, 300.0, 400.0, rng.random() * 3])
        counter.labels(method, code).inc()
        histogram.labels(method, code).observe(seconds)
        ours.record(method, code, seconds)

    def without_created(text: bytes) -> str:  # creation times differ by the microseconds between them
        return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text.decode())

    assert without_created(ours.exposition()) == without_created(generate_latest(registry))
    assert ours.calls() == 300


def test_recording_does_not_load_prometheus_client() -> None:
    script = (
        "import sys; from csi.metrics import Metrics; m = Metrics(); m.record('Probe', 'OK', 0.1); "
        "print('prometheus_client' in sys.modules); m.exposition(); print('prometheus_client' in sys.modules)"
    )
    done = _run(script)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_recording_is_safe_from_many_threads() -> None:
    metrics = Metrics()

    def work() -> None:
        for _ in range(2000):
            metrics.record("Probe", "OK", 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert metrics.calls() == 8000
    assert (
        'csi_operations_total{grpc_status_code="OK",method="Probe"} 8000.0' in metrics.exposition().decode()
    )
