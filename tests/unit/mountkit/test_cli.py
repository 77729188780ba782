"""The ``mountkit`` command against a FakeMounter: output formats, exit codes, errors."""

from __future__ import annotations

import json

import pytest

from mountkit import FakeMounter
from mountkit.cli import main


def _fake() -> FakeMounter:
    fake = FakeMounter()
    fake.mount("tmpfs", "/staging", "tmpfs", "size=1m")
    fake.bind("/staging", "/pods/a/mount", readonly=True)
    fake.bind("/staging", "/pods/b/mount")
    return fake


def test_list_is_an_aligned_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"], mounter=_fake()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TARGET", "SOURCE", "FSTYPE", "OPTIONS"]
    assert lines[2].split() == ["/pods/a/mount", "tmpfs", "tmpfs", "ro"]
    assert len({line.index("tmpfs") for line in lines[1:]}) == 1  # the SOURCE column lines up


def test_list_json_with_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json", "--target", "/pods/a/mount"], mounter=_fake()) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["mount_point"] == "/pods/a/mount" and entry["readonly"] is True
    assert main(["list", "--json", "-t", "nfs,ext4"], mounter=_fake()) == 1  # findmnt: nothing found
    assert json.loads(capsys.readouterr().out) == []  # still parseable
    assert main(["list", "--json", "--source", "tmpfs"], mounter=_fake()) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_verbs_reach_the_mounter() -> None:
    fake = FakeMounter()
    assert main(["mount", "tmpfs", "/t", "-t", "tmpfs", "-o", "size=1m,nosuid"], mounter=fake) == 0
    assert main(["bind", "/t", "/u", "--ro", "--recursive"], mounter=fake) == 0
    assert main(["umount", "/u", "--lazy"], mounter=fake) == 0
    assert [c[0] for c in fake.calls] == ["mount", "bind", "unmount"]
    assert fake.calls[1] == ("bind", "/t", "/u", True, True, "")
    assert fake.calls[2] == ("unmount", "/u", True, False, False)


def test_propagation_and_tree_verbs_reach_the_mounter() -> None:
    fake = FakeMounter()
    fake.mount("tmpfs", "/t", "tmpfs")
    fake.mount("tmpfs", "/t/sub", "tmpfs")
    assert main(["make-shared", "/t", "--recursive"], mounter=fake) == 0
    assert main(["make-slave", "/t/sub"], mounter=fake) == 0
    assert main(["make-unbindable", "/t/sub"], mounter=fake) == 0
    assert main(["make-private", "/t"], mounter=fake) == 0
    assert main(["rbind", "/t", "/r", "--ro"], mounter=fake) == 0
    assert main(["move", "/r", "/m"], mounter=fake) == 0
    assert main(["umount", "/m", "--recursive"], mounter=fake) == 0
    assert fake.calls[2:] == [
        ("make_shared", "/t", True),
        ("make_slave", "/t/sub", False),
        ("make_unbindable", "/t/sub", False),
        ("make_private", "/t", False),
        ("bind", "/t", "/r", True, True, ""),
        ("move", "/r", "/m"),
        ("unmount", "/m", False, False, True),
    ]
    assert [e.mount_point for e in fake.list()] == ["/t", "/t/sub"]


def test_propagation_verb_on_a_plain_directory_fails_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-private", "/nowhere"], mounter=FakeMounter()) == 2
    assert "not a mount point" in capsys.readouterr().err


def test_is_mountpoint_answers_with_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake()
    assert main(["is-mountpoint", "/pods/a/mount"], mounter=fake) == 0
    assert main(["is-mountpoint", "/pods"], mounter=fake) == 1
    assert "/pods is not a mount point" in capsys.readouterr().out


def test_refs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refs", "/pods/a/mount"], mounter=_fake()) == 0
    assert capsys.readouterr().out.split() == ["/staging", "/pods/b/mount"]  # same fs, same root


def test_errors_are_one_line_on_stderr_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake()
    assert main(["mount", "other", "/staging", "-t", "tmpfs"], mounter=fake) == 2
    err = capsys.readouterr().err
    assert err.startswith("mountkit: mount other -> /staging: ") and "EBUSY" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["mount", "tmpfs", "/x", "-t", "tmpfs", "-o", "a,,b"], mounter=fake) == 2


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["mount", "tmpfs"])
    assert info.value.code == 2


def test_a_filter_that_matches_nothing_exits_1_and_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake()
    for argv in (["--target", "/nonexistent"], ["-t", "nfs"], ["--source", "nowhere"]):
        assert main(["list", *argv], mounter=fake) == 1  # as findmnt with no match
        assert capsys.readouterr() == ("", "")
    assert main(["list"], mounter=FakeMounter()) == 1  # an empty table: nothing found either
    assert main(["list", "--target", "/staging"], mounter=fake) == 0


def test_refs_with_nothing_to_show_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake()
    fake.mount("tmpfs", "/alone", "tmpfs")
    assert main(["refs", "/nonexistent"], mounter=fake) == 1
    assert main(["refs", "/alone"], mounter=fake) == 1
    assert capsys.readouterr() == ("", "")


def test_remount_and_unmount_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake()
    assert main(["remount", "/staging", "-o", "ro"], mounter=fake) == 0
    assert [e.readonly for e in fake.list() if e.mount_point == "/staging"] == [True]
    assert main(["unmount", "/pods/b/mount"], mounter=fake) == 0  # umount's other name
    assert fake.calls[-1][:2] == ("unmount", "/pods/b/mount")
    assert main(["remount", "/pods", "-o", "ro"], mounter=fake) == 2
    assert (
        capsys.readouterr().err == "mountkit: remount /pods: Invalid argument (EINVAL): not a mount point\n"
    )
    fake.mount("tmpfs", "/staging/sub", "tmpfs")
    assert main(["umount", "/staging"], mounter=fake) == 2  # the mount below keeps it busy
    assert capsys.readouterr().err.startswith("mountkit: unmount /staging: Device or resource busy (EBUSY)")
