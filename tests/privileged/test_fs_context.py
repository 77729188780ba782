"""New filesystems through fsopen/fsconfig/fsmount, and remount through fspick, on the real kernel."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest

from mountkit import _sys
from mountkit.errors import MountError
from mountkit.flags import FSOPEN_CLOEXEC
from mountkit.fscontext import _configure
from mountkit.mounter import Mounter, is_mountpoint
from mountkit.table import MountTable

pytestmark = pytest.mark.privileged


def _err(fn: Any, *args: Any, **kw: Any) -> str:
    try:
        fn(*args, **kw)
    except MountError as exc:
        return f"{type(exc).__name__} {errno.errorcode.get(exc.errno or 0)} {exc}"
    return ""


def _setup(scratch: str, missing: str | None) -> tuple[Mounter, str]:
    """A Mounter (on a kernel that lacks ``missing``, when given) and an empty directory ``t``."""
    if missing:
        _sys.mark_unsupported(missing)
    t = os.path.join(scratch, "t")
    os.mkdir(t)
    return Mounter(), t


def _refusals(scratch: str, legacy: bool) -> dict[str, Any]:
    m, t = _setup(scratch, "fsopen" if legacy else None)
    out = {
        "bogus": _err(m.mount, "mk", t, "tmpfs", ["size=1m", "bogus=1"]),
        "secret": _err(m.mount, "mk", t, "tmpfs", (), ["size=SECRET"]),
        "missing": _err(m.mount, "mk", os.path.join(scratch, "missing"), "tmpfs", ["size=1m"]),
        "mounted": is_mountpoint(t),
    }
    m.mount("mk", t, "tmpfs", ["size=1m", "mode=700"])
    e = MountTable.read().find(t)
    out["ok"] = e is not None and "size=1024k" in e.super_options and "mode=700" in e.super_options
    return out


@pytest.mark.parametrize("legacy", [False, True], ids=["fsopen", "mount2-fallback"])
def test_a_refused_option_carries_the_kernels_message(in_ns: Any, legacy: bool) -> None:
    r = in_ns(_refusals, legacy)
    assert r["mounted"] is False and r["ok"] is True
    assert r["bogus"].startswith("MountError EINVAL mount ") and "/t" in r["bogus"]
    assert "SECRET" not in r["secret"] and "EINVAL" in r["secret"]
    assert "ENOENT" in r["missing"]
    if legacy:  # mount(2) has only the errno, and the error says that path was taken
        assert "mount(2) with a data string (this kernel has no fsopen)" in r["bogus"]
    else:
        assert "fsconfig (new mount API): key 'bogus'; tmpfs: Unknown parameter 'bogus'" in r["bogus"]
        assert "tmpfs: Bad value for 'size'" in r["secret"]


def _comma_is_one_value(scratch: str) -> tuple[str, bool]:
    """A comma inside a value reaches the kernel as part of that one value: it cannot start an option."""
    fd = _sys.fsopen("tmpfs", FSOPEN_CLOEXEC)
    try:
        _configure(fd, ["mode=700,size=1m"])
    except MountError as exc:
        return str(exc), False
    finally:
        os.close(fd)
    return "", True


def test_a_comma_cannot_smuggle_in_a_second_option(in_ns: Any) -> None:
    text, accepted = in_ns(_comma_is_one_value)
    assert not accepted and "key 'mode'" in text and "tmpfs: Bad value for 'mode'" in text


def _remount_keeps_superblock_flags(scratch: str, legacy: bool) -> dict[str, Any]:
    m, t = _setup(scratch, "fspick" if legacy else None)
    m.mount("mk", t, "tmpfs", ["size=1m", "sync", "nosuid"])
    before = MountTable.read().find(t)
    m.remount(t, "size=2m")
    after = MountTable.read().find(t)
    assert before is not None and after is not None
    return {
        "before": before.super_options,
        "after": after.super_options,
        "nosuid": "nosuid" in after.options,
        "bad": _err(m.remount, t, "size=lots"),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["fspick", "ms-remount"])
def test_remount_with_filesystem_options(in_ns: Any, legacy: bool) -> None:
    r = in_ns(_remount_keeps_superblock_flags, legacy)
    assert "sync" in r["before"] and "size=1024k" in r["before"]
    assert "size=2048k" in r["after"] and r["nosuid"]
    assert "EINVAL" in r["bad"] and r["bad"].startswith("MountError EINVAL remount ")
    if legacy:  # MS_REMOUNT restates the superblock flags: the ones it is not told about are lost
        assert "sync" not in r["after"]
        assert "mount(2) MS_REMOUNT with a data string (this kernel has no fspick)" in r["bad"]
    else:  # fspick + RECONFIGURE changes what it is given, nothing else
        assert "sync" in r["after"]
        assert "fsconfig (new mount API): key 'size'; tmpfs: Bad value for 'size'" in r["bad"]
