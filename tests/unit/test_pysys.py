"""mountkit._pysys (the table scans used without the compiled extension) agrees with cext/mountinfo.c."""

from __future__ import annotations

import pytest

from mountkit import _pysys, _sys

# a stack, a bind seen twice, a sibling whose name extends another's (/pods/ab), nested mounts
TREE = b"""\
10 1 8:1 / / rw - ext4 /dev/sda1 rw
20 10 8:1 /srv/data /pods/a rw - ext4 /dev/sda1 rw
21 10 8:1 /srv/data /pods/b rw - ext4 /dev/sda1 rw
22 10 8:1 /other /pods/ab rw - ext4 /dev/sda1 rw
23 20 0:40 / /pods/a/sub rw - tmpfs tmp rw
31 30 0:42 / /stack rw - tmpfs upper rw
30 10 0:41 / /stack rw - tmpfs lower rw
"""
NEEDLES = [b"", b"/", b"/pods", b"/pods/", b"/pods/a", b"/pods/a/", b"/po", b"/stack", b"/srv/data", b"tmpfs", b"tmp"]


def test_the_column_layout_is_the_extensions() -> None:
    for name in ("MI_STRIDE", "MI_PARENT_ID", "MI_ROOT", "MI_MOUNT_POINT", "MI_FS_TYPE", "MI_SOURCE"):
        assert getattr(_pysys, name) == getattr(_sys, name), name


@pytest.mark.parametrize("col", ["MI_ROOT", "MI_MOUNT_POINT", "MI_FS_TYPE", "MI_SOURCE"])
@pytest.mark.parametrize("under", [False, True])
def test_text_scans_agree(col: str, under: bool) -> None:
    buf, cols, n = _sys.mountinfo_parse(TREE)
    index = getattr(_sys, col)
    for needle in NEEDLES:
        expected = _sys.mountinfo_select(buf, cols, n, index, needle, under)
        assert _pysys.mountinfo_select(buf, cols, n, index, needle, under) == expected, needle


def test_number_scans_agree() -> None:
    _, cols, n = _sys.mountinfo_parse(TREE)
    for value in (1, 10, 20, 30, 99):
        assert _pysys.mountinfo_select_int(cols, n, _sys.MI_PARENT_ID, value) == _sys.mountinfo_select_int(
            cols, n, _sys.MI_PARENT_ID, value
        )
