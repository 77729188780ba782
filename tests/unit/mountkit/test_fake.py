"""FakeMounter keeps the real engine's idempotency and conflict rules, without a kernel."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import pytest

from mountkit import FakeMounter, Mounter
from mountkit.errors import CorruptedMountError, InvalidOptionError, MountConflictError, MountError
from mountkit.mounter import MountInterface
from mountkit.nfs import NfsSource


def test_it_offers_every_verb_of_the_real_mounter() -> None:
    verbs = {name for name in vars(Mounter) if not name.startswith("_")} - {"probe_timeout"}
    assert verbs <= set(dir(FakeMounter))
    fake: MountInterface = FakeMounter()  # and type-checks as one
    assert not fake.list()


def test_mount_is_idempotent_and_refuses_something_else() -> None:
    fake = FakeMounter()
    fake.mount("tmpfs", "/t", "tmpfs", ["size=1m", "ro"])
    fake.mount("tmpfs", "/t", "tmpfs", ["size=1m", "ro"])
    assert len(fake.list().find_all("/t")) == 1
    entry = fake.list().find("/t")
    assert entry is not None and entry.readonly and entry.super_options == ("size=1m",)
    with pytest.raises(MountConflictError) as info:
        fake.mount("other", "/t", "tmpfs")
    assert "tmpfs 'tmpfs'" in str(info.value) and "'other'" in str(info.value)
    with pytest.raises(MountConflictError):
        fake.mount("tmpfs", "/t", "ramfs")


def test_nfs_and_nfs4_are_one_family() -> None:
    fake = FakeMounter()
    fake.mount("10.0.0.2:/vol", "/mnt/v", "nfs4", ["vers=4.1"])
    fake.mount("10.0.0.2:/vol", "/mnt/v", "nfs", ["vers=4.1"])
    assert len(fake.list().find_all("/mnt/v")) == 1
    with pytest.raises(InvalidOptionError):
        fake.mount("no-export-here", "/mnt/w", "nfs")


def test_a_structured_nfs_source_is_the_same_mount_as_its_text() -> None:
    fake = FakeMounter()
    fake.mount(NfsSource("fd00::2", "/share"), "/mnt/a", "nfs4", ["vers=4.1"])
    mounted = fake.list().find("/mnt/a")
    assert mounted is not None and mounted.source == "[fd00::2]:/share"
    assert fake.calls[-1][1] == "[fd00::2]:/share"
    fake.mount("[fd00::2]:/share", "/mnt/a", "nfs4", ["vers=4.1"])  # the same: a no-op
    assert len(fake.list().find_all("/mnt/a")) == 1
    with pytest.raises(InvalidOptionError, match="host is not a host name"):
        fake.mount(NfsSource("bad_host", "/x"), "/mnt/b", "nfs")
    with pytest.raises(InvalidOptionError, match="needs fstype nfs or nfs4"):
        fake.mount(NfsSource("10.0.0.2", "/x"), "/mnt/b", "tmpfs")
    with pytest.raises(InvalidOptionError, match="needs fstype nfs or nfs4"):
        Mounter().mount(NfsSource("10.0.0.2", "/x"), "/nonexistent/mountkit-test", "tmpfs")


def test_the_same_source_made_otherwise_is_a_conflict() -> None:
    fake = FakeMounter()
    fake.mount("tmpfs", "/t", "tmpfs", ["size=1m"])
    with pytest.raises(
        MountConflictError, match="it is mounted read-write; asked for tmpfs 'tmpfs' read-only"
    ):
        fake.mount("tmpfs", "/t", "tmpfs", ["size=1m", "ro"])
    fake.mount("10.0.0.2:/vol", "/mnt/v", "nfs4", ["vers=4.1"])
    fake.mount("10.0.0.2:/vol", "/mnt/v", "nfs4", ["vers=4"])  # any 4.x meets vers=4
    with pytest.raises(MountConflictError, match="NFS version 4.1; asked for nfs '10.0.0.2:/vol' version 3"):
        fake.mount("10.0.0.2:/vol", "/mnt/v", "nfs", ["nfsvers=3"])
    assert [len(fake.list().find_all(p)) for p in ("/t", "/mnt/v")] == [1, 1]


def test_sensitive_options_never_reach_the_record() -> None:
    fake = FakeMounter()
    fake.mount("//srv/share", "/s", "cifs", ["vers=3"], sensitive_options=["password=hunter2"])
    assert "hunter2" not in repr(fake.calls) and "hunter2" not in repr(fake.list()[0])
    assert fake.calls == [("mount", "//srv/share", "/s", "cifs", "vers=3,password=<redacted>")]


def test_bind_is_idempotent_per_source_and_read_only_state() -> None:
    fake = FakeMounter()
    fake.mount("tmpfs", "/staging", "tmpfs")
    fake.bind("/staging/vol", "/pod/a", readonly=True)
    fake.bind("/staging/vol", "/pod/a", readonly=True)
    assert fake.refs("/pod/a") == []
    fake.bind("/staging/vol", "/pod/b")
    assert fake.refs("/pod/a") == ["/pod/b"]
    with pytest.raises(MountConflictError, match="read-write"):
        fake.bind("/staging/vol", "/pod/a")  # same source, other ro state
    with pytest.raises(MountConflictError):
        fake.bind("/staging/other", "/pod/a", readonly=True)
    with pytest.raises(InvalidOptionError):
        fake.bind("/staging/vol", "/pod/c", options=["size=1m"])


def test_recursive_bind_carries_child_mounts() -> None:
    fake = FakeMounter()
    fake.mount("tmpfs", "/src", "tmpfs")
    fake.mount("child", "/src/sub", "tmpfs")
    fake.bind("/src", "/flat")
    fake.bind("/src", "/deep", recursive=True)
    assert fake.is_mountpoint("/deep/sub") and not fake.is_mountpoint("/flat/sub")


def test_remount_changes_flags_and_needs_a_mount_point() -> None:
    fake = FakeMounter()
    fake.mount("tmpfs", "/t", "tmpfs", "nosuid")
    fake.remount("/t", "ro,nodev")
    entry = fake.list().find("/t")
    assert entry is not None and entry.options == ("ro", "nodev", "nosuid")
    fake.remount("/t", "rw")
    entry = fake.list().find("/t")
    assert entry is not None and not entry.readonly
    with pytest.raises(MountError) as info:
        fake.remount("/nothing", "ro")
    assert info.value.errno == errno.EINVAL and info.value.filename == "/nothing"


def test_unmount_takes_every_stacked_mount_and_is_idempotent() -> None:
    fake = FakeMounter()
    fake.mount("a", "/t", "tmpfs")
    fake.entries.append(dataclasses.replace(fake.entries[0], mount_id=999, source="b"))  # stacked on top
    fake.unmount("/t")
    fake.unmount("/t")
    assert not fake.is_mountpoint("/t") and not fake.list()


def test_unmount_with_mounts_below_is_busy_unless_lazy() -> None:
    fake = FakeMounter()
    fake.mount("a", "/t", "tmpfs")
    fake.mount("b", "/t/sub", "tmpfs")
    with pytest.raises(MountError) as info:
        fake.unmount("/t")
    assert info.value.errno == errno.EBUSY
    fake.unmount("/t", lazy=True)
    assert not fake.list()


def test_cleanup_removes_only_an_empty_directory(tmp_path: Path) -> None:
    fake = FakeMounter()
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    (full / "keep").write_text("data")
    fake.mount("tmpfs", empty, "tmpfs")
    fake.cleanup_mountpoint(empty)
    assert not empty.exists() and not fake.list()
    fake.cleanup_mountpoint(empty)  # already gone: success
    with pytest.raises(MountError) as info:
        fake.cleanup_mountpoint(full)
    assert info.value.errno == errno.ENOTEMPTY and info.value.filename == str(full)
    assert (full / "keep").read_text() == "data"


def test_corrupted_paths_and_injected_failures() -> None:
    fake = FakeMounter()
    fake.mount("srv:/x", "/mnt/x", "nfs")
    fake.set_corrupted("/mnt/x", errno.ENOTCONN)
    with pytest.raises(CorruptedMountError) as info:
        fake.check("/mnt/x/deep")
    assert info.value.errno == errno.ENOTCONN
    with pytest.raises(CorruptedMountError):
        fake.is_mountpoint("/mnt/x")
    fake.unmount("/mnt/x")  # a dead mount can still be unmounted
    assert not fake.list()

    fake.fail_next("unmount", MountError(errno.EBUSY, "umount", "/y"))
    with pytest.raises(MountError):
        fake.unmount("/y")
    fake.unmount("/y")  # only the next call fails
    assert [c[0] for c in fake.calls][-2:] == ["unmount", "unmount"]
    assert os.path.isabs(fake.calls[-1][1])  # type: ignore[arg-type]


def _propagation(fake: FakeMounter) -> dict[str, tuple[str, ...]]:
    return {e.mount_point: e.optional_fields for e in fake.list()}


def test_propagation_verbs_are_idempotent_and_follow_the_kernel_rules() -> None:
    fake = FakeMounter()
    fake.mount("a", "/t", "tmpfs")
    fake.mount("b", "/t/sub", "tmpfs")
    fake.make_shared("/t", recursive=True)
    first = _propagation(fake)
    fake.make_shared("/t", recursive=True)  # again: the same peer groups
    assert _propagation(fake) == first and first["/t"] != first["/t/sub"]
    assert all(fields[0].startswith("shared:") for fields in first.values())
    fake.make_slave("/t/sub")  # no peers: a shared mount without them becomes private
    assert _propagation(fake)["/t/sub"] == ()
    fake.bind("/t", "/peer")
    fake.entries[-1] = dataclasses.replace(
        fake.entries[-1], optional_fields=first["/t"]
    )  # a peer, as the kernel makes
    fake.make_slave("/t")
    assert _propagation(fake)["/t"] == (f"master:{first['/t'][0][7:]}",)
    fake.make_unbindable("/t/sub")
    fake.make_slave("/t/sub")  # slave keeps unbindable
    assert _propagation(fake)["/t/sub"] == ("unbindable",)
    fake.make_private("/t", recursive=True)
    assert _propagation(fake)["/t"] == _propagation(fake)["/t/sub"] == ()
    with pytest.raises(MountError) as info:
        fake.make_shared("/plain")
    assert info.value.errno == errno.EINVAL


def test_move_is_idempotent_and_carries_child_mounts() -> None:
    fake = FakeMounter()
    fake.mount("a", "/src", "tmpfs")
    fake.mount("b", "/src/child", "tmpfs")
    fake.move("/src", "/dst")
    fake.move("/src", "/dst")  # done already: no-op
    assert [e.mount_point for e in fake.list()] == ["/dst", "/dst/child"]
    with pytest.raises(MountError) as info:
        fake.move("/nothing", "/else")
    assert info.value.errno == errno.EINVAL
    fake.mount("c", "/src", "tmpfs")
    with pytest.raises(MountConflictError):
        fake.move("/src", "/dst")


def test_rbind_and_recursive_unmount() -> None:
    fake = FakeMounter()
    fake.mount("a", "/src", "tmpfs")
    fake.mount("b", "/src/child", "tmpfs")
    fake.rbind("/src", "/copy")
    fake.rbind("/src", "/copy")
    assert [e.mount_point for e in fake.list().under("/copy")] == ["/copy", "/copy/child"]
    fake.unmount("/copy", recursive=True)
    fake.unmount("/copy", recursive=True)
    assert [e.mount_point for e in fake.list()] == ["/src", "/src/child"]
