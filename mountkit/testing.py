"""mountkit's pytest plugin: privileged integration tests in a private mount namespace.

Installed with mountkit and loaded by pytest on its own (entry point ``pytest11``; disable with
``-p no:mountkit``).  It offers:

``@pytest.mark.mount_ns``
    The test body runs in a forked child, inside a new mount namespace whose ``/`` is made
    ``MS_REC|MS_PRIVATE``, so nothing it mounts reaches the host.  Its fixtures are set up in
    the parent; request the ``ns_scratch`` fixture to get a directory that is a fresh tmpfs in
    the child.  A failure comes back as :class:`ChildFailed` (an ``AssertionError``) carrying
    the child's traceback; ``pytest.skip`` in the child skips the test.
``in_ns`` fixture
    The same, for part of a test: ``in_ns(fn, *args)`` returns ``fn(scratch, *args)`` computed
    in such a child (the value must pickle).
``fake_mounter`` fixture
    A fresh :class:`~mountkit.fake.FakeMounter`, for unit tests of code that mounts.

Without root, the child also enters a new user namespace (mapping the caller to root in it)
where the kernel allows unprivileged ones; where neither works the test is skipped with the
reason.  Either way, a test whose mounts leaked into the parent's mount table (a line of
``/proc/self/mountinfo`` that was not there before) fails, naming the mounts.  On a machine where
other work mounts meanwhile, the ini option ``mountkit_leak_paths`` narrows the check to the
places tests mount in (mount points at or below the listed paths; default ``/``, everything).

:func:`run_in_private_ns` and :func:`unshare_argv` (for a server process) also serve outside a
test session (the benchmarks use them); pytest must still be importable.
"""

from __future__ import annotations

import functools
import os
import pickle
import select
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from mountkit.flags import CLONE_NEWNS, CLONE_NEWUSER, MS

if TYPE_CHECKING:
    from mountkit.fake import FakeMounter

T = TypeVar("T")

MARKER = "mount_ns"
LEAK_PATHS = "mountkit_leak_paths"


class ChildFailed(AssertionError):
    """The function failed inside the namespace; the message holds the child's traceback."""


class _Skip(Exception):
    """The child asked to skip (pytest.skip); carries the reason across the pipe."""


def enter_private_ns(*, userns: bool = False) -> None:
    """Make this process's mount namespace private (call only in a child you own).

    ``userns``: first enter a new user namespace mapping this uid and gid to root, which lets an
    unprivileged process mount tmpfs and bind mounts there.
    """
    # imported here: the plugin loads in every pytest session, which must not need the compiled extension
    from mountkit import _sys

    if userns:
        uid, gid = os.getuid(), os.getgid()
        _sys.unshare(CLONE_NEWUSER | CLONE_NEWNS)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
    else:
        _sys.unshare(CLONE_NEWNS)
    _sys.mount(None, "/", None, MS.REC | MS.PRIVATE, None)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


@functools.cache
def namespace_support() -> tuple[bool, str | None]:
    """``(use a user namespace, None)`` where the child can mount, else ``(False, why not)``.

    Root needs nothing more; anyone else needs unprivileged user namespaces, which this probes
    once in a throwaway child.
    """
    if os.geteuid() == 0:
        return False, None
    pid = os.fork()
    if pid == 0:
        try:
            enter_private_ns(userns=True)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - any failure means "not here"
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return True, None
    return False, "needs root, or unprivileged user namespaces (sysctl user.max_user_namespaces, apparmor)"


def run_in_private_ns(
    fn: Callable[..., T], *args: Any, timeout: float = 120.0, scratch: str | None = None
) -> T:
    """fork; in the child: private namespace, a tmpfs scratch dir, ``fn(scratch, *args)``.

    ``scratch`` names an existing empty directory to use (the caller removes it); by default a
    fresh one is made and removed.  Raises :class:`ChildFailed` with the child's traceback when
    ``fn`` raises, the namespace cannot be made, or ``timeout`` seconds pass (the child is then
    killed).
    """
    __tracebackhide__ = True
    if scratch is not None:
        return _run_forked(fn, scratch, args, timeout)
    # Made here so the parent can remove it: in the parent's view it stays an empty directory (the
    # tmpfs on it exists only in the child's namespace).
    own = tempfile.mkdtemp(prefix="mountkit-test-")
    try:
        return _run_forked(fn, own, args, timeout)
    finally:
        os.rmdir(own)


