"""The community conformance suite, csi-sanity (kubernetes-csi/csi-test v5.5.0): find it, run it, read its
report.

The binary ships xz-packed beside the project (``../shared/tools/csi-sanity/``, or ``$CSI_SANITY_DIR``)
with a SHA256SUMS file; :func:`binary` unpacks it once into the user's cache and checks the sum, so a
truncated or swapped binary never runs.  :func:`read_junit` turns Ginkgo's JUnit report into the
counts and the reasons of every skip, so a caller can fail on a failure and on a run that ran nothing.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERSION = "v5.5.0"


class Unavailable(RuntimeError):
    """csi-sanity is not there (or does not match its checksum); the message says where it was looked for."""


def tools_dir() -> Path:
    """Where the packed binary lives: ``$CSI_SANITY_DIR``, else ``../shared/tools/csi-sanity`` beside the
    tree."""
    return Path(os.environ.get("CSI_SANITY_DIR") or ROOT.parent / "shared" / "tools" / "csi-sanity")


def _expected_sha256(tools: Path) -> str:
    for line in (tools / "SHA256SUMS").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == "csi-sanity":
            return parts[0].lower()
    raise Unavailable(f"{tools / 'SHA256SUMS'} has no line for csi-sanity")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def binary() -> Path:
    """The unpacked, checksum-verified csi-sanity, cached by its sum; Unavailable when it is missing."""
    tools = tools_dir()
    packed = tools / "csi-sanity.xz"
    if not packed.is_file() or not (tools / "SHA256SUMS").is_file():
        raise Unavailable(f"csi-sanity {VERSION} is not at {packed} (set CSI_SANITY_DIR to its directory)")
    want = _expected_sha256(tools)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mountkit-csi-sanity"
    out = cache / f"csi-sanity-{want[:16]}"
    if out.is_file() and _sha256(out) == want:
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}")
    with lzma.open(packed) as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    got = _sha256(tmp)
    if got != want:
        tmp.unlink()
        raise Unavailable(f"{packed} unpacks to sha256 {got}, SHA256SUMS says {want}")
    tmp.chmod(0o755)
    tmp.rename(out)
    return out


@dataclass
class Report:
    """One csi-sanity run's spec results (Ginkgo's BeforeSuite/AfterSuite nodes count as specs)."""

    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # spec: failure message
    skipped: dict[str, str] = field(default_factory=dict)  # spec: skip reason

    def summary(self) -> str:
        return f"{len(self.passed)} passed, {len(self.failed)} failed, {len(self.skipped)} skipped"


def read_junit(path: str | os.PathLike[str]) -> Report:
    """The results in Ginkgo's JUnit report: each ``testcase``'s ``status`` and its failure or skip message.

    Errors and panics (``error`` elements, status "panicked"/"interrupted"/"timedout") count as failures.
    """
    report = Report()
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        status = case.get("status", "")
        if status == "passed":
            report.passed.append(name)
        elif status in ("skipped", "pending"):
            node = case.find("skipped")
            report.skipped[name] = (node.get("message", "") if node is not None else status).strip()
        else:
            node = case.find("failure")
            if node is None:
                node = case.find("error")
            message = (node.get("message", "") if node is not None else "") or (
                node.text if node is not None and node.text else status
            )
            report.failed[name] = message.strip()
    return report
