"""The judge of the privileged suite's run inside the image (tests/image): which runs pass, which fail."""

from __future__ import annotations

import pytest

from tests.support.kernelskips import (
    NO_FANOTIFY_MOUNT_EVENTS,
    NO_STATMOUNT,
    RunSummary,
    is_kernel_skip,
)


def _out(summary: str, *skips: str) -> str:
    """pytest's output as tools/image.sh test prints it (``-rs``)."""
    lines = ["== test", "........s.s..                                                [100%]"]
    if skips:
        lines += ["=========================== short test summary info ============================", *skips]
    lines += [f"============= {summary} in 182.67s (0:03:02) =============", "== test: 190 s"]
    return "\n".join(lines) + "\n"


#: what the CI printed before the no-NFS-client case ran in the container
CI_BEFORE = _out(
    "97 passed, 2 skipped",
    "SKIPPED [2] tests/privileged/test_errors.py:113: inside the image's container nfs4 gives ENETUNREACH, "
    "not ENODEV (open, see the closing note)",
)


def test_the_skip_ci_counted_as_a_pass_now_fails() -> None:
    run = RunSummary.parse(CI_BEFORE)
    assert run.counts == {"passed": 97, "skipped": 2}
    reason = CI_BEFORE.split("test_errors.py:113: ")[1].splitlines()[0]
    assert run.problems() == [f"skip not for a kernel reason: tests/privileged/test_errors.py:113: {reason}"]


def test_all_passed_is_a_pass() -> None:
    assert RunSummary.parse(_out("99 passed")).problems() == []


def test_the_summary_of_a_quiet_run_has_no_bars() -> None:
    quiet = CI_BEFORE.replace(
        "============= 97 passed, 2 skipped in 182.67s (0:03:02) =============",
        "97 passed, 2 skipped in 5.36s",
    )
    assert RunSummary.parse(quiet).counts == {"passed": 97, "skipped": 2}


def test_kernel_skips_are_accepted_and_listed() -> None:
    out = _out(
        "96 passed, 3 skipped",
        f"SKIPPED [2] tests/privileged/test_table.py:145: {NO_STATMOUNT}",
        f"SKIPPED [1] tests/support/watchutil.py:38: {NO_FANOTIFY_MOUNT_EVENTS}: fanotify_init: Invalid argument",  # noqa: E501 (a pytest line, verbatim)
    )
    run = RunSummary.parse(out)
    assert run.problems() == []
    assert [(s.count, s.where) for s in run.skips] == [
        (2, "tests/privileged/test_table.py:145"),
        (1, "tests/support/watchutil.py:38"),
    ]


@pytest.mark.parametrize(
    ("summary", "skips", "problem"),
    [
        ("1 failed, 98 passed", (), "1 failed"),
        ("98 passed, 1 error", (), "1 error"),
        ("99 passed, 1 warning", (), "1 warning"),
        ("1 xpassed, 98 passed", (), "1 xpassed"),
        ("2 skipped", (f"SKIPPED [2] tests/privileged/test_table.py:145: {NO_STATMOUNT}",), "nothing passed"),
        (
            "98 passed, 1 skipped",
            ("SKIPPED [1] tests/privileged/test_node.py:27: needs util-linux nsenter and findmnt",),
            "skip not for a kernel reason: tests/privileged/test_node.py:27: needs util-linux nsenter and findmnt",  # noqa: E501 (a pytest line, verbatim)
        ),
        (
            "98 passed, 1 skipped",
            (f"SKIPPED [1] tests/privileged/test_table.py:145: {NO_STATMOUNT} or whatever",),
            f"skip not for a kernel reason: tests/privileged/test_table.py:145: {NO_STATMOUNT} or whatever",
        ),
    ],
)
def test_anything_else_fails(summary: str, skips: tuple[str, ...], problem: str) -> None:
    assert problem in RunSummary.parse(_out(summary, *skips)).problems()


def test_a_run_that_cannot_be_judged_is_an_error() -> None:
    with pytest.raises(ValueError, match="no pytest summary line"):
        RunSummary.parse("== test\nError: runc create failed\n")
    with pytest.raises(ValueError, match="2 skipped but 0 SKIPPED lines"):
        RunSummary.parse(_out("97 passed, 2 skipped"))


def test_a_kernel_reason_matches_whole_or_with_a_detail() -> None:
    assert is_kernel_skip(NO_STATMOUNT)
    assert is_kernel_skip(f"{NO_FANOTIFY_MOUNT_EVENTS}: EINVAL")
    assert not is_kernel_skip(f"{NO_FANOTIFY_MOUNT_EVENTS} EINVAL")
    assert not is_kernel_skip("needs /dev/fuse")
