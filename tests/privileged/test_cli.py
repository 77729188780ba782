"""The ``mountkit`` command inside a private namespace, checked against the mount table."""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest

from mountkit.cli import main
from mountkit.table import MountTable

pytestmark = pytest.mark.privileged


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _session(scratch: str) -> dict[str, object]:
    t, src, b = (os.path.join(scratch, n) for n in ("t", "src", "b"))
    for d in (t, src, b):
        os.mkdir(d)
    r: dict[str, object] = {}
    r["mount"] = _run("mount", "mk-cli", t, "-t", "tmpfs", "-o", "size=1m,nosuid")
    e = MountTable.read().find(t)
    r["mounted"] = e is not None and (e.source, e.fs_type, "nosuid" in e.options)
    r["bind"] = _run("bind", src, b, "--ro")
    e = MountTable.read().find(b)
    r["bind_ro"] = e is not None and e.readonly
    r["is_yes"] = _run("is-mountpoint", b)[0]
    r["is_no"] = _run("is-mountpoint", src)[0]
    code, out, _ = _run("list", "--json", "-t", "tmpfs", "--target", t)
    r["list_json"] = code, [x["source"] for x in json.loads(out)]
    code, out, _ = _run("list", "--source", "mk-cli")
    r["list_text"] = code, out.splitlines()
    r["conflict"] = _run("mount", "other", t, "-t", "tmpfs")
    r["umount"] = [_run("umount", p)[0] for p in (b, b, t)]
    r["gone"] = MountTable.read().find(b) is None and MountTable.read().find(t) is None
    return r


def test_cli_session(in_ns) -> None:  # type: ignore[no-untyped-def]
    r = in_ns(_session)
    assert r["mount"] == (0, "", "")
    assert r["mounted"] == ("mk-cli", "tmpfs", True)
    assert r["bind"][0] == 0 and r["bind_ro"] is True
    assert (r["is_yes"], r["is_no"]) == (0, 1)
    assert r["list_json"] == (0, ["mk-cli"])
    code, lines = r["list_text"]
    assert code == 0 and lines[0].split()[:3] == ["TARGET", "SOURCE", "FSTYPE"] and len(lines) == 2
    code, out, err = r["conflict"]
    assert code == 2 and out == "" and err.startswith("mountkit: mount ") and "Traceback" not in err
    assert r["umount"] == [0, 0, 0] and r["gone"]
