"""Run test code inside a private mount namespace, in a child process.

Everything a privileged test mounts lives in a namespace of its own (made with
``unshare(CLONE_NEWNS)`` and ``/`` made ``MS_REC|MS_PRIVATE``), under a tmpfs
scratch directory, so nothing reaches the host's mount table; the namespace
dies with the child.  The function's return value (or its exception, with the
child's traceback) comes back to the test through a pipe.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from mountkit import _sys
from mountkit.flags import CLONE_NEWNS, MS

T = TypeVar("T")


class ChildFailed(AssertionError):
    """The function failed inside the namespace; the message holds the child's traceback."""


def enter_private_ns() -> None:
    """Make this process's mount namespace private (call only in a child you own)."""
    _sys.unshare(CLONE_NEWNS)
    _sys.mount(None, "/", None, MS.REC | MS.PRIVATE, None)


def run_in_private_ns(fn: Callable[..., T], *args: Any, timeout: float = 120.0) -> T:
    """fork; in the child: private namespace, a tmpfs scratch dir, ``fn(scratch, *args)``."""
    # Made here so the parent can remove it: in the host's view it stays an empty directory (the
    # tmpfs on it exists only in the child's namespace).
    scratch = tempfile.mkdtemp(prefix="mountkit-test-")
    try:
        return _run_forked(fn, scratch, args, timeout)
    finally:
        os.rmdir(scratch)


def _run_forked(fn: Callable[..., T], scratch: str, args: tuple[Any, ...], timeout: float) -> T:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        try:
            enter_private_ns()
            _sys.mount("tmpfs", scratch, "tmpfs", 0, "mode=755")
            try:
                payload: tuple[bool, object] = (True, fn(scratch, *args))
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                payload = (False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            data = pickle.dumps(payload)
        except BaseException as exc:  # noqa: BLE001
            data = pickle.dumps((False, f"namespace setup failed: {exc!r}\n{traceback.format_exc()}"))
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
    ok, value = pickle.loads(b"".join(chunks))
    if not ok:
        raise ChildFailed(value)
    return value  # type: ignore[no-any-return]


def unshare_argv(argv: list[str]) -> list[str]:
    """argv run in a new private mount namespace (util-linux unshare), for server processes."""
    return ["unshare", "--mount", "--propagation", "private", "--", *argv]
