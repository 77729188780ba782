"""open_beneath and the csi.node.paths checks refuse every way out of the root: symlinks, ``..``, escapes.

Plain directories and symlinks under a tmp dir; nothing is mounted.  The pre-openat2 fallback walk
runs in a subprocess with openat2 marked unsupported, so that global state never leaks here.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from csi.errors import CsiError
from csi.node import paths
from mountkit.errors import MountError
from mountkit.safepath import mkdir_beneath, open_beneath


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/{a/b/c, a/file, link -> a, a/out -> outside, a/tail -> b}, and outside/ next to root."""
    root = tmp_path / "root"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "file").write_text("not a directory")
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to("a")
    (root / "a" / "out").symlink_to(tmp_path / "outside")
    (root / "a" / "tail").symlink_to("b")
    return root


#: (path relative to the root, the errno open_beneath refuses it with, or 0 for success)
CASES = [
    ("a/b/c", 0),
    ("link/b", errno.ELOOP),  # a symlink component
    ("a/out", errno.ELOOP),  # a trailing symlink out of the root
    ("a/tail", errno.ELOOP),  # a trailing symlink, even one that stays inside
    ("a/../../outside", errno.EXDEV),  # ".." out of the root on the way
    ("../outside", errno.EXDEV),  # escaping the root
    ("a/missing", errno.ENOENT),
    ("a/file", 0),
]
#: the same with directory=True: a directory, or ENOTDIR (a symlink is still ELOOP)
DIRECTORY_CASES = [("a/b", 0), ("a/file", errno.ENOTDIR), ("a/tail", errno.ELOOP)]


def outcome(root: Path, rel: str, directory: bool = False) -> int:
    try:
        fd = open_beneath(root, rel, directory=directory)
    except MountError as exc:
        assert exc.operation == "open_beneath"
        return exc.errno or -1
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(root / rel))
    finally:
        os.close(fd)
    return 0


@pytest.mark.parametrize(("rel", "want"), CASES)
def test_open_beneath(tree: Path, rel: str, want: int) -> None:
    assert outcome(tree, rel) == want


@pytest.mark.parametrize(("rel", "want"), DIRECTORY_CASES)
def test_open_beneath_a_directory(tree: Path, rel: str, want: int) -> None:
    assert outcome(tree, rel, directory=True) == want


def test_open_beneath_refuses_absolute_paths_outside_the_root(tree: Path) -> None:
    assert outcome(tree, str(tree.parent / "outside")) == errno.EXDEV
    assert outcome(tree, str(tree)) == errno.EXDEV  # the root itself is not beneath it
    assert outcome(tree, str(tree / "a" / "b")) == 0


def test_open_beneath_of_an_absolute_path_spelled_through_the_root(tree: Path) -> None:
    """Taken relative to the root as written: odd spellings name the same thing, or the root (refused)."""
    assert outcome(tree, f"{tree}/a/./b/") == 0
    assert outcome(tree, f"{tree}//a/b") == 0
    assert outcome(Path(f"{tree}/"), f"{tree}/a/b") == 0
    for root_itself in (f"{tree}/", f"{tree}/.", f"{tree}/./"):
        assert outcome(tree, root_itself) == errno.EXDEV
    assert outcome(tree, f"{tree}/link/b") == errno.ELOOP
    assert outcome(tree, f"{tree}/a/../a/b") == errno.EXDEV


WALK = """
import json, sys
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from mountkit import _sys
from test_paths import outcome
_sys.mark_unsupported("openat2")
print(json.dumps([outcome(Path(sys.argv[1]), rel, directory) for rel, directory in json.loads(sys.argv[2])]))
"""


