"""The docs site builds with ``mkdocs build --strict``: every page in the nav, every link resolves, and the
API reference is rendered from the docstrings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip(
    "mkdocs", reason="mkdocs is not installed (tools/test.sh installs it from requirements/dev.txt)"
)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )


def test_site_builds_strictly_with_the_api_reference(tmp_path: Path) -> None:
    result = _build(REPO / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "site" / "api" / "mounter" / "index.html").read_text()
    assert "cleanup_mountpoint" in api and "FakeMounter" in api  # rendered from mountkit's docstrings


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(
        REPO / "mountkit", tmp_path / "mountkit", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the missing page](nowhere.md).\n")
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "nowhere.md" in result.stdout + result.stderr
