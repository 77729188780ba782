"""MountTable parsing and lookups against mountinfo text rendered the way the kernel escapes it."""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import errno
import gc
import os
import pickle
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mountkit import _sys
from mountkit import table as table_module
from mountkit.errors import InvalidOptionError, MountError
from mountkit.flags import MOUNT_ATTR, MS, SB_LAZYTIME, SB_RDONLY
from mountkit.table import MountInfo, MountTable, find_mount, from_statmount
from tests.support.tableutil import entries, mangle, name, render


@given(st.lists(entries, max_size=8))
def test_kernel_rendering_parses_back_equal(records: list[MountInfo]) -> None:
    text = b"".join(render(e) for e in records)
    assert list(MountTable.parse(text)) == records
    assert list(MountTable.parse(os.fsdecode(text))) == records


@given(st.lists(entries, max_size=8))
def test_table_built_from_entries_gives_them_back(records: list[MountInfo]) -> None:
    table = MountTable(records)
    assert len(table) == len(records)
    assert list(table) == records
    assert table[1:3] == records[1:3]
    if records:
        assert table[-1] == records[-1]


@given(st.lists(entries, max_size=8))
def test_c_built_entries_equal_the_python_built_ones(records: list[MountInfo]) -> None:
    """cext/table/entries.c against table.py's Python builder, field by field, value and type; every
    record twice, so the C cache of repeated words serves the second copy."""
    text = b"".join(render(e) for e in records * 2)
    table = MountTable.parse(text)
    built, python = list(table), list(table._py_iter())
    assert len(built) == len(python) == 2 * len(records)
    for c, py in zip(built, python):
        assert type(c) is MountInfo
        for f in dataclasses.fields(MountInfo):
            assert getattr(c, f.name) == getattr(py, f.name), f.name
            assert type(getattr(c, f.name)) is type(getattr(py, f.name)), f.name
            if isinstance(getattr(c, f.name), tuple):
                assert all(type(item) is str for item in getattr(c, f.name))


def test_iteration_goes_chunk_by_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_module, "_ENTRY_BATCH", 2)
    table = MountTable.parse(LINES)
    assert list(table) == list(table._py_iter()) and len(table) == 5
    assert next(iter(table)).mount_point == "/proc"


def test_c_builder_refuses_what_it_cannot_build() -> None:
    buf, cols, n = _sys.mountinfo_parse(LINES)

    class Plain:
        pass

    with pytest.raises(TypeError, match="not an object slot"):
        _sys.mountinfo_entries(buf, cols, 0, n, Plain)
    with pytest.raises(IndexError):
        _sys.mountinfo_entries(buf, cols, 0, n + 1, MountInfo)
    with pytest.raises(ValueError, match="outside the buffer"):
        _sys.mountinfo_entries(buf[:-1], cols, 0, n, MountInfo)
    assert _sys.mountinfo_entries(buf, cols, 1, 1, MountInfo) == []


def test_listed_entries_are_frozen_mountinfo_records() -> None:
    text = b"1 0 0:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:2 / /a rw,nosuid shared:1 - tmpfs tmpfs rw\n"
    for entry in [*MountTable.parse(text), MountTable.parse(text)[1]]:
        assert type(entry) is MountInfo
        with pytest.raises(dataclasses.FrozenInstanceError):
            entry.source = "x"  # type: ignore[misc]
        assert hash(entry) == hash(dataclasses.replace(entry))
    assert list(MountTable.parse(text))[1].options == ("rw", "nosuid")


def test_built_entries_stay_out_of_the_cycle_collector() -> None:
    """Only ints, strs and tuples of strs: no cycle possible, so nothing for the GC to traverse."""
    for entry in MountTable.parse(LINES):
        assert not gc.is_tracked(entry)
        assert not any(
            gc.is_tracked(items) for items in (entry.options, entry.optional_fields, entry.super_options)
        )


@given(name)
def test_non_utf8_names_round_trip_through_fsencode(raw: bytes) -> None:
    line = b"1 0 0:1 / /mnt/" + mangle(raw) + b" rw - tmpfs tmpfs rw\n"
    (entry,) = MountTable.parse(line)
    assert os.fsencode(entry.mount_point) == b"/mnt/" + raw


