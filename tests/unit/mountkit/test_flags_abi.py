"""mountkit/flags.py against the C constants: the kernel's uapi headers (as the C compiler sees them) and
the kernel values cext/ writes again itself (statmount.c's ``MS_*_``/``SB_*_``), compiled and printed.

A name the installed headers do not define yet (FAN_REPORT_MNT before 6.14 headers, ...) is not
compared; every group must still be compared for at least one name, so the test cannot pass empty.
"""

from __future__ import annotations

import enum
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from mountkit import flags

ROOT = pathlib.Path(__file__).resolve().parents[3]
HEADERS = (
    "fcntl.h",
    "sched.h",
    "sys/mount.h",
    "linux/mount.h",
    "linux/openat2.h",
    "linux/stat.h",
    "sys/statvfs.h",
    "sys/fanotify.h",
)
#: flags.py class -> the C prefix of its members (FAN_INIT.CLOEXEC is FAN_CLOEXEC)
PREFIX = {"FAN_INIT": "FAN", "FAN_EVENT": "FAN"}
#: module-level names whose C spelling differs, or that the uapi headers do not carry
C_NAME = {"MOUNT_ATTR_ATIME_MASK": "MOUNT_ATTR__ATIME"}
NOT_UAPI = {"PROBE_AT", "PROPAGATION_MASK", "SB_FLAG_KEYS", "FSCONFIG_MAX_STRING", "SB_RDONLY", "SB_LAZYTIME"}
#: enums in linux/mount.h (no #define to test): compared where the header has the new mount API
ENUM_GUARD = {"FSCONFIG": "FSOPEN_CLOEXEC"}


def python_constants() -> dict[str, tuple[str, int]]:
    """C name -> (flags.py name, value) for every integer kernel constant flags.py writes."""
    out: dict[str, tuple[str, int]] = {}
    for name, value in vars(flags).items():
        if name.startswith("_") or name in NOT_UAPI:
            continue
        if isinstance(value, type) and issubclass(value, enum.Enum):
            for key, member in value.__members__.items():  # multi-bit and zero members too (not iterated)
                out[f"{PREFIX.get(name, name)}_{key}"] = (f"{name}.{key}", int(member.value))
        elif isinstance(value, int):
            out[C_NAME.get(name, name)] = (name, int(value))
    return out


def _statmount_c_defines() -> dict[str, str]:
    """statmount.c's own copies of kernel flags (``MS_SHARED_``, ``SB_RDONLY_``...): name -> C expression."""
    text = (ROOT / "cext" / "sys" / "statmount.c").read_text()
    return dict(re.findall(r"^#define ((?:MS|SB)_[A-Z_]+_) (.+)$", text, re.MULTILINE))


def c_values(names: list[str], extra: dict[str, str]) -> dict[str, int]:
    """The value of each name the C compiler knows (absent ones left out), by compiling and running.

    A macro is tested with ``#ifdef``; an enum member (FSCONFIG_*) the headers lack is dropped when the
    compiler names it undeclared, and the program compiled again.
    """
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to read the kernel headers with")
    wanted = [*names, *extra]
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        while True:
            (work / "consts.c").write_text(_program(wanted, extra))
            built = subprocess.run(
                [cc, "-o", work / "consts", work / "consts.c"], check=False, capture_output=True, text=True
            )
            if built.returncode == 0:
                break
            undeclared = set(re.findall(r"‘(\w+)’ undeclared|'(\w+)' undeclared", built.stderr))
            missing = {a or b for a, b in undeclared} & set(wanted)
            assert missing, built.stderr
            wanted = [n for n in wanted if n not in missing]
        out = subprocess.run([work / "consts"], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def _program(names: list[str], extra: dict[str, str]) -> str:
    lines = ["#define _GNU_SOURCE", *(f"#include <{h}>" for h in HEADERS), "#include <stdio.h>"]
    lines += [f"#define {k} {v}" for k, v in extra.items()]
    lines.append("int main(void) {")
    for name in names:
        guard = next((g for prefix, g in ENUM_GUARD.items() if name.startswith(prefix + "_")), name)
        lines += [f"#ifdef {guard}", f'printf("{name} %llu\\n", (unsigned long long)({name}));', "#endif"]
    lines += ["return 0;", "}"]
    return "\n".join(lines) + "\n"


def test_flags_match_the_kernel_headers() -> None:
    ours = python_constants()
    theirs = c_values(sorted(ours), {})
    mismatched = {
        py: (value, theirs[c])
        for c, (py, value) in ours.items()
        if c in theirs and theirs[c] != value & 0xFFFFFFFFFFFFFFFF
    }
    assert mismatched == {}, "flags.py name: (flags.py value, header value)"
    compared = {py.split(".")[0] for c, (py, _) in ours.items() if c in theirs}
    # every group the installed headers have had for years is compared, not only some
    assert {
        "MS",
        "MNT",
        "AT",
        "OPEN_TREE",
        "MOVE_MOUNT",
        "MOUNT_ATTR",
        "FSCONFIG",
        "FSPICK",
        "STATX",
        "RESOLVE",
        "AT_FDCWD",
        "CLONE_NEWNS",
        "FAN_INIT",
        "FAN_MARK_ADD",
    } <= compared


def test_cext_copies_of_kernel_flags_match_flags_py() -> None:
    defines = _statmount_c_defines()
    assert defines, "statmount.c's MS_*_/SB_*_ copies were not found"
    values = c_values([], defines)
    for name, value in values.items():
        base = name.rstrip("_")
        want = getattr(flags, base, None)
        if want is None:  # SB_SYNCHRONOUS and friends share MS_'s bits (include/linux/fs.h)
            want = flags.MS[base.removeprefix("SB_").removeprefix("MS_")]
        assert int(want) == value, name
