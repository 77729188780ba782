"""The ``mountkit`` command as a process: a reader that closes the pipe, findmnt's exit codes, --version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import mountkit

MOUNTKIT = [sys.executable, "-m", "mountkit.cli"]


def _closed_pipe_run(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout a pipe whose reader is already gone: every write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*MOUNTKIT, *argv], stdout=write_end, stderr=subprocess.PIPE, timeout=60, check=False
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("argv", [["list"], ["list", "--json"], ["--help"], ["--version"]])
def test_a_closed_pipe_ends_the_command_quietly_with_0(argv: list[str]) -> None:
    done = _closed_pipe_run(*argv)
    assert (done.returncode, done.stderr) == (0, b"")


def test_nothing_found_exits_1_like_findmnt() -> None:
    missing = "/nonexistent/mountkit-test"
    for argv in (["refs", missing], ["list", "--target", missing], ["list", "--json", "--target", missing]):
        done = subprocess.run([*MOUNTKIT, *argv], check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and done.stderr == "", argv
    if shutil.which("findmnt") is not None:  # the tool these codes follow, on the same path
        assert (
            subprocess.run(["findmnt", "--mountpoint", missing], check=False, capture_output=True).returncode
            == 1
        )


def test_version() -> None:
    done = subprocess.run([*MOUNTKIT, "--version"], check=False, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"mountkit {mountkit.__version__}\n")