LINES = (
    b"22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw\n"
    b"25 1 8:1 /data /srv/a\\040b ro,relatime master:1 propagate_from:2 unbindable - ext4 /dev/sda1 "
    b"rw,errors=remount-ro\n"
    b"26 1 0:50 / /home/u/remote rw,nosuid,nodev - fuse.sshfs u@host:/x\\134y rw,user_id=0,group_id=0\n"
    b"27 1 0:51 / /empty rw - tmpfs none\n"
    b"28 1 0:52 / /empty2 rw - tmpfs none \n"
)


def test_optional_fields_subtype_and_empty_super_options() -> None:
    t = MountTable.parse(LINES)
    assert [e.mount_point for e in t] == ["/proc", "/srv/a b", "/home/u/remote", "/empty", "/empty2"]
    assert t[0].optional_fields == ("shared:5",) and t[0].options[-1] == "relatime"
    assert t[1].optional_fields == ("master:1", "propagate_from:2", "unbindable")
    assert t[1].readonly and not t[0].readonly
    assert t[1].super_options == ("rw", "errors=remount-ro")
    assert t[2].optional_fields == () and t[2].fs_type == "fuse.sshfs"
    assert t[2].source == "u@host:/x\\y"
    assert t[3].super_options == () and t[3].source == "none"
    assert t[4].super_options == ()


def test_escapes_in_every_field_and_any_octal() -> None:
    line = b"1 0 0:1 /r\\011t /m\\012p a\\054b,c - t\\040y s\\101 x\\054y,z\\134\n"
    (e,) = MountTable.parse(line)
    assert (e.root, e.mount_point, e.fs_type, e.source) == ("/r\tt", "/m\np", "t y", "sA")
    assert e.options == ("a,b", "c") and e.super_options == ("x,y", "z\\")


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (b"x 1 0:1 / / rw - t s rw\n", 1, "mount ID"),
        (LINES + b"7 1 01 / / rw - t s rw\n", 6, "major:minor"),
        (b"1 0 0:1 / /a rw shared:1 t s rw\n", 1, 'optional fields ended by "-"'),
        (b"1 0 0:1 / /a rw -\n", 1, "filesystem type"),
        (b"1 0 0:1 / /a rw - tmpfs\n", 1, "source"),
        (b"\n1 0 0:1 /\n", 2, "mount point"),
        (b"1 0 0:1 / /a rw - t s rw extra\n", 1, "super options"),
        (b"99999999999 0 0:1 / /a rw - t s rw\n", 1, "mount ID"),
    ],
)
def test_malformed_line_is_named(text: bytes, line: int, field: str) -> None:
    with pytest.raises(ValueError, match=rf"mountinfo line {line}: cannot read the {field}"):
        MountTable.parse(text)


def test_no_trailing_newline_and_empty_input() -> None:
    assert len(MountTable.parse(b"")) == 0
    assert MountTable.parse(b"1 0 0:1 / / rw - t s rw")[0].super_options == ("rw",)


# Mount ids: 10 "/" ; a bind of /srv/data at /pods/a and /pods/b; /stack has two mounts, the upper
# one (31) listed first as after MOVE_MOUNT_BENEATH; /pods/ab must not count as under /pods/a.
TREE = b"""\
10 1 8:1 / / rw - ext4 /dev/sda1 rw
20 10 8:1 /srv/data /pods/a rw - ext4 /dev/sda1 rw
21 10 8:1 /srv/data /pods/b rw - ext4 /dev/sda1 rw
22 10 8:1 /other /pods/ab rw - ext4 /dev/sda1 rw
23 20 0:40 / /pods/a/sub rw - tmpfs tmp rw
31 30 0:42 / /stack rw - tmpfs upper rw
30 10 0:41 / /stack rw - tmpfs lower rw
"""


def test_find_all_orders_a_stack_bottom_first_by_parent_links() -> None:
    t = MountTable.parse(TREE)
    assert [e.source for e in t.find_all("/stack")] == ["lower", "upper"]
    assert t.find("/stack/") is not None and t.find("/stack/").source == "upper"  # type: ignore[union-attr]
    assert t.find("/stack", source="lower").mount_id == 30  # type: ignore[union-attr]
    assert t.find("/nowhere") is None


def test_find_by_source_or_type_is_the_last_match() -> None:
    t = MountTable.parse(TREE)
    assert t.find(source="/dev/sda1").mount_id == 22  # type: ignore[union-attr]
    assert t.find(fs_type="tmpfs", source="tmp").mount_id == 23  # type: ignore[union-attr]
    assert t.find(fs_type="nfs") is None
    with pytest.raises(TypeError):
        t.find()