def test_the_fallback_walk_refuses_the_same(tree: Path) -> None:
    asked = (
        [(rel, False) for rel, _ in CASES]
        + [("a/../a/b", False)]
        + [(rel, True) for rel, _ in DIRECTORY_CASES]
    )
    done = subprocess.run(
        [sys.executable, "-c", WALK, str(tree), json.dumps(asked), os.path.dirname(__file__)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # the walk refuses every "..", even one that stays beneath the root
    want = [want for _, want in CASES] + [errno.EXDEV] + [want for _, want in DIRECTORY_CASES]
    assert json.loads(done.stdout) == want


def test_openat2_refuses_a_dotdot_even_one_that_stays_beneath(tree: Path) -> None:
    """Both resolvers refuse any "..", so a path means the same on every kernel."""
    assert outcome(tree, "a/../a/b") == errno.EXDEV


# -- csi.node.paths ---------------------------------------------------------------------------------


def code(call: object) -> grpc.StatusCode:
    with pytest.raises(CsiError) as info:
        call()  # type: ignore[operator]
    return info.value.code


@pytest.mark.parametrize(
    "path", ["relative/x", "/r/a/../b", "/r/a/./b", "/r//a", "//r/a", "/r", "/rx/a", "/other/a", "/r/a\0b"]
)
def test_beneath_refuses_malformed_or_outside_paths(path: str) -> None:
    assert code(lambda: paths.beneath("/r", path, "target_path")) == grpc.StatusCode.INVALID_ARGUMENT


def test_beneath_accepts_paths_below_the_root() -> None:
    assert paths.beneath("/r", "/r/a/b/", "target_path") == "/r/a/b"
    assert paths.beneath("/r/", "/r/a", "target_path") == "/r/a"


def test_check_parents(tree: Path) -> None:
    root = str(tree)
    assert paths.check_parents(root, f"{root}/a/b/c/new", "target_path")
    assert (
        code(lambda: paths.check_parents(root, f"{root}/link/b/new", "x")) == grpc.StatusCode.INVALID_ARGUMENT
    )
    (tree / "file").write_text("")
    assert (
        code(lambda: paths.check_parents(root, f"{root}/file/new", "x")) == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        code(lambda: paths.check_parents(root, f"{root}/gone/new", "x"))
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert paths.check_parents(root, f"{root}/gone/new", "x", missing_ok=True) is False


def test_ensure_dir(tree: Path) -> None:
    root = str(tree)
    assert paths.ensure_dir(root, f"{root}/a/b/new", "target_path", 5.0) is True
    assert (tree / "a" / "b" / "new").is_dir()
    assert paths.ensure_dir(root, f"{root}/a/b/new", "target_path", 5.0) is False  # already there
    assert paths.ensure_dir(root, f"{root}/top", "target_path", 5.0) is True  # directly under the root
    assert (
        code(lambda: paths.ensure_dir(root, f"{root}/a/tail", "x", 5.0)) == grpc.StatusCode.INVALID_ARGUMENT
    )
    (tree / "a" / "file").write_text("")
    assert (
        code(lambda: paths.ensure_dir(root, f"{root}/a/file", "x", 5.0)) == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        code(lambda: paths.ensure_dir(root, f"{root}/link/new", "x", 5.0)) == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert not (tree / "a" / "new").exists()


#: (the new directory's path relative to the root, what mkdir_beneath answers: True made, False there
#: already, or the errno it refuses with; and the operation its error names)
MKDIR_CASES = [
    ("a/b/new", True, ""),
    ("a/b/c", False, ""),  # a directory there already
    ("a/file", False, ""),  # something else there: the caller looks (ensure_dir's lstat)
    ("a/tail", False, ""),  # a symlink there is not followed
    ("top", True, ""),  # directly under the root
    ("link/new", errno.ELOOP, "open_beneath"),  # a symlinked parent
    ("a/out/new", errno.ELOOP, "open_beneath"),  # a parent that leads out of the root
    ("a/missing/new", errno.ENOENT, "open_beneath"),
    ("a/file/new", errno.ENOTDIR, "open_beneath"),
    ("../outside/new", errno.EXDEV, "open_beneath"),
]


@pytest.mark.parametrize(("rel", "want", "operation"), MKDIR_CASES)
def test_mkdir_beneath(tree: Path, rel: str, want: bool | int, operation: str) -> None:
    before = sorted(p.name for p in (tree.parent / "outside").iterdir())
    try:
        got: bool | int = mkdir_beneath(tree, f"{tree}/{rel}", 0o750)
    except MountError as exc:
        assert exc.operation == operation and exc.filename2 == str(tree)
        got = exc.errno or -1
    assert got == want
    if want is True:
        assert (tree / rel).is_dir() and not (tree / rel).is_symlink()
        assert (tree / rel).stat().st_mode & 0o777 == 0o750 & ~_umask()
    assert sorted(p.name for p in (tree.parent / "outside").iterdir()) == before  # nothing made outside


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_ensure_dir_makes_a_target_in_one_call(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The common case (a new target under an existing parent) never walks the parents in Python."""

    def walked(*args: object, **kw: object) -> None:
        raise AssertionError("the parents were walked for a target one call makes")

    monkeypatch.setattr(paths, "_open_parent", walked)
    root = str(tree)
    assert paths.ensure_dir(root, f"{root}/a/b/one", "target_path", 5.0) is True
    assert paths.ensure_dir(root, f"{root}/a/b/one", "target_path", 5.0) is False


def test_ensure_dir_names_a_missing_parent(tree: Path) -> None:
    root = str(tree)
    assert (
        code(lambda: paths.ensure_dir(root, f"{root}/a/gone/new", "target_path", 5.0))
        == grpc.StatusCode.FAILED_PRECONDITION
    )


def test_exists(tree: Path) -> None:
    assert paths.exists(str(tree / "a" / "b"), 5.0)
    assert paths.exists(str(tree / "a" / "out"), 5.0)  # the link itself
    assert not paths.exists(str(tree / "missing"), 5.0)
    (tree / "file").write_text("")
    assert not paths.exists(str(tree / "file" / "below"), 5.0)  # ENOTDIR


def test_raise_if_redirected() -> None:
    for err in (errno.ELOOP, errno.EXDEV):
        exc = MountError(err, "open_beneath", "/r/a", "/r", "why")
        assert (
            code(lambda e=exc: paths.raise_if_redirected(e, "target_path"))
            == grpc.StatusCode.INVALID_ARGUMENT
        )
    paths.raise_if_redirected(
        MountError(errno.ENOENT, "open_beneath", "/r/a"), "target_path"
    )  # not redirected
    paths.raise_if_redirected(
        MountError(errno.ELOOP, "mount", "/r/a"), "target_path"
    )  # not from open_beneath
