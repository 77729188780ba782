"""The driver's logging: written by a thread of its own, lines as logged, none lost at exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )


def test_lines_show_arguments_as_logged_and_all_reach_stderr_by_exit() -> None:
    done = _run(
        """
        import logging, threading
        from csi.process import configure_logging
        configure_logging("INFO")
        handlers = logging.getLogger().handlers
        assert [type(h).__name__ for h in handlers] == ["_DeferredHandler"], handlers
        state = ["before"]
        logging.getLogger("csi.t").info("state %s", state)
        state[0] = "after"  # changed once logged: the line shows it as it was
        logging.getLogger("csi.t").debug("not at INFO")
        try:
            1 / 0
        except ZeroDivisionError:
            logging.getLogger("csi.t").exception("failed")
        for i in range(500):  # still queued when the interpreter exits: the writer drains them
            logging.getLogger("csi.t").info("line %d", i)
        """
    )
    lines = done.stderr.splitlines()
    assert " INFO csi.t: state ['before']" in lines[0]
    assert "not at INFO" not in done.stderr
    assert " ERROR csi.t: failed" in lines[1] and "ZeroDivisionError: division by zero" in done.stderr
    assert lines[-1].endswith(" INFO csi.t: line 499")
    assert sum(1 for line in lines if " csi.t: line " in line) == 500


def test_logging_already_configured_is_left_alone() -> None:
    done = _run(
        """
        import logging, sys
        logging.basicConfig(level="WARNING", stream=sys.stdout, format="%(message)s")
        from csi.process import configure_logging
        configure_logging("DEBUG")
        logging.getLogger("csi.t").info("hidden")
        logging.getLogger("csi.t").warning("shown")
        """
    )
    assert done.stdout == "shown\n" and done.stderr == ""
