"""NFS source parsing and the mount(2) data strings built without mount.nfs."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mountkit import nfs
from mountkit.errors import InvalidOptionError, MountError
from mountkit.nfs import (
    ClientAddress,
    NfsMountSpec,
    NfsSource,
    Resolver,
    build_mount,
    parse_mount,
    parse_source,
    resolve_host,
)
from mountkit.nfsroute import client_address

SOURCE = "127.0.0.1:/srv/nfs"


def no_resolve(host: str) -> str:
    raise AssertionError(f"resolved {host!r}, which is already an address")


def no_clientaddr(server: str) -> str:
    raise AssertionError(f"asked a client address for {server!r}, which this version does not need")


def loopback_client(server: str) -> str:
    return "::1" if ":" in server else "127.0.0.1"


def build(
    source: str | NfsSource,
    options: Iterable[str] | str = (),
    resolve: Resolver = no_resolve,
    clientaddr: ClientAddress | str = loopback_client,
) -> NfsMountSpec:
    """build_mount with fakes: no name lookups, no routing table."""
    return build_mount(source, options, resolve=resolve, clientaddr=clientaddr)


@pytest.mark.parametrize(
    ("options", "fstype", "data"),
    [
        (["vers=3", "nolock"], "nfs", "vers=3,addr=127.0.0.1,nolock"),
        (["vers=3", "proto=tcp", "mountproto=tcp"], "nfs", "vers=3,addr=127.0.0.1,proto=tcp,mountproto=tcp"),
        (["vers=3"], "nfs", "vers=3,addr=127.0.0.1"),
        ([], "nfs", "vers=3,addr=127.0.0.1"),
        (["vers=4.0"], "nfs4", "vers=4.0,addr=127.0.0.1,clientaddr=127.0.0.1"),
        (["vers=4.1"], "nfs4", "vers=4.1,addr=127.0.0.1,clientaddr=127.0.0.1"),
        (["vers=4.2"], "nfs4", "vers=4.2,addr=127.0.0.1"),
        (["nfsvers=4"], "nfs4", "vers=4,addr=127.0.0.1,clientaddr=127.0.0.1"),
        (["vers=4", "minorversion=2"], "nfs4", "vers=4.2,addr=127.0.0.1"),
        (
            ["vers=4.1", "minorversion=1", "hard", "timeo=600"],
            "nfs4",
            "vers=4.1,addr=127.0.0.1,clientaddr=127.0.0.1,hard,timeo=600",
        ),
        (["vers=4.2", "vers=3"], "nfs", "vers=3,addr=127.0.0.1"),
    ],
)
def test_the_data_strings_proven_on_a_real_kernel(options: list[str], fstype: str, data: str) -> None:
    assert build(SOURCE, options) == NfsMountSpec(SOURCE, fstype, data)


def test_versions_without_callbacks_never_ask_for_a_client_address() -> None:
    assert build(SOURCE, "vers=3", clientaddr=no_clientaddr).data == "vers=3,addr=127.0.0.1"
    assert build(SOURCE, "vers=4.2", clientaddr=no_clientaddr).data == "vers=4.2,addr=127.0.0.1"


def test_clientaddr_can_be_passed_as_a_fixed_address() -> None:
    assert (
        build(SOURCE, ["vers=4.0"], clientaddr="10.0.0.7").data
        == "vers=4.0,addr=127.0.0.1,clientaddr=10.0.0.7"
    )


def test_clientaddr_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(InvalidOptionError, match="client address"):
        build(SOURCE, ["vers=4.0"], clientaddr="127.0.0.1,sec=none")


def test_ipv6_server_gets_brackets_and_ipv6_transports() -> None:
    spec = build("[fd00::1]:/export", ["vers=4.1", "proto=tcp"], clientaddr=lambda server: "fd00::2")
    assert spec == NfsMountSpec(
        "[fd00::1]:/export", "nfs4", "vers=4.1,addr=fd00::1,clientaddr=fd00::2,proto=tcp6"
    )
    spec = build("[fd00::1]:/export", ["proto=udp", "mountproto=tcp"])
    assert spec.data == "vers=3,addr=fd00::1,proto=udp6,mountproto=tcp6"
    assert build("[fd00:0::1]:/e", ["proto=tcp6"]).data == "vers=3,addr=fd00::1,proto=tcp6"


@pytest.mark.parametrize(
    ("options", "fstype"),
    [([], "nfs"), (["vers=4"], "nfs4"), (["vers=4.0"], "nfs4"), (["nfsvers=4", "minorversion=1"], "nfs4")],
)
def test_parse_mount_names_the_filesystem_before_any_lookup(
    monkeypatch: pytest.MonkeyPatch, options: list[str], fstype: str
) -> None:
    """What the mounter asks the kernel for before the name and route lookups a v4.0/4.1 host name needs."""

    def no_network(*args: object, **kw: object) -> object:
        raise AssertionError("parse_mount looked something up")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(nfs, "_route_lookup", no_network)
    request = parse_mount("filestore.invalid:/share", options)
    assert (request.fstype, request.host, request.export) == (fstype, "filestore.invalid", "/share")


def test_parse_mount_refuses_v3_options_for_v4_before_any_lookup() -> None:
    with pytest.raises(InvalidOptionError, match="mountport is for NFSv3 only, not vers=4.1"):
        parse_mount("filestore.invalid:/share", ["vers=4.1", "mountport=20048"])


def test_host_names_resolve_through_the_injected_resolver() -> None:
    asked: list[str] = []

    def resolve(host: str) -> str:
        asked.append(host)
        return "192.0.2.10"

    spec = build("filer.example.com:/vol1", ["vers=4.0"], resolve=resolve, clientaddr="192.0.2.1")
    assert asked == ["filer.example.com"]
    assert spec == NfsMountSpec("192.0.2.10:/vol1", "nfs4", "vers=4.0,addr=192.0.2.10,clientaddr=192.0.2.1")
    v6 = build("filer:/vol1", resolve=lambda host: "fd00::5")
    assert (v6.source, v6.data) == ("[fd00::5]:/vol1", "vers=3,addr=fd00::5")


def test_a_resolver_cannot_smuggle_options() -> None:
    with pytest.raises(InvalidOptionError, match="resolved host"):
        build("filer:/vol1", resolve=lambda host: "192.0.2.10,sec=none")


def test_resolve_host_prefers_ipv4(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::5", 0, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.10", 0)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    assert resolve_host("filer") == "192.0.2.10"
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers[:1])
    assert resolve_host("filer") == "fd00::5"


def test_resolve_host_failure_is_a_mount_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(MountError) as info:
        resolve_host("nowhere.invalid")
    assert info.value.errno == errno.EHOSTUNREACH
    assert "nowhere.invalid" in str(info.value)


def test_resolve_host_localhost() -> None:
    assert resolve_host("localhost") == "127.0.0.1"


VALID_OPTIONS = [
    "proto=tcp",
    "proto=udp",
    "proto=rdma",
    "port=2049",
    "port=0",
    "mountport=20048",
    "mountproto=udp",
    "mountvers=3",
    "timeo=1",
    "retrans=2",
    "hard",
    "soft",
    "softerr",
    "nconnect=16",
    "max_connect=1",
    "sec=sys",
    "sec=krb5",
    "sec=krb5i",
    "sec=krb5p",
    "sec=none",
    "sec=krb5p:krb5i",
    "lock",
    "nolock",
    "local_lock=none",
    "local_lock=flock",
    "lookupcache=all",
    "lookupcache=none",
    "lookupcache=pos",
    "lookupcache=positive",
    "rsize=1048576",
    "wsize=65536",
    "ac",
    "noac",
    "actimeo=30",
    "acregmin=3",
    "acregmax=60",
    "acdirmin=30",
    "acdirmax=60",
    "cto",
    "nocto",
    "resvport",
    "noresvport",
    "sharecache",
    "nosharecache",
    "rdirplus",
    "nordirplus",
    "fsc",
    "nofsc",
]


@pytest.mark.parametrize("option", VALID_OPTIONS)
def test_each_known_option_passes_through(option: str) -> None:
    assert build(SOURCE, ["vers=3", option]).data == f"vers=3,addr=127.0.0.1,{option}"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["addr=10.0.0.1"], "set by mountkit"),
        (["clientaddr=10.0.0.1"], "set by mountkit"),
        (["mountaddr=10.0.0.1"], "set by mountkit"),
        (["ro"], "unknown NFS option"),
        (["vers=3", "bogus=1"], "unknown NFS option"),
        (["vers=2"], "vers must be one of"),
        (["vers=4.3"], "vers must be one of"),
        (["nfsvers=3.0"], "vers must be one of"),
        (["minorversion=1"], "minorversion needs vers=4"),
        (["vers=4.1", "minorversion=2"], "does not fit"),
        (["vers=4", "minorversion=3"], "number in 0..2"),
        (["vers=4.1", "mountport=20048"], "NFSv3 only"),
        (["vers=4.2", "mountproto=tcp"], "NFSv3 only"),
        (["vers=4", "mountvers=3"], "NFSv3 only"),
        (["vers=4.1", "proto=udp"], "NFSv4 needs tcp or rdma"),
        (["proto=tcp6"], "needs an IPv6 server"),
        (["mountproto=udp6"], "needs an IPv6 server"),
        (["proto=sctp"], "proto must be one of"),
        (["sec=krb5:ntlm"], "sec must be one of"),
        (["sec=krb5:"], "sec must be one of"),
        (["lookupcache=some"], "lookupcache must be one of"),
        (["local_lock=maybe"], "local_lock must be one of"),
        (["timeo=0"], "number in 1.."),
        (["timeo=-1"], "number in"),
        (["timeo=1e3"], "number in"),
        (["timeo=\u0661\u0662"], "number in"),
        (["timeo=99999999999"], "number in"),
        (["port=65536"], "number in 0..65535"),
        (["nconnect=17"], "number in 1..16"),
        (["rsize=512"], "number in 1024.."),
        (["hard=1"], "takes no value"),
        (["noac=0"], "takes no value"),
        (["timeo"], "needs a value"),
        (["timeo="], "separator"),
        (["sec=sys=krb5"], "separator"),
        (["sec=sys krb5"], "separator"),
        (["sec=sys\tx"], "separator"),
        (["sec=\x7f"], "separator"),
        (["timeo=600,sec=none"], "contains a comma"),
        (["sec=sys\0"], "contains NUL"),
        (["sec=sys\nro"], "contains a newline"),
        ("hard,,soft", "empty"),
    ],
)
def test_rejected_options(options: list[str] | str, needle: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        build(SOURCE, options)
    assert info.value.errno == errno.EINVAL
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("filer:/vol1", NfsSource("filer", "/vol1")),
        ("filer.example.com.:/a/b:c", NfsSource("filer.example.com.", "/a/b:c")),
        ("10.0.0.2:/", NfsSource("10.0.0.2", "/")),
        ("[fd00::1]:/export", NfsSource("fd00::1", "/export")),
        ("[fe80::1%eth0]:/export", NfsSource("fe80::1%eth0", "/export")),
        ("[::ffff:10.0.0.1]:/x", NfsSource("::ffff:10.0.0.1", "/x")),
    ],
)
def test_parse_source(text: str, source: NfsSource) -> None:
    assert parse_source(text) == source


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (":/export", "empty host"),
        ("filer", "expected host:/export"),
        ("filer:export", "absolute"),
        ("filer:", "absolute"),
        ("fd00::1:/export", "absolute"),
        ("[fd00::1:/export", "bad brackets"),
        ("[fd00::1]/export", "bad brackets"),
        ("fd00]:/export", "bad brackets"),
        ("[filer]:/export", "only an IPv6 address"),
        ("[10.0.0.1]:/export", "only an IPv6 address"),
        ("[]:/export", "only an IPv6 address"),
        ("-filer:/export", "not a host name"),
        ("fil_er:/export", "not a host name"),
        ("filer:/a,b", "comma"),
        ("filer:/a b", "whitespace"),
        ("filer:/a\0", "control"),
        ("filer:/a\nb", "control"),
        ("filer:/a\x1b", "control"),
        ("filer:/a\u2028", "control"),
    ],
)
def test_parse_source_rejects(text: str, needle: str) -> None:
    with pytest.raises(InvalidOptionError, match=needle):
        parse_source(text)


def test_parse_source_rejects_non_strings() -> None:
    with pytest.raises(InvalidOptionError, match="must be a str"):
        parse_source(b"filer:/x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "text"),
    [
        (NfsSource("10.0.0.2", "/vol1"), "10.0.0.2:/vol1"),
        (NfsSource("fd00::1", "/export"), "[fd00::1]:/export"),
        (NfsSource("fe80::1%eth0", "/export"), "[fe80::1%eth0]:/export"),
        (NfsSource("filer.example.com", "/a/b:c"), "filer.example.com:/a/b:c"),
    ],
)
def test_a_structured_source_spells_itself_as_parse_source_reads_it(source: NfsSource, text: str) -> None:
    assert str(source) == text
    assert parse_source(text) == source
    assert nfs.source_of(source) is source

    def resolve(host: str) -> str:
        return "10.0.0.9"

    assert build(source, ["vers=4.2"], resolve).source == build(text, ["vers=4.2"], resolve).source


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        (NfsSource("", "/x"), "empty host"),
        (NfsSource("filer", "x"), "absolute"),
        (NfsSource("10.0.0.1,addr=10.9.9.9", "/x"), "comma"),
        (NfsSource("[fd00::1]", "/x"), "only an IPv6 address"),
        (NfsSource("fd00::zz", "/x"), "only an IPv6 address"),
        (NfsSource("filer", "/a b"), "whitespace"),
    ],
)
def test_a_structured_source_is_checked_as_text_is(source: NfsSource, needle: str) -> None:
    with pytest.raises(InvalidOptionError, match=needle):
        nfs.source_of(source)
    with pytest.raises(InvalidOptionError, match=needle):
        build(source)


@pytest.mark.parametrize(
    ("options", "versions"),
    [
        ([], []),
        (["hard", "vers=3"], ["3"]),
        ("nfsvers=4.1,hard", ["4.1"]),
        (["vers=3", "nfsvers=4.2", " vers = 4 "], ["3", "4.2", "4"]),
        (["vers", "nolock", "versus=1"], []),
    ],
)
def test_versions_reads_both_spellings_in_order(options: list[str] | str, versions: list[str]) -> None:
    assert nfs.versions(options) == versions


@pytest.mark.parametrize(
    ("version", "fstype"), [("3", "nfs"), ("4", "nfs4"), ("4.0", "nfs4"), ("4.2", "nfs4")]
)
def test_the_fstype_and_option_of_a_version_are_what_build_mount_makes(version: str, fstype: str) -> None:
    assert nfs.fstype(version) == fstype
    spec = build(SOURCE, [nfs.version_option(version)])
    assert spec.fstype == fstype and spec.data.startswith(f"vers={version},")
    assert fstype in nfs.NFS_FAMILY


@pytest.mark.parametrize("option", sorted(nfs.SET_BY_MOUNTKIT))
def test_the_options_set_by_mountkit_are_refused_from_a_caller(option: str) -> None:
    with pytest.raises(InvalidOptionError, match="set by mountkit"):
        build(SOURCE, [f"{option}=10.9.9.9"])


def test_other_filesystems_refuse_a_structured_source() -> None:
    assert nfs.other_source("tmpfs", "tmpfs", "/mnt") == "tmpfs"
    with pytest.raises(InvalidOptionError, match="needs fstype nfs or nfs4"):
        nfs.other_source(NfsSource("10.0.0.2", "/x"), "tmpfs", "/mnt")


def test_client_address_for_ipv4_loopback() -> None:
    assert client_address("127.0.0.1") == "127.0.0.1"


@pytest.mark.skipif(not os.path.exists("/proc/net/if_inet6"), reason="IPv6 is disabled in this kernel")
def test_client_address_for_ipv6_loopback() -> None:
    assert client_address("::1") == "::1"


def test_client_address_needs_an_address() -> None:
    with pytest.raises(InvalidOptionError):
        client_address("localhost")


def test_the_default_client_address_is_used_for_v4_0_on_loopback() -> None:
    assert build_mount(SOURCE, ["vers=4.0"]).data == "vers=4.0,addr=127.0.0.1,clientaddr=127.0.0.1"


@given(st.text())
def test_parse_source_only_ever_raises_invalid_option(text: str) -> None:
    try:
        source = parse_source(text)
    except InvalidOptionError:
        return
    assert source.host and source.export.startswith("/")
    assert not set(source.host + source.export) & set(", \t\n\0")


OPTION_NAMES = sorted({*nfs._OPTIONS, "nfsvers", "addr", "ro", "bogus"})


@given(st.lists(st.tuples(st.sampled_from(OPTION_NAMES), st.none() | st.text(max_size=12)), max_size=6))
def test_accepted_data_holds_only_whitelisted_well_formed_options(
    pairs: list[tuple[str, str | None]],
) -> None:
    words = [name if value is None else f"{name}={value}" for name, value in pairs]
    try:
        spec = build(SOURCE, words)
    except InvalidOptionError:
        return
    items = spec.data.split(",")
    assert items[:2] == [items[0], "addr=127.0.0.1"] and items[0].startswith("vers=")
    for item in items[2:]:
        key, _, value = item.partition("=")
        assert key in nfs._OPTIONS or key == "clientaddr"
        assert not set(value) & set("= \t\n\0")


@given(st.text(max_size=40))
def test_arbitrary_option_text_only_ever_raises_invalid_option(text: str) -> None:
    try:
        build(SOURCE, text)
    except InvalidOptionError:
        pass


def test_without_pyroute2_a_v4_0_mount_says_how_to_get_clientaddr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mountkit.nfsroute", None)  # what `import` sees without pyroute2
    with pytest.raises(InvalidOptionError, match=r"clientaddr=.*mountkit\[nfs\]"):
        build_mount(SOURCE, ["vers=4.0"], resolve=no_resolve)
    # an explicit address, or a version without callbacks, needs no lookup at all
    assert build_mount(SOURCE, ["vers=4.0"], resolve=no_resolve, clientaddr="10.0.0.7").fstype == "nfs4"
    assert build_mount(SOURCE, ["vers=4.2"], resolve=no_resolve).data == "vers=4.2,addr=127.0.0.1"
