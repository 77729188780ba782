"""The driver image built from Dockerfile with podman, and run: ``--help``, the demo in a
``--privileged`` container, and ``tests/privileged`` in a ``--privileged`` container of the image's
``test`` target.

``tools/image.sh`` does the work (a base image made from Debian packages, the build, the runs,
podman's mounts kept in a mount namespace of the script's own); each test here runs one of its
steps and checks the container's exit status and what it printed.  The build takes minutes
(about 5 on a clean 2-core machine, see docs/image.md); ``MOUNTKIT_IMAGE_TESTS=0`` skips the module.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import pytest

from tests.support.kernelskips import RunSummary

pytestmark = pytest.mark.privileged

if os.environ.get("MOUNTKIT_IMAGE_TESTS") == "0":
    pytest.skip("MOUNTKIT_IMAGE_TESTS=0: the image is not built or run", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "image.sh"


def _image_sh(*args: str, timeout: float) -> str:
    """Runs one step of tools/image.sh; a failure shows the end of what it printed."""
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"tools/image.sh {' '.join(args)} exited {done.returncode}:\n{out[-6000:]}"
    return out


@pytest.fixture(scope="module")
def built() -> None:
    _image_sh("build", timeout=1800)


def test_help_runs_in_the_image(built: None) -> None:
    out = _image_sh("help", timeout=120)
    assert "usage: filestore-csi-driver" in out
    assert "--kubelet-root" in out


def test_demo_walks_a_volume_through_its_life_in_a_privileged_container(built: None) -> None:
    out = _image_sh("demo", timeout=300)
    assert "demo finished: every step succeeded" in out
    assert "pod-reader read: 'hello from pod-writer" in out
    assert "write through the read-only path: EROFS" in out
    assert "mount table under the kubelet root: (nothing mounted)" in out


def test_privileged_suite_passes_inside_the_image(built: None) -> None:
    out = _image_sh("test", "-p", "no:cacheprovider", "-rs", timeout=1800)
    run = RunSummary.parse(out)
    # The test image carries every tool the suite needs: a skip there is a defect of the image, unless
    # it is for a reason of the kernel, which the container shares with its host (tests/support/kernelskips).
    problems = run.problems()
    assert not problems, "\n".join([*problems, out[-3000:]])
    if run.skips:
        warnings.warn(
            "skipped in the image for a kernel reason: "
            + "; ".join(f"{s.where}: {s.reason}" for s in run.skips),
            stacklevel=1,
        )
