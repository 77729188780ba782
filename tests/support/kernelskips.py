"""Skip reasons that describe the running kernel, and the judge of a pytest run that may show them.

A container shares its host's kernel, so a suite run inside the driver's image may skip for these
reasons and for no other: a missing tool, Python module or device there is a defect of the image
or of how it is run.  Tests that skip for a kernel reason take it from here, so the list the image
test accepts (:data:`KERNEL_SKIPS`) is the one the tests use.
"""

from __future__ import annotations

import dataclasses
import re

NO_STATMOUNT = "kernel has no listmount/statmount (6.8+)"
NO_MOVE_MOUNT_BENEATH = "no MOVE_MOUNT_BENEATH (6.5+)"
#: followed by ": " and the kernel's refusal
NO_FANOTIFY_MOUNT_EVENTS = "no fanotify mount events on this kernel (6.15+)"
HAS_NFS_CLIENT = "this kernel has an NFS client (nfs in /proc/filesystems): no ENODEV to see"
MOUNT_ID_NOT_REUSED = "the kernel gave the new bind another mount id: nothing to confuse"

KERNEL_SKIPS = (
    NO_STATMOUNT,
    NO_MOVE_MOUNT_BENEATH,
    NO_FANOTIFY_MOUNT_EVENTS,
    HAS_NFS_CLIENT,
    MOUNT_ID_NOT_REUSED,
)

#: "=== 97 passed, 2 skipped in 182.67s (0:03:02) ===", or without the bars under -q
_SUMMARY = re.compile(r"^(?:=+ )?(\d+ \w+(?:, \d+ \w+)*) in [\d.]+s\b.*$", re.MULTILINE)
_COUNT = re.compile(r"(\d+) (\w+)")
_SKIPPED = re.compile(r"^SKIPPED \[(\d+)\] (\S+): (.*)$", re.MULTILINE)


def is_kernel_skip(reason: str) -> bool:
    """Is ``reason`` one of :data:`KERNEL_SKIPS` (alone, or followed by ``": "`` and a detail)?"""
    return any(reason == known or reason.startswith(f"{known}: ") for known in KERNEL_SKIPS)


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    count: int
    where: str  # path:line
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class RunSummary:
    """The last summary line of a pytest run (``{"passed": 97, "skipped": 2}``) and its ``-rs`` lines."""

    counts: dict[str, int]
    skips: tuple[Skip, ...]

    @classmethod
    def parse(cls, out: str) -> RunSummary:
        """Raises ValueError when ``out`` holds no summary line, or fewer skip lines than skips counted."""
        lines = _SUMMARY.findall(out)
        if not lines:
            raise ValueError("no pytest summary line in the output")
        counts = {kind: int(n) for n, kind in _COUNT.findall(lines[-1])}
        skips = tuple(Skip(int(n), where, reason.strip()) for n, where, reason in _SKIPPED.findall(out))
        if sum(s.count for s in skips) != counts.get("skipped", 0):
            raise ValueError(
                f"{counts.get('skipped', 0)} skipped but {len(skips)} SKIPPED lines: run it with -rs"
            )
        return cls(counts, skips)

    def problems(self) -> list[str]:
        """Why this run is not a pass where only kernel skips are allowed (empty: it is one)."""
        found = [f"{n} {kind}" for kind, n in self.counts.items() if kind not in ("passed", "skipped")]
        if not self.counts.get("passed"):
            found.append("nothing passed")
        found += [
            f"skip not for a kernel reason: {s.where}: {s.reason}"
            for s in self.skips
            if not is_kernel_skip(s.reason)
        ]
        return found
