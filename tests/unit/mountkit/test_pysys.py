"""mountkit._pysys (the table scans used without the compiled extension) agrees with
cext/common/mountinfo.c."""

from __future__ import annotations

import inspect
import re

import pytest

from mountkit import _pysys, _sys, table
from mountkit.table import MountTable


def _table() -> tuple[bytes, memoryview, int, list[bytes]]:
    """This process's table (nested mounts, names that extend others' like /sys and /sys/fs) and
    needles: every field value, with and without a trailing "/", and cut one byte short."""
    table = MountTable.read()
    buf, cols, n = table._buf, table._cols, table._n
    fields = {
        buf[cols[k] : cols[k + 1]]
        for i in range(n)
        for k in (i * _sys.MI_STRIDE + c for c in range(_sys.MI_ROOT, _sys.MI_SOURCE + 1))
    }
    needles = {b"", b"/"} | fields | {f + b"/" for f in fields} | {f[:-1] for f in fields}
    return buf, cols, n, sorted(needles)


def test_it_has_every_name_table_uses() -> None:
    """table.py falls back to _pysys as a whole: a name it starts using must be added there too."""
    used = set(re.findall(r"\b_sys\.([A-Za-z_]+)", inspect.getsource(table))) - {
        "StatMount"
    }  # annotations only
    assert used and not {name for name in used if not hasattr(_pysys, name)}


def test_the_column_layout_is_the_extensions() -> None:
    for name in (
        "MI_STRIDE",
        "MI_PARENT_ID",
        "MI_MINOR",
        "MI_ROOT",
        "MI_MOUNT_POINT",
        "MI_FS_TYPE",
        "MI_SOURCE",
    ):
        assert getattr(_pysys, name) == getattr(_sys, name), name


@pytest.mark.parametrize("col", ["MI_ROOT", "MI_MOUNT_POINT", "MI_FS_TYPE", "MI_SOURCE"])
@pytest.mark.parametrize("under", [False, True])
def test_text_scans_agree(col: str, under: bool) -> None:
    buf, cols, n, needles = _table()
    index = getattr(_sys, col)
    for needle in needles:
        expected = _sys.mountinfo_select(buf, cols, n, index, needle, under)
        assert _pysys.mountinfo_select(buf, cols, n, index, needle, under) == expected, needle


@pytest.mark.parametrize("col", ["MI_PARENT_ID", "MI_MINOR"])
def test_number_scans_agree(col: str) -> None:
    _, cols, n, _ = _table()
    index = getattr(_sys, col)
    for value in {cols[i * _sys.MI_STRIDE + index] for i in range(n)} | {0, 2**32 - 1}:
        assert _pysys.mountinfo_select_int(cols, n, index, value) == _sys.mountinfo_select_int(
            cols, n, index, value
        )
