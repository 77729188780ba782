"""Bindings of cext/table/ (the CPython-API module ``mountkit._mountkit_table``): mountinfo text parsed,
or read and parsed in one pass, into the compact table, and its entries built as objects in C."""

from __future__ import annotations

from typing import TypeVar

from mountkit._mountkit_table import CHUNK as _CHUNK
from mountkit._mountkit_table import entries as _entries
from mountkit._mountkit_table import parse as _parse
from mountkit._mountkit_table import read as _read

#: bytes read(2) asks for at a time when reading mountinfo (cext/table/mountinfo_read.c says why)
MI_CHUNK: int = _CHUNK


def _parsed(parts: tuple[bytes, bytes, int]) -> tuple[bytes, memoryview, int]:
    buf, cols, n = parts
    return buf, memoryview(cols).cast("I"), n


def mountinfo_parse(text: bytes) -> tuple[bytes, memoryview, int]:
    """Parse mountinfo text into (unescaped field buffer, uint32 columns, entry count).

    Raises ValueError naming the 1-based line number and the field that could not be read (never
    the line itself: super options may carry what a mount was given).
    """
    return _parsed(_parse(text))


def mountinfo_read(fd: int, chunk: int = MI_CHUNK) -> tuple[bytes, memoryview, int]:
    """:func:`mountinfo_parse` of the text read from ``fd`` to its end, parsed as it is read.

    Reads ``chunk`` bytes at a time (a longer line grows the buffer) with the GIL released, and
    parses into the buffers returned, so the text is never held whole; OSError from read(2).
    """
    return _parsed(_read(fd, chunk))


_Record = TypeVar("_Record")


def mountinfo_entries(
    buf: bytes, cols: memoryview, start: int, stop: int, cls: type[_Record]
) -> list[_Record]:
    """Entries ``[start, stop)`` of a table in :func:`mountinfo_parse`'s layout as ``cls`` objects, in C.

    ``cls`` is a slots class with an object slot per mountinfo field (table.MountInfo); paths are
    decoded like :func:`os.fsdecode`, list fields are tuples (cext/table/entries.c).
    """
    return _entries(buf, cols, start, stop, cls)  # type: ignore[no-any-return]
