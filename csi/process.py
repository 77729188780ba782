"""What every command of the driver does at start: its log level flag, logging, and stopping on a signal."""

from __future__ import annotations

import argparse
import collections
import logging
import signal
import sys
import threading
import time
from typing import TextIO

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: how long the log writer lets lines gather after the first of a batch, to write them with one write(2)
LOG_BATCH_WINDOW = 0.005


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """``--log-level``, the same on every command."""
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, help="the least severe logged")


class LineWriter(logging.Handler):
    """One line a record on ``stream``, formatted and written in batches by a thread of its own.

    A call only queues its record (its message merged, since arguments may change later): no lock
    shared with the other calls, no write(2) releasing the GIL mid-call, no thread woken per line.
    The writer wakes when a record arrives on an empty queue, waits :data:`LOG_BATCH_WINDOW` for the
    rest of a burst, then formats and writes all of them at once; idle, it sleeps without a timeout.
    :meth:`flush` and :meth:`close` (logging's shutdown at exit) write whatever is queued.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.setFormatter(_LineFormatter())
        self._stream = stream
        self._records: collections.deque[logging.LogRecord] = collections.deque()
        self._wake = threading.Event()
        self._drain_lock = threading.Lock()  # the writer and a flush() write in turn, lines in order
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        record.msg = record.getMessage()
        record.args = None
        self._records.append(record)
        if not self._wake.is_set():
            self._wake.set()
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait()
            time.sleep(LOG_BATCH_WINDOW)
            self._wake.clear()  # before the drain: a record queued after it wakes the next round
            self.flush()

    def flush(self) -> None:
        with self._drain_lock:
            lines = []
            while self._records:
                record = self._records.popleft()
                try:
                    lines.append(self.format(record))
                except Exception:  # noqa: BLE001 - a handler reports its own failures (logging.Handler.emit)
                    self.handleError(record)
            if not lines:
                return
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except Exception:  # noqa: BLE001 - as above
                self.handleError(record)

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
        super().close()


class _LineFormatter(logging.Formatter):
    """``TIME LEVEL NAME: MESSAGE``, as ``%(asctime)s %(levelname)s %(name)s: %(message)s`` writes it, with
    the timestamp's text made once a second (strftime and the style machinery were most of a line's cost)."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = (-1, "")  # (second, its text), replaced whole: safe to share between threads

    def format(self, record: logging.LogRecord) -> str:
        second, text = self._stamp
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._stamp = (second, text)
        line = f"{text},{int(record.msecs):03d} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def configure_logging(level: str) -> None:
    """Log to stderr, where the container runtime collects it, through a :class:`LineWriter`.

    Nothing changes when logging is configured already (as :func:`logging.basicConfig`).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    # What a line never shows is not gathered (the Logging HOWTO's "Optimization"): the caller's frame,
    # thread, process; half of a log call's cost.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root.addHandler(LineWriter(sys.stderr))
    root.setLevel(level)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM (the kubelet stopping the pod) or SIGINT; the main thread waits on it."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
