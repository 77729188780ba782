"""FakeMounter imports and works without mountkit's compiled extension and without pyroute2.

A consumer's unit tests should need neither a compiler nor netlink: the check runs in a fresh
interpreter where importing mountkit's compiled modules or ``pyroute2`` fails.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys

    for blocked in ("mountkit._mountkit_sys", "mountkit._mountkit_table", "pyroute2"):
        sys.modules[blocked] = None  # any import of it raises ImportError

    from mountkit import FakeMounter
    from mountkit.errors import MountConflictError, UnsupportedError

    fake = FakeMounter()
    fake.mount("tmpfs", "/p/a", "tmpfs", ["size=1m"])
    fake.mount("10.0.0.2:/vol", "/p/n", "nfs4", ["vers=4.1"])
    fake.bind("/p/a", "/p/b", readonly=True)
    try:
        fake.mount("other", "/p/a", "tmpfs")
    except MountConflictError:
        pass
    else:
        raise AssertionError("no conflict")
    table = fake.list()
    assert table.find("/p/b").readonly and table.find("/p/n").fs_type == "nfs4"
    assert [e.mount_point for e in table.under("/p")] == ["/p/a", "/p/n", "/p/b"]
    assert [e.mount_point for e in table][-3:] == ["/p/a", "/p/n", "/p/b"]
    assert fake.refs("/p/b") == ["/p/a"]
    fake.unmount("/p/b")
    assert not fake.is_mountpoint("/p/b")
    assert "mountkit._sys" not in sys.modules and sys.modules["pyroute2"] is None

    from mountkit.table import MountTable
    try:
        MountTable.read()
    except UnsupportedError as exc:
        print("read:", exc)
    """
)


def test_fake_mounter_needs_neither_the_extension_nor_pyroute2() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # reading the kernel's table is what still needs the extension, and it says so
    assert "read: mountinfo read" in result.stdout and "compiled extension is not built" in result.stdout


def test_fake_mounter_fixture(fake_mounter) -> None:  # type: ignore[no-untyped-def]
    fake_mounter.mount("tmpfs", "/t", "tmpfs")
    assert fake_mounter.is_mountpoint("/t") and fake_mounter.calls == [
        ("mount", "tmpfs", "/t", "tmpfs", ""),
        ("is_mountpoint", "/t"),
    ]