def test_children_under_and_refs() -> None:
    t = MountTable.parse(TREE)
    assert [e.mount_id for e in t.children(t[0])] == [20, 21, 22, 30]
    assert [e.mount_point for e in t.under("/pods/a")] == ["/pods/a", "/pods/a/sub"]
    assert len(t.under("/")) == len(t)
    assert t.refs("/pods/a") == ["/pods/b"]
    assert t.refs("/pods/b/") == ["/pods/a"]
    assert t.refs("/nowhere") == []


def test_a_mount_that_is_its_own_parent_is_not_its_child() -> None:
    t = MountTable.parse(b"1 1 0:1 / / rw - rootfs rootfs rw\n2 1 0:2 / /x rw - t s rw\n")
    assert [e.mount_id for e in t.children(t[0])] == [2]


STATMOUNT = _sys.StatMount(
    mask=0,
    sb_dev_major=0,
    sb_dev_minor=44,
    sb_flags=SB_RDONLY | SB_LAZYTIME,
    mnt_id=1 << 32,
    mnt_parent_id=(1 << 32) - 1,
    mnt_id_old=71,
    mnt_parent_id_old=63,
    mnt_attr=MOUNT_ATTR.NOSUID | MOUNT_ATTR.NOATIME | MOUNT_ATTR.NODIRATIME | MOUNT_ATTR.NOSYMFOLLOW,
    mnt_propagation=MS.SHARED | MS.SLAVE,
    mnt_peer_group=3,
    mnt_master=4,
    propagate_from=5,
    fs_type=b"fuse",
    fs_subtype=b"sshfs",
    mnt_root=b"/a b",
    mnt_point=b"/m\xff",
    mnt_opts=b"user_id=0,x=a\\054b",
    sb_source=None,
)


def test_statmount_fields_become_what_mountinfo_shows() -> None:
    e = from_statmount(STATMOUNT)
    assert (e.mount_id, e.parent_id, e.major, e.minor) == (71, 63, 0, 44)
    assert e.options == ("rw", "nosuid", "noatime", "nodiratime", "nosymfollow")
    assert e.optional_fields == ("shared:3", "master:4", "propagate_from:5")
    assert (e.fs_type, e.source, e.root, os.fsencode(e.mount_point)) == (
        "fuse.sshfs",
        "none",
        "/a b",
        b"/m\xff",
    )
    assert e.super_options == ("ro", "lazytime", "user_id=0", "x=a,b")


def test_statmount_atime_words_and_no_fs_options() -> None:
    relatime = from_statmount(
        STATMOUNT._replace(mnt_attr=MOUNT_ATTR.RDONLY, mnt_opts=None, mnt_propagation=0)
    )
    assert relatime.options == ("ro", "relatime") and relatime.optional_fields == ()
    assert relatime.super_options == ("ro", "lazytime")
    strict = from_statmount(
        STATMOUNT._replace(mnt_attr=MOUNT_ATTR.STRICTATIME, mnt_propagation=MS.SLAVE, propagate_from=4)
    )
    assert strict.options == ("rw",) and strict.optional_fields == ("master:4",)


def test_statmount_records_past_the_first_buffers() -> None:
    """More entries and text than the C table starts with (64 entries, 64 KiB): it grows, nothing moves."""
    records = [STATMOUNT._replace(mnt_id_old=i, mnt_point=b"/p%05d/" % i + b"x" * 3000) for i in range(300)]
    table = MountTable._of(_sys.statmount_records(records))
    assert [e.mount_id for e in table] == list(range(300))
    assert [os.fsencode(e.mount_point) for e in table] == [r.mnt_point for r in records]
    assert {e.super_options for e in table} == {("ro", "lazytime", "user_id=0", "x=a,b")}


def test_threads_belong_to_the_statmount_backend() -> None:
    with pytest.raises(InvalidOptionError):
        MountTable.read(threads=2)
    with pytest.raises(InvalidOptionError):
        MountTable.read(backend="statmount", threads=0)


def test_read_and_find_mount_agree_on_this_process() -> None:
    table = MountTable.read()
    assert table.find("/") == find_mount("/")
    assert find_mount("/surely/not/a/mount/point") is None
    assert list(MountTable.read(os.getpid())) == list(table)


def test_an_unreadable_table_names_its_path() -> None:
    with pytest.raises(MountError, match="/proc/999999999/mountinfo") as exc:
        MountTable.read(999_999_999)
    assert exc.value.errno == errno.ENOENT


