"""mount(8) option words → mount(2) flags, data and mount_setattr attributes."""

from __future__ import annotations

import errno
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mountkit.errors import InvalidOptionError
from mountkit.flags import MOUNT_ATTR, MOUNT_ATTR_ATIME_MASK, MS
from mountkit.options import (
    FLAG_WORDS,
    PROPAGATION_WORDS,
    USERSPACE_WORDS,
    ParsedOptions,
    flags_to_options,
    parse_options,
)

SECRET = "hunter2-Zq9"

# The spec, written as bit assignments rather than (set, clear) masks: each word
# makes the named bits true (set) or false (explicitly cleared).
SPEC: dict[str, dict[MS, bool]] = {
    "ro": {MS.RDONLY: True},
    "rw": {MS.RDONLY: False},
    "nosuid": {MS.NOSUID: True},
    "suid": {MS.NOSUID: False},
    "nodev": {MS.NODEV: True},
    "dev": {MS.NODEV: False},
    "noexec": {MS.NOEXEC: True},
    "exec": {MS.NOEXEC: False},
    "sync": {MS.SYNCHRONOUS: True},
    "async": {MS.SYNCHRONOUS: False},
    "dirsync": {MS.DIRSYNC: True},
    "remount": {MS.REMOUNT: True},
    "bind": {MS.BIND: True},
    "rbind": {MS.BIND: True, MS.REC: True},
    "move": {MS.MOVE: True},
    "noatime": {MS.NOATIME: True, MS.RELATIME: False, MS.STRICTATIME: False},
    "atime": {MS.NOATIME: False},
    "relatime": {MS.RELATIME: True, MS.NOATIME: False, MS.STRICTATIME: False},
    "norelatime": {MS.RELATIME: False},
    "strictatime": {MS.STRICTATIME: True, MS.NOATIME: False, MS.RELATIME: False},
    "nostrictatime": {MS.STRICTATIME: False},
    "nodiratime": {MS.NODIRATIME: True},
    "diratime": {MS.NODIRATIME: False},
    "lazytime": {MS.LAZYTIME: True},
    "nolazytime": {MS.LAZYTIME: False},
    "mand": {MS.MANDLOCK: True},
    "nomand": {MS.MANDLOCK: False},
    "silent": {MS.SILENT: True},
    "loud": {MS.SILENT: False},
    "nosymfollow": {MS.NOSYMFOLLOW: True},
    "symfollow": {MS.NOSYMFOLLOW: False},
    "iversion": {MS.I_VERSION: True},
    "noiversion": {MS.I_VERSION: False},
    "defaults": {},
}
_BASE_PROPAGATION = {
    "shared": MS.SHARED,
    "private": MS.PRIVATE,
    "slave": MS.SLAVE,
    "unbindable": MS.UNBINDABLE,
}
PROPAGATION = _BASE_PROPAGATION | {f"r{word}": flag | MS.REC for word, flag in _BASE_PROPAGATION.items()}
USERSPACE = [
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "comment=systemd.automount",
    "x-systemd.device-timeout=10",
    "X-mount.mkdir",
]
DATA = ["vers=3", "size=10m", "mode=0755", "uid=1000", "user=alice", "context=system_u:object_r:t:s0"]


def reference_fold(words: list[str]) -> ParsedOptions:
    """The straightforward reading of the spec: bit by bit, the last word wins."""
    state: dict[MS, bool] = {}
    propagation = MS(0)
    data: list[str] = []
    for word in words:
        if word in SPEC:
            state.update(SPEC[word])
        elif word in PROPAGATION:
            propagation = PROPAGATION[word]
        elif word not in USERSPACE:
            data.append(word)
    flags = clear = MS(0)
    for bit, value in state.items():
        if value:
            flags |= bit
        else:
            clear |= bit
    return ParsedOptions(flags, clear, propagation, tuple(data))


def test_the_module_knows_exactly_the_specified_words() -> None:
    assert set(FLAG_WORDS) == set(SPEC)
    assert PROPAGATION_WORDS == PROPAGATION
    assert USERSPACE_WORDS <= set(USERSPACE)


