"""csi-sanity itself (kubernetes-csi/csi-test v5.5.0) against the whole driver over real NFS.

The driver runs as csi-sanity's README has it, ``filestore-csi-driver --mode all --cloud emulator``,
in a private mount namespace; the emulator's instances are kernel NFS servers of their own
(``nfsserver.filestore_emulator``), so every NodeStageVolume of the suite is a real NFS mount of the
volume's ``ip:/volume``.  Every spec runs, once in the suite's default order and once shuffled
(``--ginkgo.randomize-all``; the seed is printed, ``CSI_SANITY_SEED`` repeats one).  The JUnit report
is the verdict: no spec failed, specs did pass, and each skip is printed with its reason.

The suite's volumes are zonal and 1 TiB, the smallest size at which a zonal instance takes a
custom performance, so the ModifyVolume and VolumeAttributesClass specs have a mutable parameter
(``max-iops-per-tb``) that the volume can really take.

The host runs this module in a guest of its own (tests/vm/test_csi_sanity.py), where the path of the
unpacked binary arrives as ``CSI_SANITY_BIN``.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.csisanity import Report, read_junit
from tests.support.csiutil import mount_rows, run_driver
from tests.support.nfsserver import Filestore

pytestmark = pytest.mark.privileged

#: ``--csi.testvolumesize``: 1 TiB, a zonal instance's smallest size with custom performance.
VOLUME_SIZE = 1 << 40
VOLUME_PARAMETERS = {"tier": "zonal", "network": "default"}
MUTABLE_PARAMETERS = {"max-iops-per-tb": "5000"}
#: the only reasons a spec may skip: the driver does not advertise what it tests ("skipped - GetCapacity
#: not supported"), or the suite disabled it itself (an ``XIt``: "pending")
SKIP_REASON = re.compile(r"skipped - .* not supported|pending")
#: one order took 460 s under the emulated CPU on a busy 2-core host; this bounds a hang
SUITE_TIMEOUT = 1500


def _yaml(path: Path, values: dict[str, str]) -> str:
    """A flat YAML map of strings (csi-sanity's parameter files), quoted so no value changes type."""
    path.write_text("".join(f'"{key}": "{value}"\n' for key, value in values.items()))
    return str(path)


def _run_suite(filestore: Filestore, scratch: Path, order: list[str]) -> Report:
    binary = os.environ.get("CSI_SANITY_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip(
            "CSI_SANITY_BIN does not name the unpacked csi-sanity (tests/vm/test_csi_sanity.py sets it)"
        )
    junit = scratch / "junit.xml"
    # The driver may take minutes to answer under the emulated CPU on a busy host (120 s was too little).
    with run_driver(
        "--cloud=emulator", f"--emulator-endpoint={filestore.endpoint}", "--probe-timeout=5", timeout=600
    ) as driver:
        # csi-sanity makes (os.Mkdir) and removes the two directories around every spec; their parent
        # is beneath the kubelet root, where the driver accepts targets.
        base = os.path.join(driver.root, "csi-sanity")
        os.makedirs(base)
        argv = [
            binary,
            f"--csi.endpoint=unix://{driver.endpoint}",
            f"--csi.mountdir={base}/mount",
            f"--csi.stagingdir={base}/staging",
            f"--csi.testvolumesize={VOLUME_SIZE}",
            f"--csi.testvolumeparameters={_yaml(scratch / 'parameters.yaml', VOLUME_PARAMETERS)}",
            f"--csi.testvolumemutableparameters={_yaml(scratch / 'mutable.yaml', MUTABLE_PARAMETERS)}",
            f"--ginkgo.junit-report={junit}",
            "--ginkgo.no-color",
            "--ginkgo.timeout=1h",
            *order,
        ]
        print("$ " + " ".join(argv))
        started = time.monotonic()
        # Its report goes to our output as it runs (pytest shows it with a failure; the host prints it).
        run = subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=SUITE_TIMEOUT, check=False)
        seconds = time.monotonic() - started
        left = mount_rows(driver, "SOURCE")
    assert junit.exists(), f"csi-sanity wrote no report (exit {run.returncode}); its output is above"
    report = read_junit(junit)
    print(f"csi-sanity {' '.join(order) or '(default order)'}: {report.summary()} in {seconds:.0f} s")
    for spec, reason in sorted(report.skipped.items()):
        print(f"  skipped: {spec}: {reason}")
    for spec, message in sorted(report.failed.items()):
        print(f"  FAILED: {spec}:\n    {message[:1500]}")
    assert not report.failed, f"csi-sanity: {report.summary()}: {sorted(report.failed)}"
    assert report.passed, f"csi-sanity ran no spec: {report.summary()}"
    unexplained = {spec: why for spec, why in report.skipped.items() if not SKIP_REASON.fullmatch(why)}
    assert not unexplained, f"skipped for a reason other than a capability the driver lacks: {unexplained}"
    assert run.returncode == 0, f"csi-sanity exited {run.returncode} with no failed spec"
    assert not left, f"mounts left beneath the kubelet root: {left}"
    assert not filestore.servers, f"instances left running: {sorted(filestore.servers)}"
    return report


def _seed() -> int:
    seed = int(os.environ.get("CSI_SANITY_SEED") or random.randrange(1, 1 << 31))
    print(f"csi-sanity seed {seed} (CSI_SANITY_SEED={seed} repeats this order)")
    return seed


def test_csi_sanity_default_order(filestore: Filestore, tmp_path: Path) -> None:
    """Ginkgo's default: specs in file order within each top-level container, the containers shuffled."""
    _run_suite(filestore, tmp_path, [f"--ginkgo.seed={_seed()}"])


def test_csi_sanity_shuffled(filestore: Filestore, tmp_path: Path) -> None:
    """Every spec shuffled: no spec may depend on what an earlier one left behind."""
    _run_suite(filestore, tmp_path, ["--ginkgo.randomize-all", f"--ginkgo.seed={_seed()}"])
