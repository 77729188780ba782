"""What :mod:`mountkit.table` uses of :mod:`mountkit._sys`, in pure Python, for when the compiled
extension is missing.

:class:`~mountkit.fake.FakeMounter` builds its tables from entries and must work where mountkit's
extension was never built (a consumer's unit tests need no compiler): this gives the table the
column layout of ``cext/common/mountinfo.h`` and the two scans of ``cext/common/mountinfo.c``
(``tests/unit/mountkit/test_table.py`` checks both against the extension).  Reading the kernel's table
(mountinfo parsing, listmount/statmount, statx) needs the extension and raises UnsupportedError
here.
"""

from __future__ import annotations

import errno
from typing import NoReturn

from mountkit.errors import UnsupportedError

#: uint32 columns per entry, and the indices table.py uses (see cext/common/mountinfo.h)
MI_STRIDE = 12
MI_PARENT_ID = 1
MI_MINOR = 3
MI_ROOT = 4
MI_MOUNT_POINT = 5
MI_FS_TYPE = 8
MI_SOURCE = 9


def supported(op: str) -> bool:
    """Nothing that needs a syscall is supported without the extension."""
    return False


def _missing(op: str) -> NoReturn:
    raise UnsupportedError(errno.ENOSYS, op, None, None, "mountkit's compiled extension is not built")


def mountinfo_parse(text: bytes) -> NoReturn:
    _missing("mountinfo parse")


def mountinfo_read(*args: object) -> NoReturn:
    _missing("mountinfo read")


def statmount_table(*args: object, **kwargs: object) -> NoReturn:
    _missing("statmount")


def statmount_records(*args: object) -> NoReturn:
    _missing("statmount")


def statx(*args: object) -> NoReturn:
    _missing("statx")


#: no C builder of whole entries: table.py builds them in Python
mountinfo_entries = None


def mountinfo_select(buf: bytes, cols: memoryview, n: int, col: int, needle: bytes, under: bool) -> list[int]:
    """Indices of entries whose text column ``col`` is ``needle`` (or, ``under``, a path below it)."""
    hits = []
    for i in range(n):
        k = i * MI_STRIDE + col
        field = buf[cols[k] : cols[k + 1]]
        if under:
            match = field.startswith(needle) and (
                len(field) == len(needle)
                or field[len(needle) : len(needle) + 1] == b"/"
                or needle.endswith(b"/")
            )
        else:
            match = field == needle
        if match:
            hits.append(i)
    return hits


def mountinfo_select_int(cols: memoryview, n: int, col: int, value: int) -> list[int]:
    """Indices of entries whose number column ``col`` equals ``value``."""
    return [i for i in range(n) if cols[i * MI_STRIDE + col] == value]
