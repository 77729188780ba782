"""MountInfo records and mountinfo text rendered the way the kernel escapes it, for tests of the table
(tests/unit/mountkit/test_table.py) and of the watcher's diff (tests/unit/mountkit/test_watcher.py)."""

from __future__ import annotations

import os

from hypothesis import strategies as st

from mountkit.table import MountInfo


def mangle(raw: bytes, extra: bytes = b"") -> bytes:
    """Octal-escape as fs/seq_file.c:seq_escape does (space, tab, newline, backslash, + extra)."""
    return b"".join(b"\\%03o" % c if c in b" \t\n\\" + extra else bytes([c]) for c in raw)


def render(e: MountInfo) -> bytes:
    """One mountinfo line as fs/proc_namespace.c:show_mountinfo writes it."""

    def path(s: str) -> bytes:
        return mangle(os.fsencode(s))

    def opts(items: tuple[str, ...]) -> bytes:
        return b",".join(mangle(os.fsencode(i), b",") for i in items)

    optional = b"".join(os.fsencode(f) + b" " for f in e.optional_fields)
    return b"%d %d %d:%d %s %s %s %s- %s %s %s\n" % (
        e.mount_id,
        e.parent_id,
        e.major,
        e.minor,
        path(e.root),
        path(e.mount_point),
        opts(e.options),
        optional,
        path(e.fs_type),
        path(e.source),
        opts(e.super_options),
    )


# Names: any bytes but NUL (and "/" inside one component), decoded as the kernel's would be.
component = st.binary(min_size=1, max_size=12).filter(lambda b: b"\0" not in b and b"/" not in b)
awkward = st.sampled_from([b" ", b"\t", b"\n", b"\\", b"\\040", "ü".encode(), b"\xff\xfe", b"-", b","])
name = st.lists(st.one_of(component, awkward), min_size=1, max_size=4).map(b"".join)
paths = st.lists(name, min_size=0, max_size=4).map(lambda parts: os.fsdecode(b"/" + b"/".join(parts)))
word = st.lists(st.one_of(component, awkward), min_size=1, max_size=3).map(lambda p: os.fsdecode(b"".join(p)))
optional = st.lists(
    st.one_of(
        st.integers(1, 10**6).map("shared:{}".format),
        st.integers(1, 10**6).map("master:{}".format),
        st.integers(1, 10**6).map("propagate_from:{}".format),
        st.just("unbindable"),
    ),
    max_size=4,
).map(tuple)
uint32 = st.integers(0, 2**32 - 1)
entries = st.builds(
    MountInfo,
    mount_id=uint32,
    parent_id=uint32,
    major=st.integers(0, 4095),
    minor=st.integers(0, 2**20 - 1),
    root=paths,
    mount_point=paths,
    options=st.lists(word, min_size=1, max_size=4).map(tuple),
    optional_fields=optional,
    fs_type=word,
    source=word,
    super_options=st.lists(word, max_size=4).map(tuple),
)
