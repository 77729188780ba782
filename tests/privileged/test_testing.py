"""mountkit.testing, the pytest plugin, seen from outside: an inner pytest session runs a test file.

The inner session runs in a private mount namespace of its own (util-linux ``unshare``), so the
test that leaks a mount on purpose leaks it into that throwaway namespace, never the host's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

from mountkit.testing import unshare_argv

pytestmark = pytest.mark.privileged

INNER = """
import os

import pytest

from mountkit import _sys
from mountkit.mounter import is_mountpoint


@pytest.mark.mount_ns
def test_mounts_in_its_own_namespace(ns_scratch):
    target = os.path.join(ns_scratch, "t")
    os.mkdir(target)
    _sys.mount("tmpfs", target, "tmpfs", 0, None)
    assert is_mountpoint(ns_scratch) and is_mountpoint(target)


@pytest.mark.mount_ns
def test_fails_with_the_child_traceback():
    marker_value = 41
    assert marker_value == 42, "the child's own message"


@pytest.mark.mount_ns
def test_skips_from_the_child():
    pytest.skip("skipped inside the child")


def test_in_ns_runner(in_ns):
    def body(scratch, name):
        path = os.path.join(scratch, name)
        os.mkdir(path)
        _sys.mount("tmpfs", path, "tmpfs", 0, None)
        return is_mountpoint(path)

    assert in_ns(body, "x") is True


def test_leak_fails(in_ns, tmp_path):
    assert in_ns(lambda scratch: os.listdir(scratch)) == []
    _sys.mount("tmpfs", str(tmp_path), "tmpfs", 0, None)  # outside the child: a leak


def test_fake_mounter(fake_mounter):
    fake_mounter.mount("tmpfs", "/fake/a", "tmpfs")
    assert fake_mounter.is_mountpoint("/fake/a")
"""


def _inner(*prefix: str) -> subprocess.CompletedProcess[str]:
    """The inner session's result; its directory is readable by anyone (the second test drops root)."""
    with tempfile.TemporaryDirectory(prefix="mountkit-plugin-") as tmp:
        os.chmod(tmp, 0o755)
        path = os.path.join(tmp, "test_inner.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(INNER))
        argv = [
            *prefix,
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            "--rootdir",
            tmp,
            path,
        ]
        return subprocess.run(
            unshare_argv(argv), capture_output=True, text=True, timeout=300, cwd=tmp, check=False
        )


def test_plugin_runs_marks_skips_and_catches_leaks() -> None:
    result = _inner()
    out = result.stdout
    summary = out.strip().splitlines()[-1]
    assert re.search(r"1 failed, 4 passed, 1 skipped, 1 error", summary), out
    # the assertion comes back with the child's traceback (its source line and message)
    assert "ChildFailed: AssertionError: the child's own message" in out, out
    assert "assert marker_value == 42" in out, out
    assert "SKIPPED [1]" in out and "skipped inside the child" in out, out
    # the leak: reported at teardown of the test that made it, naming the mount
    assert re.search(
        r"ERROR at teardown of test_leak_fails _+\nmounts leaked into the parent's mount table:\n.*"
        r"/test_leak_fails0 rw\S* - tmpfs tmpfs",
        out,
    ), out
    assert "testing.py" not in out.split("ChildFailed: ", 1)[1], "plugin frames in the child's traceback"


def test_without_root_uses_a_user_namespace_or_skips() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs util-linux setpriv to drop root")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    userns = subprocess.run(
        [*nobody, "unshare", "--user", "--map-root-user", "--mount", "true"], check=False, capture_output=True
    )
    result = _inner(*nobody)
    out = result.stdout
    if userns.returncode == 0:
        # as nobody, in a user namespace: the namespace tests pass, and the leak cannot happen (EPERM)
        assert re.search(r"2 failed, 3 passed, 1 skipped", out.strip().splitlines()[-1]), out
        assert "test_leak_fails - mountkit.errors.MountError" in out, out
    else:
        assert "needs root, or unprivileged user namespaces" in out, out
