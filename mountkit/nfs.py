"""NFS mounts without the mount.nfs helper: the source and data string mount(2) needs.

The kernel's NFS client does not resolve host names, so the data string must
carry the server's address as ``addr=``; NFSv4.0 (and v4.1, and a plain
``vers=4`` that may settle on 4.0) also wants ``clientaddr=``, the local
address the server's callbacks reach; for v3 the kernel finds mountd through
rpcbind itself.  These strings are proven on a real kernel (source
``127.0.0.1:/srv/nfs``)::

    nfs   vers=3,addr=127.0.0.1,nolock
    nfs   vers=3,addr=127.0.0.1                 (NLM locking through rpc.statd)
    nfs4  vers=4.0,addr=127.0.0.1,clientaddr=127.0.0.1
    nfs4  vers=4.1,addr=127.0.0.1,clientaddr=127.0.0.1
    nfs4  vers=4.2,addr=127.0.0.1

The default version is 3, Filestore's default protocol.  Options are a
whitelist with validated values: it is what stops a caller from smuggling a
second option into the kernel's comma-separated data.  This module is pure Python (no compiled
extension, no pyroute2); the route lookup behind the default ``clientaddr=`` is
:mod:`mountkit.nfsroute`.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable

from .errors import InvalidOptionError, MountError
from .nfsaddr import OPTIONS_OP as _OPTIONS_OP
from .nfsaddr import ip_address as _address
from .options import split_options

DEFAULT_VERSION = "3"
_SOURCE_OP = "nfs source"
_UINT32 = 2**32 - 1
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_DIGITS = re.compile(r"[0-9]{1,10}")

Resolver = Callable[[str], str]
ClientAddress = Callable[[str], str]


@dataclasses.dataclass(frozen=True, slots=True)
class NfsSource:
    """``host:/export``; ``host`` is a name or an address, IPv6 without its brackets.

    A mount verb takes one in place of the text (``Mounter.mount(NfsSource(ip, "/vol1"), ...)``), so a
    caller holding the server's address never formats a source for mountkit to parse again; it is
    checked as :func:`parse_source` checks text.
    """

    host: str
    export: str

    def __str__(self) -> str:
        """The source as mount(8) and the mount table spell it: an IPv6 address in brackets."""
        return f"[{self.host}]:{self.export}" if ":" in self.host else f"{self.host}:{self.export}"


@dataclasses.dataclass(frozen=True, slots=True)
class NfsMountSpec:
    """What mount(2) gets: ``source`` (``addr:/export``), ``fstype`` and ``data``."""

    source: str
    fstype: str
    data: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Number:
    low: int
    high: int


#: option -> None (a flag, no value), a number range, or the allowed values.
_OPTIONS: dict[str, _Number | frozenset[str] | None] = {
    "vers": frozenset({"3", "4", "4.0", "4.1", "4.2"}),
    "minorversion": _Number(0, 2),
    "proto": frozenset({"tcp", "udp", "rdma", "tcp6", "udp6", "rdma6"}),
    "port": _Number(0, 65535),
    "mountport": _Number(0, 65535),
    "mountproto": frozenset({"tcp", "udp", "tcp6", "udp6"}),
    "mountvers": _Number(1, 3),
    "timeo": _Number(1, _UINT32),
    "retrans": _Number(0, _UINT32),
    "nconnect": _Number(1, 16),
    "max_connect": _Number(1, 16),
    "sec": frozenset({"sys", "krb5", "krb5i", "krb5p", "none"}),
    "local_lock": frozenset({"all", "flock", "posix", "none"}),
    "lookupcache": frozenset({"all", "none", "pos", "positive"}),
    "rsize": _Number(1024, 1 << 20),
    "wsize": _Number(1024, 1 << 20),
    "actimeo": _Number(0, _UINT32),
    "acregmin": _Number(0, _UINT32),
    "acregmax": _Number(0, _UINT32),
    "acdirmin": _Number(0, _UINT32),
    "acdirmax": _Number(0, _UINT32),
    **dict.fromkeys(
        (
            "hard",
            "soft",
            "softerr",
            "lock",
            "nolock",
            "ac",
            "noac",
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
        )
    ),
}
#: the filesystem types of the kernel's NFS client: one family (mounting nfs4 where nfs is mounted is
#: the same mount)
NFS_FAMILY = frozenset({"nfs", "nfs4"})
#: mount(8)'s two spellings of the version option; the kernel reads both, and the last one given wins
_ALIASES = {"nfsvers": "vers"}
#: the options that say where to connect: mountkit derives them from the server's address and the route,
#: and refuses them from a caller (a smuggled ``addr=`` would point a mount at another server)
SET_BY_MOUNTKIT = frozenset({"addr", "clientaddr", "mountaddr"})
_V3_ONLY = frozenset({"mountport", "mountproto", "mountvers"})
_PROTOCOLS = ("proto", "mountproto")


def _bad_source(text: str, why: str) -> InvalidOptionError:
    return InvalidOptionError(_SOURCE_OP, f"{text[:200]!r}: {why}")


def parse_source(text: str) -> NfsSource:
    """Split ``host:/export``, ``1.2.3.4:/export`` or ``[fd00::1]:/export``.

    Raises :class:`InvalidOptionError` for an empty or malformed host, bad
    brackets, a relative export, or NUL, comma, whitespace or control
    characters anywhere (they would corrupt the kernel's data or mountinfo).
    """
    if not isinstance(text, str):
        raise InvalidOptionError(_SOURCE_OP, f"source must be a str, not {type(text).__name__}")
    _check_text(text)
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise _bad_source(text, "bad brackets: expected [ipv6]:/export")
        host, export = text[1:close], text[close + 2 :]
        _check_ipv6(host, text)
    else:
        host, colon, export = text.partition(":")
        if not colon:
            raise _bad_source(text, "expected host:/export")
        _check_host(host, text)
    _check_export(export, text)
    return NfsSource(host, export)


def source_of(source: str | NfsSource) -> NfsSource:
    """``source`` parsed (text) or checked as :func:`parse_source` checks text (an :class:`NfsSource`)."""
    if not isinstance(source, NfsSource):
        return parse_source(source)
    text = str(source)
    if not isinstance(source.host, str) or not isinstance(source.export, str):
        raise InvalidOptionError(_SOURCE_OP, "NfsSource host and export must be str")
    _check_text(text)
    if ":" in source.host:
        _check_ipv6(source.host, text)
    else:
        _check_host(source.host, text)
    _check_export(source.export, text)
    return source


def other_source(source: str | NfsSource, fstype: str, target: str) -> str:
    """The source of a mount of ``fstype``, which is not NFS: text; an :class:`NfsSource` is refused."""
    if isinstance(source, NfsSource):
        raise InvalidOptionError("mount", f"an NFS source needs fstype nfs or nfs4, not {fstype!r}", target)
    return source


def _check_text(text: str) -> None:
    if any(ch == "," or ch.isspace() or not ch.isprintable() for ch in text):
        raise _bad_source(text, "contains a comma, whitespace or a control character")


def _check_ipv6(host: str, text: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise _bad_source(text, "only an IPv6 address goes in brackets") from None


def _check_host(host: str, text: str) -> None:
    if not host:
        raise _bad_source(text, "empty host")
    if "[" in host or "]" in host:
        raise _bad_source(text, "bad brackets: expected [ipv6]:/export")
    if not _HOSTNAME.fullmatch(host):
        raise _bad_source(text, "host is not a host name or IPv4 address (put IPv6 in brackets)")


def _check_export(export: str, text: str) -> None:
    if not export.startswith("/"):
        raise _bad_source(text, "export must be an absolute path")


def versions(options: Iterable[str] | str) -> list[str]:
    """The NFS versions the ``vers=``/``nfsvers=`` words of ``options`` ask for, in order (the kernel
    takes the last).  Options are not validated here (:func:`build_mount` does that)."""
    words = split_options(options if isinstance(options, str) else ",".join(options))
    found = []
    for word in words:
        key, sep, value = word.partition("=")
        if sep and _ALIASES.get(key.strip(), key.strip()) == "vers":
            found.append(value.strip())
    return found


def version_option(version: str) -> str:
    """The option word that asks for NFS ``version`` (``3``, ``4``, ``4.0``, ``4.1``, ``4.2``)."""
    return f"vers={version}"


def fstype(version: str) -> str:
    """The filesystem type the kernel mounts NFS ``version`` as: ``nfs4`` for 4.x, else ``nfs``."""
    return "nfs4" if version.startswith("4") else "nfs"


def resolve_host(host: str) -> str:
    """The first IPv4 address of ``host``, else its first IPv6 one (getaddrinfo).

    Raises :class:`MountError` (EHOSTUNREACH) when the name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise MountError(
            errno.EHOSTUNREACH, "nfs resolve", host, detail=f"cannot resolve: {exc.strerror}"
        ) from None
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            if info[0] == family:
                return str(info[4][0])
    raise MountError(errno.EHOSTUNREACH, "nfs resolve", host, detail="no IPv4 or IPv6 address")


def uses_nlm(options: Iterable[str] | str) -> bool:
    """Do locks on this mount go to the server's NLM (and so need the node's rpc.statd)?

    Only NFSv2/v3 lock over NLM (v4 locks are part of the protocol). ``nolock`` keeps every lock
    local, ``local_lock=all`` too; ``local_lock=posix`` or ``=flock`` keep one kind local and
    send the other to NLM. The last of ``lock``/``nolock``, and of ``local_lock=``, wins, as in
    the kernel's parser. Options are not validated here (:func:`build_mount` does that).
    """
    words = list(split_options(options if isinstance(options, str) else ",".join(options)))
    version = (versions(words) or [DEFAULT_VERSION])[-1]
    lock, local = True, "none"
    for word in words:
        key, sep, value = word.partition("=")
        key = key.strip()
        if key in ("lock", "nolock") and not sep:
            lock = key == "lock"
        elif key == "local_lock" and sep:
            local = value.strip()
    return version in ("2", "3") and lock and local != "all"


def _check_value(word: str, key: str, value: str | None) -> None:
    """Raise unless ``value`` is allowed for the known option ``key``."""
    spec = _OPTIONS[key]
    if value is not None and (
        not value or "=" in value or any(ch.isspace() or not ch.isprintable() for ch in value)
    ):
        raise InvalidOptionError(_OPTIONS_OP, f"{word!r}: a separator or control character in the value")
    if spec is None:
        if value is not None:
            raise InvalidOptionError(_OPTIONS_OP, f"{word!r}: {key} takes no value")
        return
    if value is None:
        raise InvalidOptionError(_OPTIONS_OP, f"{word!r}: {key} needs a value")
    if isinstance(spec, _Number):
        if not _DIGITS.fullmatch(value) or not spec.low <= int(value) <= spec.high:
            raise InvalidOptionError(
                _OPTIONS_OP, f"{word!r}: {key} must be a number in {spec.low}..{spec.high}"
            )
    elif not all(part in spec for part in (value.split(":") if key == "sec" else [value])):
        raise InvalidOptionError(_OPTIONS_OP, f"{word!r}: {key} must be one of {', '.join(sorted(spec))}")


def _version(version: str, minor: str | None) -> str:
    if minor is None:
        return version
    if version == "4":
        return f"4.{minor}"
    if version == f"4.{minor}":
        return version
    raise InvalidOptionError(_OPTIONS_OP, f"minorversion={minor} does not fit vers={version}")


def _protocol(key: str, value: str, ipv6: bool) -> str:
    """tcp/udp/rdma for an IPv6 server become tcp6/udp6/rdma6, as the kernel requires."""
    if value.endswith("6") and not ipv6:
        raise InvalidOptionError(_OPTIONS_OP, f"{key}={value} needs an IPv6 server address")
    return value + "6" if ipv6 and not value.endswith("6") else value


@dataclasses.dataclass(frozen=True, slots=True)
class NfsRequest:
    """An NFS mount as asked, its source and options validated, nothing looked up yet."""

    host: str
    export: str
    version: str
    options: tuple[tuple[str, str | None], ...]

    @property
    def fstype(self) -> str:
        """The filesystem type the kernel must have: ``nfs4`` for every NFSv4 version, else ``nfs``."""
        return fstype(self.version)


def parse_mount(source: str | NfsSource, options: Iterable[str] | str = ()) -> NfsRequest:
    """Validate ``host:/export`` (or an :class:`NfsSource`) and the NFS data options, without
    touching the network.

    Apart from :func:`resolve_mount` so that a caller can first ask the kernel for
    :attr:`NfsRequest.fstype`: a node without an NFS client then learns that, not that the
    server's name or route could not be looked up.  Raises :class:`InvalidOptionError` (see
    :func:`build_mount`).
    """
    parsed = source_of(source)
    version, minor = DEFAULT_VERSION, None
    rest: list[tuple[str, str | None]] = []
    for word in split_options(options):
        name, eq, raw = word.partition("=")
        key = _ALIASES.get(name, name)
        value = raw if eq else None
        if key in SET_BY_MOUNTKIT:
            raise InvalidOptionError(_OPTIONS_OP, f"{word!r}: {key} is set by mountkit, not by options")
        if key not in _OPTIONS:
            raise InvalidOptionError(_OPTIONS_OP, f"{word!r}: unknown NFS option")
        _check_value(word, key, value)
        if key == "vers":
            version = str(value)
        elif key == "minorversion":
            minor = value
        else:
            rest.append((key, value))
    if minor is not None and version == "3":
        raise InvalidOptionError(_OPTIONS_OP, "minorversion needs vers=4")
    version = _version(version, minor)
    if fstype(version) == "nfs4":
        for key, _ in rest:
            if key in _V3_ONLY:
                raise InvalidOptionError(_OPTIONS_OP, f"{key} is for NFSv3 only, not vers={version}")
    return NfsRequest(parsed.host, parsed.export, version, tuple(rest))


def resolve_mount(
    request: NfsRequest, *, resolve: Resolver = resolve_host, clientaddr: ClientAddress | str | None = None
) -> NfsMountSpec:
    """The lookups of :func:`build_mount`: the server's address, and ``clientaddr=`` for v4.0/v4.1.

    Raises :class:`InvalidOptionError` for a transport that does not fit the server's address
    family or the version, and :class:`MountError` when the host does not resolve or has no route.
    """
    kind = request.fstype
    v4 = kind == "nfs4"
    try:
        server = ipaddress.ip_address(request.host)
    except ValueError:
        server = _address(resolve(request.host), "resolved host")
    ipv6 = server.version == 6
    data = [f"vers={request.version}", f"addr={server}"]
    if request.version in ("4", "4.0", "4.1"):
        if clientaddr is None:
            clientaddr = _route_lookup()
        local = clientaddr if isinstance(clientaddr, str) else clientaddr(str(server))
        data.append(f"clientaddr={_address(local, 'client address')}")
    for key, value in request.options:
        if key in _PROTOCOLS and value is not None:
            value = _protocol(key, value, ipv6)
            if v4 and value.startswith("udp"):
                raise InvalidOptionError(_OPTIONS_OP, f"{key}={value}: NFSv4 needs tcp or rdma")
        data.append(key if value is None else f"{key}={value}")
    return NfsMountSpec(str(NfsSource(str(server), request.export)), kind, ",".join(data))


def build_mount(
    source: str | NfsSource,
    options: Iterable[str] | str = (),
    *,
    resolve: Resolver = resolve_host,
    clientaddr: ClientAddress | str | None = None,
) -> NfsMountSpec:
    """Turn ``host:/export`` (or an :class:`NfsSource`) and NFS data options into mount(2)'s source,
    fstype and data: :func:`parse_mount` then :func:`resolve_mount`.

    ``options`` are filesystem data options only (``ro`` and other flags belong to
    :mod:`mountkit.options`).  ``vers``/``nfsvers`` may be 3, 4, 4.0, 4.1 or 4.2 (default 3);
    ``addr``, ``clientaddr`` and ``mountaddr`` are set here and refused from the caller;
    ``clientaddr`` may instead be given as the keyword, a fixed address or a function of the
    server address (by default :func:`mountkit.nfsroute.client_address`, the kernel's route).
    Raises :class:`InvalidOptionError` for a bad source, an unknown option or a bad value, and
    :class:`MountError` when the host does not resolve.
    """
    return resolve_mount(parse_mount(source, options), resolve=resolve, clientaddr=clientaddr)


def _route_lookup() -> Callable[[str], str]:
    """The kernel's route lookup for ``clientaddr=``, which needs pyroute2 (the ``mountkit[nfs]`` extra)."""
    try:
        # imported here: parsing NFS sources and options needs neither pyroute2 nor netlink
        from mountkit.nfsroute import client_address
    except ImportError as exc:
        raise InvalidOptionError(
            _OPTIONS_OP,
            f"vers=4.0/4.1 needs clientaddr=: give it, or install mountkit[nfs] to look it up "
            f"({exc.name} missing)",
        ) from exc
    return client_address
