"""The syscall layer mounts real NFS with the data strings proven on this kernel (no mount.nfs)."""

from __future__ import annotations

import os

import pytest

from mountkit import _sys

CASES = {
    "v3": ("nfs", "vers=3,addr={server},nolock"),
    "v4.1": ("nfs", "vers=4.1,addr={server},clientaddr={server}"),
}


def _mount_write(scratch: str, server: str, export: str, fstype: str, data: str) -> tuple[str, str]:
    mnt = os.path.join(scratch, "mnt")
    os.mkdir(mnt)
    _sys.mount(f"{server}:{export}", mnt, fstype, 0, data)
    try:
        with open(os.path.join(mnt, "hello"), "w") as f:
            f.write("through nfs")
        with open("/proc/self/mountinfo") as table:
            line = next(x for x in table if x.split()[4] == mnt)
    finally:
        _sys.umount2(mnt, 0)
    with open(os.path.join(export, "hello")) as f:
        return line.split(" - ")[1].split()[0], f.read()


@pytest.mark.parametrize("case", sorted(CASES))
def test_raw_mount(case: str, nfs_server: str, export_dir: str, in_ns) -> None:  # type: ignore[no-untyped-def]
    fstype, data = CASES[case]
    seen_type, content = in_ns(_mount_write, nfs_server, export_dir, fstype, data.format(server=nfs_server))
    assert content == "through nfs"
    assert seen_type == ("nfs" if case == "v3" else "nfs4")
