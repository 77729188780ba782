"""What every command of the driver does at start: its log level flag, logging, and stopping on a signal."""

from __future__ import annotations

import argparse
import atexit
import logging
import logging.handlers
import queue
import signal
import sys
import threading

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """``--log-level``, the same on every command."""
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, help="the least severe logged")


class _DeferredHandler(logging.handlers.QueueHandler):
    """Hands a record to the writer thread with its message merged (its arguments may change later), but
    neither formatted (timestamp, level, name) nor written: that is the writer's work."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        return record


def configure_logging(level: str) -> None:
    """One line a record, on stderr, where the container runtime collects it, written by a thread of its own.

    An RPC only queues its line: formatting and the write happen on the writer thread, so calls do not
    queue on the handler's lock nor wait on a slow reader of the pipe (in a 110-publish burst the lock
    and the writes made logging 15% of the driver's CPU).  The writer drains the queue at exit.
    Nothing changes when logging is configured already (as :func:`logging.basicConfig`).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(logging.Formatter(LOG_FORMAT))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, writer)
    root.addHandler(_DeferredHandler(records))
    root.setLevel(level)
    listener.start()
    atexit.register(listener.stop)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM (the kubelet stopping the pod) or SIGINT; the main thread waits on it."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
