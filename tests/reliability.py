"""Figures the reliability tests report (inputs tried, faults injected, mounts leaked, bytes lost).

Each test calls :func:`report` once; the line is printed (seen with ``pytest -s``) and appended to
``.reliability/figures.txt`` at the repository root, so a CI or nightly run keeps its numbers.
Sizes come from environment variables so CI runs small and a nightly run large with the same code.
"""

from __future__ import annotations

import os
import time

FIGURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".reliability", "figures.txt")


def size(env: str, default: int) -> int:
    """The run size from ``env`` (an int), or the CI-sized ``default``."""
    return int(os.environ.get(env, default))


def seed(env: str = "MOUNTKIT_SEED") -> int:
    """A seed from ``env``, or a fresh one; tests print it so a failure can be replayed."""
    return int(os.environ.get(env) or time.time_ns() % 1_000_000)


def report(test: str, **figures: object) -> str:
    """Print ``test: key=value ...`` and append it to the figures file."""
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {test}: " + " ".join(f"{k}={v}" for k, v in figures.items())
    os.makedirs(os.path.dirname(FIGURES), exist_ok=True)
    with open(FIGURES, "a") as out:
        out.write(line + "\n")
    print(line)
    return line
