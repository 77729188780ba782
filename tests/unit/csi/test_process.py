"""The driver's logging: lines as logged, written in batches by a thread of their own, none lost at exit."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time

from csi.process import LOG_BATCH_WINDOW, LineWriter


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )


def test_lines_show_arguments_as_logged_and_all_reach_stderr_by_exit() -> None:
    done = _run(
        """
        import logging
        from csi.process import configure_logging
        configure_logging("INFO")
        handlers = logging.getLogger().handlers
        assert [type(h).__name__ for h in handlers] == ["LineWriter"], handlers
        assert logging._srcfile is None and not logging.logThreads  # nothing gathered a line never shows
        state = ["before"]
        logging.getLogger("csi.t").info("state %s", state)
        state[0] = "after"  # changed once logged: the line shows it as it was
        logging.getLogger("csi.t").debug("not at INFO")
        try:
            1 / 0
        except ZeroDivisionError:
            logging.getLogger("csi.t").exception("failed")
        for i in range(500):  # still queued when the interpreter exits: shutdown writes them
            logging.getLogger("csi.t").info("line %d", i)
        """
    )
    lines = done.stderr.splitlines()
    assert lines[0].endswith(" INFO csi.t: state ['before']")
    assert "not at INFO" not in done.stderr
    assert lines[1].endswith(" ERROR csi.t: failed") and "ZeroDivisionError: division by zero" in done.stderr
    assert lines[-1].endswith(" INFO csi.t: line 499")
    assert [line.rpartition(" ")[2] for line in lines if " csi.t: line " in line] == [
        str(i) for i in range(500)
    ]


def test_lines_read_as_the_stdlib_format_writes_them() -> None:
    record = logging.LogRecord(
        "csi.server", logging.WARNING, __file__, 1, "%s in %.3fs", ("Probe", 0.25), None
    )
    stdlib = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    writer = LineWriter(_Stream())
    try:
        assert writer.format(record) == stdlib.format(record)
    finally:
        writer.close()


class _Stream:
    """A stream that counts its writes."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.writes.append(text)

    def flush(self) -> None:
        pass


def test_a_burst_of_lines_is_written_in_a_few_writes_and_a_later_line_still_goes_out() -> None:
    stream = _Stream()
    writer = LineWriter(stream)
    log = logging.getLogger("csi.test_process.burst")
    log.propagate = False
    log.addHandler(writer)
    log.setLevel(logging.INFO)
    try:
        threads = [
            threading.Thread(target=lambda i=i: [log.info("call %d.%d", i, j) for j in range(20)])
            for i in range(10)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 10
        while sum(text.count("\n") for text in stream.writes) < 200 and time.monotonic() < deadline:
            time.sleep(LOG_BATCH_WINDOW)
        burst_writes = len(stream.writes)
        assert sum(text.count("\n") for text in stream.writes) == 200
        assert burst_writes <= 20  # batches, not a write(2) per line
        time.sleep(10 * LOG_BATCH_WINDOW)  # the writer idles, then a single line wakes it
        log.warning("later")
        while len(stream.writes) == burst_writes and time.monotonic() < deadline:
            time.sleep(LOG_BATCH_WINDOW)
        assert stream.writes[-1].endswith(" WARNING csi.test_process.burst: later\n")
    finally:
        log.removeHandler(writer)
        writer.close()


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