@pytest.mark.parametrize("word", sorted(SPEC))
def test_each_flag_word(word: str) -> None:
    assert parse_options([word]) == reference_fold([word])


@pytest.mark.parametrize("word", sorted(PROPAGATION))
def test_each_propagation_word(word: str) -> None:
    parsed = parse_options(word)
    assert (parsed.flags, parsed.clear, parsed.propagation, parsed.data) == (0, 0, PROPAGATION[word], ())


def test_later_words_override_earlier_ones() -> None:
    assert parse_options("ro,rw") == ParsedOptions(clear=MS.RDONLY)
    assert parse_options("rw,ro") == ParsedOptions(flags=MS.RDONLY)
    assert parse_options("nosuid,suid,nosuid").flags == MS.NOSUID
    assert parse_options("shared,rslave").propagation == MS.SLAVE | MS.REC


def test_atime_modes_exclude_each_other() -> None:
    assert parse_options("strictatime,noatime").flags == MS.NOATIME
    assert parse_options("noatime,relatime").flags == MS.RELATIME
    assert parse_options("relatime,strictatime").clear == MS.NOATIME | MS.RELATIME


def test_userspace_words_never_reach_the_kernel_and_data_keeps_its_order() -> None:
    parsed = parse_options(["defaults", *USERSPACE, "nosuid", *DATA, "ro"])
    assert parsed.flags == MS.NOSUID | MS.RDONLY
    assert parsed.data == tuple(DATA)
    assert parsed.data_string() == ",".join(DATA)


@pytest.mark.parametrize("empty", [None, "", [], ()])
def test_no_options(empty: list[str] | str | None) -> None:
    assert parse_options(empty) == ParsedOptions()
    assert parse_options(empty).data_string() is None


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ("rw,,ro", "option #2 '': empty"),
        ("ro,", "option #2 '': empty"),
        (["ro", ""], "option #2 '': empty"),
        (["ro", "a,b"], "option #2 'a,b': contains a comma"),
        (["size=1\0"], "option #1 'size=...': contains NUL"),
        ("ro,size=1\nrw", "option #2 'size=...': contains a newline"),
        (["x\r"], "contains a newline"),
        ([b"ro"], "option #1 'bytes': not a string"),
        (b"ro", "not bytes"),
    ],
)
def test_malformed_items_are_rejected_by_name(options: object, needle: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        parse_options(options)  # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL
    assert needle in str(info.value)


def test_a_long_bad_item_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidOptionError) as info:
        parse_options(["x" * 1000 + "\0"])
    assert len(str(info.value)) < 200


SENSITIVE_ERRORS = [
    [""],
    ["a", f"password={SECRET},x"],
    [f"password={SECRET}\0"],
    [f"key={SECRET}\n"],
    f"pass={SECRET},",
    [f"pass={SECRET}".encode()],
]


@pytest.mark.parametrize("sensitive", SENSITIVE_ERRORS)
def test_errors_about_sensitive_items_never_show_them(sensitive: object) -> None:
    with pytest.raises(InvalidOptionError) as info:
        parse_options("ro", sensitive=sensitive)  # type: ignore[arg-type]
    exc = info.value
    shown = [str(exc), repr(exc), repr(exc.args), str(exc.detail), pickle.dumps(exc).decode("latin-1")]
    assert not [text for text in shown if SECRET in text or "hunter" in text]
    assert "sensitive option #" in str(exc)


def test_sensitive_options_reach_only_the_data_string() -> None:
    parsed = parse_options("ro,vers=3", sensitive=[f"password={SECRET}", SECRET])
    assert parsed.sensitive == (f"password={SECRET}", SECRET)
    assert parsed.data_string() == f"vers=3,password={SECRET},{SECRET}"
    assert parsed.redacted() == "ro,vers=3,password=<redacted>,<redacted>"
    for text in (repr(parsed), str(parsed), f"{parsed}", parsed.redacted()):
        assert SECRET not in text
    assert "sensitive=<2 redacted>" in repr(parsed)


def test_sensitive_words_are_data_even_when_they_look_like_flags() -> None:
    parsed = parse_options(None, sensitive="ro,noauto")
    assert (parsed.flags, parsed.sensitive) == (0, ("ro", "noauto"))


