"""The poll backend's diff: only the mountinfo lines that differ are parsed, and their events are
those of the diff of the whole tables, in the same order."""

from __future__ import annotations

import dataclasses
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from mountkit import watcher
from mountkit.table import MountInfo
from mountkit.watcher import _by_id, _changed_lines, _diff
from tests.support.tableutil import entries, paths, render


def _text(records: list[MountInfo]) -> bytes:
    return b"".join(render(e) for e in records)


@given(st.lists(entries, max_size=8, unique_by=lambda e: e.mount_id), st.data())
def test_line_diff_is_the_whole_table_diff(old: list[MountInfo], data: st.DataObject) -> None:
    new = []
    for e in old:
        fate = data.draw(st.sampled_from(["keep", "unmount", "remount", "move", "reuse"]))
        if fate == "keep":
            new.append(e)
        elif fate == "remount":
            new.append(dataclasses.replace(e, options=("ro", *e.options)))
        elif fate == "move":
            new.append(dataclasses.replace(e, mount_point=data.draw(paths)))
        elif fate == "reuse":  # the id of a gone mount, given to another (or the same) filesystem
            new.append(dataclasses.replace(data.draw(entries), mount_id=e.mount_id))
    ids = {e.mount_id for e in new}
    new += [
        e
        for e in data.draw(st.lists(entries, max_size=4, unique_by=lambda e: e.mount_id))
        if e.mount_id not in ids
    ]
    if data.draw(st.booleans()):
        new = data.draw(st.permutations(new))
    old_text, new_text = _text(old), _text(new)
    # blocks of a few bytes, so that the texts span several
    with mock.patch.object(watcher, "_BLOCK", data.draw(st.sampled_from([1, 7, 64, watcher._BLOCK]))):
        gone, came = _changed_lines(old_text, new_text)
    old_lines, new_lines = old_text.split(b"\n")[:-1], new_text.split(b"\n")[:-1]  # a "\r" ends no line
    assert gone == [line for line in old_lines if line not in new_lines]
    assert came == [line for line in new_lines if line not in old_lines]
    by_id = {e.mount_id: e for e in old}, {e.mount_id: e for e in new}
    assert _diff(_by_id(gone), _by_id(came), unique=False) == _diff(*by_id, unique=False)
