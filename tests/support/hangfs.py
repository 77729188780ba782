"""A FUSE filesystem that stands in for a sick NFS share: it answers, hangs, or fails on demand.

The development kernel has FUSE but no NFS client, and a FUSE getattr that never answers leaves the
caller in uninterruptible sleep exactly like a stat on a dead hard-mounted NFS share. The mode is
read from a control file outside the mount on every call, so a test flips it at will: ``ok``,
``hang`` (getattr and statfs block until the mode changes), or an errno name such as ``ESTALE``,
``ENOTCONN`` or ``EIO``. Attribute caching is off so every stat reaches the daemon. Hung callers are
freed by aborting the connection (``abort``), as DESIGN.md describes.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import sys
import time

from mountkit import _sys

CONTROL_NAME = "hangfs.mode"


def _mode(control: str) -> str:
    try:
        with open(control) as f:
            return f.read().strip() or "ok"
    except FileNotFoundError:
        return "ok"


def set_mode(control: str, mode: str) -> None:
    with open(control + ".tmp", "w") as f:
        f.write(mode)
    os.replace(control + ".tmp", control)


def serve(mountpoint: str, control: str) -> None:
    """Run the filesystem in the foreground (call in a child process)."""
    import fuse  # fusepy, over Debian's libfuse2

    class HangFS(fuse.Operations):  # type: ignore[misc]
        def _gate(self) -> None:
            while True:
                mode = _mode(control)
                if mode == "ok":
                    return
                if mode == "hang":
                    time.sleep(0.05)
                    continue
                raise fuse.FuseOSError(getattr(errno, mode, errno.EIO))

        def getattr(self, path: str, fh: object = None) -> dict[str, int]:
            self._gate()
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: object) -> list[str]:
            self._gate()
            return [".", ".."]

        def statfs(self, path: str) -> dict[str, int]:
            self._gate()
            return {
                "f_bsize": 4096,
                "f_frsize": 4096,
                "f_blocks": 1000,
                "f_bfree": 600,
                "f_bavail": 500,
                "f_files": 100,
                "f_ffree": 40,
                "f_favail": 40,
                "f_namemax": 255,
            }

    fuse.FUSE(
        HangFS(),
        mountpoint,
        foreground=True,
        nothreads=False,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        fsname="hangfs",
        subtype="hangfs",
    )


def start(mountpoint: str, control: str, timeout: float = 10.0) -> int:
    """Fork a daemon serving ``mountpoint``; returns its PID once the mount is there."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            serve(mountpoint, control)
        finally:
            os._exit(0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/self/mountinfo") as f:
            if any(line.split()[4] == mountpoint for line in f):
                return pid
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    raise RuntimeError(f"hangfs did not mount at {mountpoint}")


def abort(mountpoint: str) -> None:
    """Abort the FUSE connection of ``mountpoint``: every caller blocked in it gets ENOTCONN."""
    conns = "/sys/fs/fuse/connections"
    if not os.listdir(conns):
        _sys.mount("fusectl", conns, "fusectl", 0, None)
    with open("/proc/self/mountinfo") as f:
        minor = next(line.split()[2].split(":")[1] for line in f if line.split()[4] == mountpoint)
    with open(f"{conns}/{minor}/abort", "w") as f:
        f.write("1")


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