#: what "ro,nosuid,nodev,noexec,nosymfollow,nodiratime" sets and its opposites clear
_PER_MOUNT_FLAGS = (
    MOUNT_ATTR.RDONLY
    | MOUNT_ATTR.NOSUID
    | MOUNT_ATTR.NODEV
    | MOUNT_ATTR.NOEXEC
    | MOUNT_ATTR.NOSYMFOLLOW
    | MOUNT_ATTR.NODIRATIME
)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("", (0, 0)),
        (
            "ro,nosuid,nodev,noexec,nosymfollow,nodiratime",
            (_PER_MOUNT_FLAGS, 0),
        ),
        (
            "rw,suid,dev,exec,symfollow,diratime",
            (0, _PER_MOUNT_FLAGS),
        ),
        ("noatime", (MOUNT_ATTR.NOATIME, MOUNT_ATTR_ATIME_MASK)),
        ("strictatime", (MOUNT_ATTR.STRICTATIME, MOUNT_ATTR_ATIME_MASK)),
        ("relatime", (MOUNT_ATTR.RELATIME, MOUNT_ATTR_ATIME_MASK)),
        ("noatime,atime", (MOUNT_ATTR.RELATIME, MOUNT_ATTR_ATIME_MASK)),
        ("ro,noatime,rw", (MOUNT_ATTR.NOATIME, MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR.RDONLY)),
        ("sync,lazytime,mand,dirsync,iversion,silent,bind,rshared,size=1", (0, 0)),
    ],
)
def test_mount_attr(options: str, expected: tuple[int, int]) -> None:
    assert parse_options(options).mount_attr() == expected


def test_flags_to_options_restates_mountinfo_flags() -> None:
    parsed = parse_options("rw,nosuid,nodev,relatime")
    assert flags_to_options(parsed.flags) == ["nosuid", "nodev", "relatime"]
    assert flags_to_options(MS.BIND | MS.REC | MS.RDONLY) == ["rbind", "ro"]
    assert flags_to_options(parsed.flags, parsed.clear) == ["rw", "nosuid", "nodev", "relatime"]


KNOWN = st.sampled_from(sorted(SPEC) + sorted(PROPAGATION) + USERSPACE + DATA)


@given(st.lists(KNOWN, max_size=30))
def test_any_sequence_of_known_words_folds_like_the_reference(words: list[str]) -> None:
    parsed = parse_options(words)
    assert parsed == reference_fold(words)
    assert parse_options(",".join(words)) == parsed
    assert not parsed.flags & parsed.clear


@given(st.lists(KNOWN, max_size=30), st.lists(st.sampled_from(DATA), max_size=3))
def test_round_trips(words: list[str], secrets: list[str]) -> None:
    parsed = parse_options(words, sensitive=secrets)
    again = parse_options(
        flags_to_options(parsed.flags, parsed.clear, parsed.propagation) + list(parsed.data),
        sensitive=parsed.sensitive,
    )
    assert again == parsed
    assert parse_options(parsed.redacted()).flags == parsed.flags
    kernel_data = parsed.data_string()
    assert parse_options(kernel_data).data == parsed.data + parsed.sensitive


@given(st.text())
def test_arbitrary_text_only_ever_raises_invalid_option(text: str) -> None:
    try:
        parsed = parse_options(text)
    except InvalidOptionError:
        return
    assert all(item and not set(item) & set(",\0\n") for item in parsed.data)
    assert (
        parse_options(flags_to_options(parsed.flags, parsed.clear, parsed.propagation)).flags == parsed.flags
    )


@given(st.lists(st.text(max_size=20), max_size=5), st.text(max_size=20), st.text(max_size=20))
def test_a_planted_secret_never_leaks(items: list[str], before: str, after: str) -> None:
    secret = before + SECRET + after
    try:
        parsed = parse_options(items, sensitive=["a=b", f"password={secret}"])
    except InvalidOptionError as exc:
        assert SECRET not in str(exc) + repr(exc)
        return
    assert SECRET not in repr(parsed) + str(parsed) + parsed.redacted()
    assert SECRET in (parsed.data_string() or "")
