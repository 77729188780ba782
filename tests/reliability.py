"""Figures the reliability tests report (inputs tried, faults injected, mounts leaked, bytes lost).

Each test calls :func:`report` once; the line is printed (seen with ``pytest -s``) and appended to
``.reliability/figures.txt`` at the repository root, so a CI or nightly run keeps its numbers.
Sizes come from environment variables so CI runs small and a nightly run large with the same code.
"""

from __future__ import annotations

import os
import time

FIGURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".reliability", "figures.txt")


def size(env: str, default: int) -> int:
    """The run size from ``env`` (an int), or the CI-sized ``default``."""
    return int(os.environ.get(env, default))


def seed(env: str = "MOUNTKIT_SEED") -> int:
    """A seed from ``env``, or a fresh one; tests print it so a failure can be replayed."""
    return int(os.environ.get(env) or time.time_ns() % 1_000_000)


def report(test: str, **figures: object) -> str:
    """Print ``test: key=value ...`` and append it to the figures file."""
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {test}: " + " ".join(f"{k}={v}" for k, v in figures.items())
    os.makedirs(os.path.dirname(FIGURES), exist_ok=True)
    with open(FIGURES, "a") as out:
        out.write(line + "\n")
    print(line)
    return line


class NsDriver:
    """The driver (``csi.main``) in a mount namespace that outlives it, so it can be killed and restarted.

    A holder process (``unshare --mount --propagation private sleep infinity``) keeps the namespace;
    every driver is started inside it with ``nsenter --mount=/proc/<holder>/ns/mnt`` (nsenter execs,
    so the Popen pid is the driver's).  The namespace, and everything mounted in it, dies with the
    holder at :meth:`close`.
    """

    def __init__(self, mode: str = "node", env: dict[str, str] | None = None, log_level: str = "INFO") -> None:
        import subprocess
        import tempfile

        self.workdir = tempfile.mkdtemp(prefix="filestore-reliability-")
        self.root = os.path.join(self.workdir, "kubelet")
        self.sock = os.path.join(self.workdir, "csi.sock")
        self.log = os.path.join(self.workdir, "driver.log")
        os.makedirs(os.path.join(self.root, "plugins"))
        os.makedirs(os.path.join(self.root, "pods"))
        self.mode, self.env, self.log_level = mode, env, log_level
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sleep", "infinity"]
        )
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
            if time.monotonic() > deadline:
                raise RuntimeError("the namespace holder never entered its namespace")
            time.sleep(0.01)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> int:
        """Start a driver in the namespace and wait until it serves; its pid."""
        import subprocess

        import grpc
        from csiutil import driver_argv

        argv = [
            "nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--",
            *driver_argv(
                self.root, self.sock, f"--mode={self.mode}", "--cloud=emulator", "--probe-timeout=3",
                f"--log-level={self.log_level}", "--grace=1",
            ),
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=self.env)
        self.starts += 1
        # A fresh channel per try: one channel that first met the dead driver's socket backs off
        # exponentially and may not look again for tens of seconds.
        deadline = time.monotonic() + 90
        while True:
            with grpc.insecure_channel(f"unix://{self.sock}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    return self.proc.pid
                except grpc.FutureTimeoutError:
                    pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log, errors="replace") as log:
                    tail = log.read()[-3000:]
                raise RuntimeError(f"driver start #{self.starts} did not serve (rc={self.proc.poll()}):\n{tail}")

    def kill(self) -> None:
        """SIGKILL the driver (no cleanup of any kind) and reap it."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ns(self, *argv: str, check: bool = True) -> str:
        """Run ``argv`` in the namespace; its stdout."""
        from csiutil import nsenter

        return nsenter(self.holder.pid, *argv, check=check).stdout

    def mounts(self) -> list[str]:
        """Mount points under the kubelet root, one per mount (a stacked mount appears twice)."""
        out = self.ns("findmnt", "-rn", "-o", "TARGET")
        return [line for line in out.splitlines() if line.startswith(self.root + "/")]

    def close(self) -> None:
        import shutil
        import signal

        from csiutil import stop

        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc, timeout=15)
        os.kill(self.holder.pid, signal.SIGKILL)
        self.holder.wait()
        shutil.rmtree(self.workdir)
