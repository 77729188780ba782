"""GFD's lock-release flags: Go durations, and the leader-election durations client-go accepts.

GFD declares them with Go's ``flag.Duration`` (``time.ParseDuration``), and its lock-release controller
hands them to client-go's leader election, which refuses a lease not longer than the renew deadline or
a renew deadline not longer than 1.2 retry periods (GFD then dies at start). The driver and
``python -m csi.lockrelease`` refuse the same at start, with exit status 2 and the flag's name.
"""

from __future__ import annotations

import argparse

import pytest

from csi.lockrelease import __main__ as standalone
from csi.lockrelease.flags import duration
from csi.main import main


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60.0),
        ("1m30s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h0m1s", 3601.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("2.s", 2.0),
        ("300ms", 0.3),
        ("1s500ms", 1.5),
        ("250us", 250e-6),
        ("250\u00b5s", 250e-6),  # MICRO SIGN
        ("250\u03bcs", 250e-6),  # GREEK SMALL LETTER MU
        ("1000000000ns", 1.0),
        ("10m10m", 1200.0),  # Go adds repeated units too
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "60",
        "",
        "s",
        "1x",
        "1d",
        "1 m",
        " 60s",
        "60s ",
        "1m-30s",
        "-5s",
        "+5s",
        "1.2.3s",
        "one minute",
        "1M",
        "5S",
    ],
)
def test_what_go_refuses_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        duration(text)


@pytest.mark.parametrize("text", ["0s", "0h0m0s", "0.0ms"])
def test_a_zero_duration_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must be positive"):
        duration(text)


@pytest.mark.parametrize(
    "flag",
    ["--lock-release-sync-period", "--leader-election-lease-duration", "--leader-election-retry-period"],
)
@pytest.mark.parametrize("command", [main, standalone.main], ids=["driver", "standalone"])
def test_a_bad_duration_stops_either_command_naming_the_flag(
    command: object, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        command([flag, "90"])  # type: ignore[operator]
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: '90' is not a duration" in err


NODE = ["--cloud", "emulator", "--mode", "node", "--feature-lock-release"]


@pytest.mark.parametrize(
    ("durations", "message"),
    [
        (
            ["--leader-election-lease-duration", "10s"],
            "--leader-election-lease-duration must be greater than",
        ),
        (
            ["--leader-election-renew-deadline", "20s"],
            "--leader-election-lease-duration must be greater than",
        ),
        (
            ["--leader-election-retry-period", "9s"],
            "--leader-election-renew-deadline must be greater than 1.2 times",
        ),
    ],
)
@pytest.mark.parametrize("command", ["driver", "standalone"])
def test_leader_election_durations_client_go_refuses_stop_the_start(
    command: str, durations: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defaults 15s/10s/5s; each case breaks one of client-go's two rules."""
    with pytest.raises(SystemExit) as info:
        if command == "driver":
            main([*NODE, *durations])
        else:
            standalone.main(durations)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [["--feature-lock-release-standalone"], ["--mode", "controller"]],
    ids=["standalone", "controller"],
)
def test_where_nothing_elects_the_durations_are_not_checked(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A standalone node, or a controller, runs no elector: the start goes on to the next check (a
    bad --gke-cluster-name), which a refused lease duration would have preceded."""
    with pytest.raises(SystemExit) as info:
        main([*NODE, *extra, "--leader-election-lease-duration", "1s", "--gke-cluster-name", "Bad"])
    assert info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == (
        "filestore-csi-driver: error: --gke-cluster-name 'Bad' is not a label value (at most 63 [a-z0-9_-])"
    )


def test_standalone_without_the_feature_is_a_warned_no_op(caplog: pytest.LogCaptureFixture) -> None:
    """GFD ignores --feature-lock-release-standalone alone; so do we, but say so."""
    with pytest.raises(SystemExit):
        main(["--cloud", "emulator", "--feature-lock-release-standalone", "--gke-cluster-name", "Bad"])
    assert "--feature-lock-release-standalone does nothing without --feature-lock-release" in caplog.text
