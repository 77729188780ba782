"""Figures the reliability tests report (inputs tried, faults injected, mounts leaked, bytes lost).

Each test calls :func:`report` once; the line is printed (seen with ``pytest -s``) and appended to
``.reliability/figures.txt`` at the repository root, so a CI or nightly run keeps its numbers.
Sizes come from environment variables so CI runs small and a nightly run large with the same code.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

# Channel options for a driver that is being restarted: gRPC's default first reconnect backoff is
# 1 s, longer than a restart takes.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]
FIGURES = str(Path(__file__).resolve().parents[2] / ".reliability" / "figures.txt")


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


class DriverProcess:
    """The driver (``csi.main``) as a child process on a fixed socket, to be SIGKILLed and restarted.

    ``flags`` come after the defaults, so they win (e.g. ``--emulator-endpoint`` for a controller
    whose emulator must outlive its kills).
    """

    def __init__(
        self,
        mode: str = "node",
        env: dict[str, str] | None = None,
        log_level: str = "INFO",
        flags: tuple[str, ...] = (),
    ) -> None:
        import tempfile

        self.workdir = tempfile.mkdtemp(prefix="filestore-reliability-")
        self.root = os.path.join(self.workdir, "kubelet")
        self.sock = os.path.join(self.workdir, "csi.sock")
        self.log = os.path.join(self.workdir, "driver.log")
        os.makedirs(os.path.join(self.root, "plugins"))
        os.makedirs(os.path.join(self.root, "pods"))
        self.mode, self.env, self.log_level, self.flags = mode, env, log_level, flags
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        """The driver's command line."""
        from tests.support.csiutil import driver_argv

        return driver_argv(
            self.root,
            self.sock,
            f"--mode={self.mode}",
            "--cloud=emulator",
            "--probe-timeout=3",
            f"--log-level={self.log_level}",
            "--grace=1",
            *self.flags,
        )

    def start(self) -> int:
        """Start a driver and wait until it serves; its pid."""
        import grpc

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, env=self.env)
        self.starts += 1
        # A fresh channel per try: one channel that first met the dead driver's socket backs off
        # exponentially and may not look again for tens of seconds.
        deadline = time.monotonic() + 90
        while True:
            with grpc.insecure_channel(f"unix://{self.sock}", options=FAST_RECONNECT) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    return self.proc.pid
                except grpc.FutureTimeoutError:
                    pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log, errors="replace") as log:
                    tail = log.read()[-3000:]
                raise RuntimeError(
                    f"driver start #{self.starts} did not serve (rc={self.proc.poll()}):\n{tail}"
                )

    def kill(self) -> bool:
        """SIGKILL the driver (no cleanup of any kind) and reap it; whether it was alive."""
        import signal

        alive = self.alive()
        if self.proc is not None and alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        return alive

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM a running driver and reap it."""
        from tests.support.csiutil import stop

        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc, timeout=15)

    def close(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.workdir)


class NsDriver(DriverProcess):
    """A :class:`DriverProcess` in a mount namespace that outlives it, so its mounts survive a kill.

    A holder process (``unshare --mount --propagation private sleep infinity``) keeps the namespace;
    every driver is started inside it with ``nsenter --mount=/proc/<holder>/ns/mnt`` (nsenter execs,
    so the Popen pid is the driver's).  The namespace, and everything mounted in it, dies with the
    holder at :meth:`close`.
    """

    def __init__(
        self, mode: str = "node", env: dict[str, str] | None = None, log_level: str = "INFO"
    ) -> None:
        super().__init__(mode, env, log_level)
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sleep", "infinity"]
        )
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
            if time.monotonic() > deadline:
                raise RuntimeError("the namespace holder never entered its namespace")
            time.sleep(0.01)

    def argv(self) -> list[str]:
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--", *super().argv()]

    def ns(self, *argv: str, check: bool = True) -> str:
        """Run ``argv`` in the namespace; its stdout."""
        from tests.support.csiutil import nsenter

        return nsenter(self.holder.pid, *argv, check=check).stdout

    def mounts(self) -> list[str]:
        """Mount points under the kubelet root, one per mount (a stacked mount appears twice)."""
        out = self.ns("findmnt", "-rn", "-o", "TARGET")
        return [line for line in out.splitlines() if line.startswith(self.root + "/")]

    def close(self) -> None:
        import signal

        self.stop()
        os.kill(self.holder.pid, signal.SIGKILL)
        self.holder.wait()
        super().close()
