"""What every command of the driver does at start: its log level flag, logging, and stopping on a signal."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """``--log-level``, the same on every command."""
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, help="the least severe logged")


def configure_logging(level: str) -> None:
    """One line a record, on stderr, where the container runtime collects it."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM (the kubelet stopping the pod) or SIGINT; the main thread waits on it."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