def _run_forked(fn: Callable[..., T], scratch: str, args: tuple[Any, ...], timeout: float) -> T:
    __tracebackhide__ = True
    userns, why = namespace_support()
    if why is not None:
        raise ChildFailed(f"cannot make a mount namespace: {why}")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        try:
            # imported here: the plugin loads in every pytest session, which must not need the compiled
            # extension
            from mountkit import _sys

            enter_private_ns(userns=userns)
            _sys.mount("tmpfs", scratch, "tmpfs", 0, "mode=755")
            try:
                payload: tuple[str, object] = ("ok", fn(scratch, *args))
            except pytest.skip.Exception as exc:
                payload = ("skip", str(exc.msg))
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                payload = ("fail", _failure(exc))
            data = pickle.dumps(payload)
        except BaseException as exc:  # noqa: BLE001
            data = pickle.dumps(("fail", f"namespace setup failed: {exc!r}\n{traceback.format_exc()}"))
        with os.fdopen(wfd, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(wfd)
    chunks = []
    deadline = time.monotonic() + timeout
    with os.fdopen(rfd, "rb") as inp:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([inp], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise ChildFailed(f"{getattr(fn, '__name__', fn)} did not finish within {timeout} s")
            chunk = os.read(inp.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    if not chunks:
        raise ChildFailed("child died without a result")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "skip":
        raise _Skip(value)
    if kind == "fail":
        raise ChildFailed(value)
    return value  # type: ignore[no-any-return]


def _failure(exc: BaseException) -> str:
    """The exception and its traceback from the caller's code on (this module's frames left out)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(type(exc), exc, tb))


def unshare_argv(argv: list[str]) -> list[str]:
    """argv run in a new private mount namespace (util-linux unshare), for server processes."""
    return ["unshare", "--mount", "--propagation", "private", "--", *argv]


# --- the pytest side ------------------------------------------------------------------------------


def _mount_lines(config: pytest.Config) -> set[bytes]:
    """The mountinfo lines (one per mount; ids make them unique) of mounts at or below the watched paths."""
    prefixes = [os.fsencode(p.rstrip("/") + "/") for p in config.getini(LEAK_PATHS)]
    with open("/proc/self/mountinfo", "rb") as f:
        lines = f.read().splitlines()
    return {line for line in lines if any((line.split(b" ", 5)[4] + b"/").startswith(p) for p in prefixes)}


def _check_no_leak(config: pytest.Config, before: set[bytes]) -> None:
    __tracebackhide__ = True
    leaked = _mount_lines(config) - before
    if leaked:
        shown = "\n".join(sorted(line.decode(errors="replace") for line in leaked))
        pytest.fail(f"mounts leaked into the parent's mount table:\n{shown}", pytrace=False)


def _skip_unless_supported() -> None:
    why = namespace_support()[1]
    if why is not None:
        pytest.skip(why)


def _run(fn: Callable[..., T], *args: Any, timeout: float = 120.0, scratch: str | None = None) -> T:
    __tracebackhide__ = True
    try:
        return run_in_private_ns(fn, *args, timeout=timeout, scratch=scratch)
    except _Skip as exc:
        # reported at the test's own location, not at this line
        raise pytest.skip.Exception(str(exc), _use_item_location=True) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        LEAK_PATHS,
        "where a test's leaked mounts are looked for (mount points at or below these paths; default: all)",
        type="linelist",
        default=["/"],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: run the test body in a forked child inside a private mount namespace (mountkit)",
    )


@pytest.fixture
def ns_scratch() -> Iterator[str]:
    """In a ``mount_ns`` test: a directory that is a fresh tmpfs inside the test's namespace."""
    scratch = tempfile.mkdtemp(prefix="mountkit-test-")
    try:
        yield scratch
    finally:
        os.rmdir(scratch)


@pytest.fixture
def in_ns(pytestconfig: pytest.Config) -> Iterator[Callable[..., Any]]:
    """The runner ``in_ns(fn, *args, timeout=120.0)``: ``fn(scratch, *args)`` in a private namespace."""
    _skip_unless_supported()
    before = _mount_lines(pytestconfig)
    yield _run
    _check_no_leak(pytestconfig, before)


@pytest.fixture
def fake_mounter() -> FakeMounter:
    """A FakeMounter with an empty table: the Mounter interface, no kernel."""
    # imported here: the fake's table tries the compiled extension, which every pytest session would load
    from mountkit.fake import FakeMounter

    return FakeMounter()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a ``mount_ns`` test's body in the child (its fixtures were set up here, in the parent)."""
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return None
    __tracebackhide__ = True
    _skip_unless_supported()
    names = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}
    scratch: str | None = kwargs.get("ns_scratch")
    test = pyfuncitem.obj
    timeout = float(marker.kwargs.get("timeout", 120.0))
    before = _mount_lines(pyfuncitem.config)
    _run(_call, test, kwargs, timeout=timeout, scratch=scratch)
    _check_no_leak(pyfuncitem.config, before)
    return True


def _call(_scratch: str, test: Callable[..., object], kwargs: dict[str, Any]) -> object:
    return test(**kwargs)
