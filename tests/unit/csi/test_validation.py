"""Shared request checks: capabilities, strings, maps, mount flags."""

from __future__ import annotations

import grpc
import pytest

from csi.errors import CsiError
from csi.locks import VolumeLocks
from csi.proto import csi_pb2
from csi.validation import (
    check_capabilities,
    check_capability,
    check_map,
    check_mount_flags,
    check_string,
    is_readonly,
)

Mode = csi_pb2.VolumeCapability.AccessMode


def cap(mode: int, flags: tuple[str, ...] = ()) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


def invalid(fn: object, *args: object) -> str:
    with pytest.raises(CsiError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return info.value.message


def test_every_known_access_mode_is_supported() -> None:
    for mode in Mode.Mode.values():
        if mode != Mode.UNKNOWN:
            check_capability(cap(mode))
    assert "access_mode" in invalid(check_capability, cap(Mode.UNKNOWN))
    assert "access_type" in invalid(check_capability, csi_pb2.VolumeCapability(access_mode=Mode(mode=1)))


def test_block_is_refused() -> None:
    block = csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=Mode(mode=1))
    assert "file storage" in invalid(check_capability, block)
    assert "volume_capabilities" in invalid(check_capabilities, [])


@pytest.mark.parametrize(
    "flag", ["bind", "rbind", "move", "remount", "shared", "rslave", "private", "", "a\nb"]
)
def test_mount_flags_refused(flag: str) -> None:
    invalid(check_mount_flags, [flag])


def test_mount_flag_messages_do_not_repeat_values() -> None:
    assert "s3cr3t" not in invalid(check_mount_flags, ["password=s3cr3t\n"])
    check_mount_flags(["hard", "nfsvers=4.1", "ro", "noatime,nosuid"])


def test_strings_and_maps() -> None:
    assert "name is required" in invalid(check_string, "", "name")
    assert "128" in invalid(check_string, "x" * 129, "name")
    assert "control" in invalid(check_string, "a\x00b", "name")
    assert check_string("x" * 128, "name") == "x" * 128
    assert check_string("", "opt", required=False) == ""
    invalid(check_map, {"k": "v\n"}, "parameters")
    invalid(check_map, {"k": "v" * 5000}, "parameters")
    check_map({"tier": "standard"}, "parameters")


def test_is_readonly() -> None:
    assert is_readonly(cap(Mode.MULTI_NODE_READER_ONLY), False)
    assert is_readonly(cap(Mode.SINGLE_NODE_READER_ONLY), False)
    assert is_readonly(cap(Mode.MULTI_NODE_MULTI_WRITER), True)
    assert not is_readonly(cap(Mode.SINGLE_NODE_WRITER), False)


def test_locks_are_non_blocking_and_all_or_nothing() -> None:
    locks = VolumeLocks()
    with locks.acquire("a"):
        with pytest.raises(CsiError) as info, locks.acquire("b", "a"):
            pass
        assert info.value.code == grpc.StatusCode.ABORTED and "a is already in progress" in info.value.message
        with locks.acquire("b"):  # "b" was not left held by the failed attempt
            pass
    with locks.acquire("a", "b"):
        pass
