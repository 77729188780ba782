"""The README's demo, run in the guest against real NFS servers: staging is a real NFS mount."""

from __future__ import annotations

import os
import subprocess
import sys

# run as tools/demo.sh --nfs-guest runs it: a module of the tests package, from the repository root
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_the_demo_runs_its_whole_lifecycle_on_real_nfs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.vm.guest.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK: the share is mounted" in done.stdout
    assert "stand-in" not in done.stdout
    assert " nfs " in done.stdout  # the staging mount as the table shows it
    assert "demo finished: every step succeeded" in done.stdout