def test_a_table_pickles_and_copies() -> None:
    table = MountTable.parse(LINES)
    for other in (pickle.loads(pickle.dumps(table)), copy.copy(table), copy.deepcopy(table)):
        assert list(other) == list(table) and other.find("/srv/a b") == table.find("/srv/a b")


# --- MountTable.read parses the text as read(2) hands it over (cext/table/mountinfo_read.c) ----------


def read_in_chunks(text: bytes, chunk: int = _sys.MI_CHUNK) -> tuple[bytes, memoryview, int]:
    """``_sys.mountinfo_read`` of ``text`` from a memfd, a regular file: each read(2) fills ``chunk``."""
    fd = os.memfd_create("mountinfo", os.MFD_CLOEXEC)
    try:
        assert os.write(fd, text) == len(text)
        os.lseek(fd, 0, os.SEEK_SET)
        return _sys.mountinfo_read(fd, chunk)
    finally:
        os.close(fd)


def outcome(parse: Callable[[], object]) -> object:
    """What ``parse()`` returns, or the message of the ValueError it raises."""
    try:
        return parse()
    except ValueError as exc:
        return str(exc)


chunks = st.sampled_from([1, 2, 3, 7, 64, _sys.MI_CHUNK])


@given(st.lists(entries, max_size=8), chunks, st.booleans())
def test_reading_in_chunks_parses_like_the_whole_text(
    records: list[MountInfo], chunk: int, newline: bool
) -> None:
    text = b"".join(render(e) for e in records)
    text = text if newline else text.removesuffix(b"\n")
    assert read_in_chunks(text, chunk) == _sys.mountinfo_parse(text)


@given(st.lists(entries, min_size=1, max_size=4), st.data(), chunks)
def test_malformed_text_fails_alike_in_chunks(
    records: list[MountInfo], data: st.DataObject, chunk: int
) -> None:
    """A byte inserted anywhere: the chunked read raises the same error (same line, same field)."""
    text = b"".join(render(e) for e in records)
    at = data.draw(st.integers(0, len(text)))
    text = text[:at] + data.draw(st.sampled_from([b" ", b"\n", b"-", b"x", b"\\", b"\n\n"])) + text[at:]
    assert outcome(lambda: read_in_chunks(text, chunk)) == outcome(lambda: _sys.mountinfo_parse(text))


def test_lines_across_the_64k_boundary_and_longer_than_the_buffer() -> None:
    chunk = _sys.MI_CHUNK
    text = bytearray()
    while len(text) < chunk - 200:
        text += b"%d 1 0:1 / /p/%d rw - tmpfs tmpfs rw\n" % (len(text), len(text))
    head = b"9 1 0:1 / /a"
    pad = chunk - 2 - len(text) - len(head)  # the escape \040 split 2 + 2 across the boundary
    text += head + b"x" * pad + b"\\040b rw,\\054x - tmpfs tmpfs rw\n"
    assert text.index(b"\\040b") == chunk - 2
    text += b"10 1 0:1 /%s /long rw - tmpfs tmpfs rw\n" % (b"r" * 3 * chunk)
    text += b"11 1 0:1 / /last rw - tmpfs tmpfs rw"  # no newline at the end
    parts = read_in_chunks(bytes(text))
    assert parts == _sys.mountinfo_parse(bytes(text))
    table = MountTable._of(parts)
    a, long, last = table[-3:]
    assert a.mount_point == "/a" + "x" * pad + " b" and a.options == ("rw", ",x")
    assert long.root == "/" + "r" * 3 * chunk and long.mount_point == "/long"
    assert last.mount_point == "/last" and last.super_options == ("rw",)
    broken = bytes(text) + b"\n12 1 0:1 /\n"  # the last line, malformed
    lines = broken.count(b"\n")
    with pytest.raises(ValueError, match=rf"mountinfo line {lines}: cannot read the mount point"):
        read_in_chunks(broken)
    with pytest.raises(ValueError, match="chunk size must be positive"):
        read_in_chunks(broken, 0)


def test_a_read_waiting_for_text_lets_other_threads_run() -> None:
    """The GIL is released around read(2): the thread writing the text runs while the reader waits."""
    r, w = os.pipe()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            reading = pool.submit(_sys.mountinfo_read, r)
            for line in LINES.splitlines(keepends=True):
                os.write(w, line[:9])
                os.write(w, line[9:])
        finally:
            os.close(w)
        try:
            assert reading.result(timeout=30) == _sys.mountinfo_parse(LINES)
        finally:
            os.close(r)
