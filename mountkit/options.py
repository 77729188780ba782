"""mount(8)-style option lists turned into what mount(2) and mount_setattr(2) take.

A word is one of three kinds: a *flag word* (``ro``, ``nosuid``, ``rbind``,
``rshared`` ...) that becomes mount(2) flags; a *userspace word* (fstab's
``noauto``, ``_netdev``, ``x-*`` ...) that only helpers read and the kernel
must never see, so it is dropped; anything else is a filesystem *data* option,
kept in order for the kernel's data string.

Words fold left to right and a later word overrides an earlier one
(``ro,rw`` is ``rw``), as in mount(8).  One deliberate difference: the three
atime modes ``noatime``, ``relatime`` and ``strictatime`` exclude each other
(the last one given wins), because the kernel keeps a single atime mode and
mount(8)'s plain bit fold would let ``strictatime`` silently beat a later
``noatime``.  Of several propagation words, the last one wins.

Sensitive options (passwords, keys) are held apart from the others: they reach
the kernel through :meth:`ParsedOptions.data_string` and nothing else — no
exception message, ``repr`` or :meth:`ParsedOptions.redacted` shows them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from mountkit.errors import InvalidOptionError
from mountkit.flags import MOUNT_ATTR, MOUNT_ATTR_ATIME_MASK, MS

_NONE = MS(0)
ATIME_MODES = MS.NOATIME | MS.RELATIME | MS.STRICTATIME

#: flag word -> (flags it sets, flags it clears)
FLAG_WORDS: dict[str, tuple[MS, MS]] = {
    "ro": (MS.RDONLY, _NONE),
    "rw": (_NONE, MS.RDONLY),
    "nosuid": (MS.NOSUID, _NONE),
    "suid": (_NONE, MS.NOSUID),
    "nodev": (MS.NODEV, _NONE),
    "dev": (_NONE, MS.NODEV),
    "noexec": (MS.NOEXEC, _NONE),
    "exec": (_NONE, MS.NOEXEC),
    "sync": (MS.SYNCHRONOUS, _NONE),
    "async": (_NONE, MS.SYNCHRONOUS),
    "dirsync": (MS.DIRSYNC, _NONE),
    "remount": (MS.REMOUNT, _NONE),
    "bind": (MS.BIND, _NONE),
    "rbind": (MS.BIND | MS.REC, _NONE),
    "move": (MS.MOVE, _NONE),
    "noatime": (MS.NOATIME, MS.RELATIME | MS.STRICTATIME),
    "atime": (_NONE, MS.NOATIME),
    "relatime": (MS.RELATIME, MS.NOATIME | MS.STRICTATIME),
    "norelatime": (_NONE, MS.RELATIME),
    "strictatime": (MS.STRICTATIME, MS.NOATIME | MS.RELATIME),
    "nostrictatime": (_NONE, MS.STRICTATIME),
    "nodiratime": (MS.NODIRATIME, _NONE),
    "diratime": (_NONE, MS.NODIRATIME),
    "lazytime": (MS.LAZYTIME, _NONE),
    "nolazytime": (_NONE, MS.LAZYTIME),
    "mand": (MS.MANDLOCK, _NONE),
    "nomand": (_NONE, MS.MANDLOCK),
    "silent": (MS.SILENT, _NONE),
    "loud": (_NONE, MS.SILENT),
    "nosymfollow": (MS.NOSYMFOLLOW, _NONE),
    "symfollow": (_NONE, MS.NOSYMFOLLOW),
    "iversion": (MS.I_VERSION, _NONE),
    "noiversion": (_NONE, MS.I_VERSION),
    "defaults": (_NONE, _NONE),
}

PROPAGATION_WORDS: dict[str, MS] = {
    "shared": MS.SHARED,
    "private": MS.PRIVATE,
    "slave": MS.SLAVE,
    "unbindable": MS.UNBINDABLE,
    "rshared": MS.SHARED | MS.REC,
    "rprivate": MS.PRIVATE | MS.REC,
    "rslave": MS.SLAVE | MS.REC,
    "runbindable": MS.UNBINDABLE | MS.REC,
}

#: fstab words only userspace helpers read; never passed to the kernel.
USERSPACE_WORDS = frozenset(
    {"auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev", "nofail"}
)
_USERSPACE_PREFIXES = ("comment=", "x-", "X-")

#: mount(2) flag -> mount_setattr(2) attribute, for the per-mount flags that have one.
_MOUNT_ATTRS: tuple[tuple[MS, MOUNT_ATTR], ...] = (
    (MS.RDONLY, MOUNT_ATTR.RDONLY),
    (MS.NOSUID, MOUNT_ATTR.NOSUID),
    (MS.NODEV, MOUNT_ATTR.NODEV),
    (MS.NOEXEC, MOUNT_ATTR.NOEXEC),
    (MS.NOSYMFOLLOW, MOUNT_ATTR.NOSYMFOLLOW),
    (MS.NODIRATIME, MOUNT_ATTR.NODIRATIME),
)

#: words that set flags, the widest first so that rbind is chosen over bind.
_SET_WORDS_WIDEST_FIRST = sorted(
    ((word, effect) for word, effect in FLAG_WORDS.items() if effect[0]),
    key=lambda item: -item[1][0].bit_count(),
)

_OPERATION = "parse options"
_SHOWN_CHARS = 64


def _is_userspace(word: str) -> bool:
    return word in USERSPACE_WORDS or word.startswith(_USERSPACE_PREFIXES)


def _describe(index: int, item: object, sensitive: bool) -> str:
    """How an error names an item: by position only when it is sensitive, else without its value.

    A malformed item may be several options run together (``sec=sys,password=...``), so no value is
    shown: only what precedes the first ``=``.
    """
    if sensitive:
        return f"sensitive option #{index}"
    text = repr(item.partition("=")[0] + "=..." if isinstance(item, str) and "=" in item else item)
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 3] + "..."
    return f"option #{index} {text}"


def _problem(item: str) -> str | None:
    if not item:
        return "empty"
    if "," in item:
        return "contains a comma"
    if "\0" in item:
        return "contains NUL"
    if "\n" in item or "\r" in item:
        return "contains a newline"
    return None


def split_options(options: Iterable[str] | str | None, *, sensitive: bool = False) -> Iterator[str]:
    """Yield validated option words; a string is split on commas.

    Raises :class:`InvalidOptionError` for a non-string, an empty item, or one
    holding a comma (list items only), NUL or newline, all of which would
    change the meaning of the kernel's comma-separated data or of mountinfo.
    Items are numbered from 1; a sensitive item's value is never shown.
    """
    if options is None:
        return
    if isinstance(options, str):
        if not options:
            return
        items: Iterable[object] = options.split(",")
    elif isinstance(options, bytes | bytearray):
        raise InvalidOptionError(_OPERATION, "options must be str or an iterable of str, not bytes")
    else:
        items = options
    for index, item in enumerate(items, 1):
        if not isinstance(item, str):
            raise InvalidOptionError(
                _OPERATION, f"{_describe(index, type(item).__name__, sensitive)}: not a string"
            )
        problem = _problem(item)
        if problem:
            raise InvalidOptionError(_OPERATION, f"{_describe(index, item, sensitive)}: {problem}")
        yield item


def redact(option: str) -> str:
    """``key=<redacted>`` for ``key=value``, else ``<redacted>``: safe to log."""
    key, eq, _ = option.partition("=")
    return f"{key}=<redacted>" if eq else "<redacted>"


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedOptions:
    """An option list, sorted into mount(2) flags, propagation and filesystem data."""

    flags: MS = _NONE
    clear: MS = _NONE
    propagation: MS = _NONE
    data: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"ParsedOptions(flags={self.flags!r}, clear={self.clear!r}, propagation={self.propagation!r}, "
            f"data={self.data!r}, sensitive=<{len(self.sensitive)} redacted>)"
        )

    __str__ = __repr__

    def data_string(self) -> str | None:
        """The kernel's data argument: data then sensitive options, or None when there are none."""
        return ",".join(self.data + self.sensitive) or None

    def redacted(self) -> str:
        """All options as one string for logs, with every sensitive value replaced."""
        words = flags_to_options(self.flags, self.clear, self.propagation)
        return ",".join([*words, *self.data, *map(redact, self.sensitive)])

    def mount_attr(self) -> tuple[int, int]:
        """``(attr_set, attr_clr)`` for mount_setattr(2)/fsmount(2).

        Only per-mount flags have attributes; superblock flags (sync, lazytime,
        ...) are ignored here.  When any atime word was given, the whole atime
        mask is in ``attr_clr`` (the kernel requires that to change the mode) and
        the mode is noatime, strictatime, or else relatime, the kernel default.
        """
        attr_set = attr_clr = 0
        for flag, attr in _MOUNT_ATTRS:
            if flag in self.flags:
                attr_set |= attr
            elif flag in self.clear:
                attr_clr |= attr
        if (self.flags | self.clear) & ATIME_MODES:
            attr_clr |= MOUNT_ATTR_ATIME_MASK
            if MS.NOATIME in self.flags:
                attr_set |= MOUNT_ATTR.NOATIME
            elif MS.STRICTATIME in self.flags:
                attr_set |= MOUNT_ATTR.STRICTATIME
            else:
                attr_set |= MOUNT_ATTR.RELATIME
        return int(attr_set), int(attr_clr)


def parse_options(
    options: Iterable[str] | str | None = None, sensitive: Iterable[str] | str | None = None
) -> ParsedOptions:
    """Fold mount(8)-style options into a :class:`ParsedOptions`.

    ``sensitive`` items are always filesystem data (never interpreted as flag
    words) and are kept out of everything but :meth:`ParsedOptions.data_string`.
    Raises :class:`InvalidOptionError` for malformed items (see :func:`split_options`).
    """
    flags = clear = propagation = _NONE
    data: list[str] = []
    for word in split_options(options):
        if word in FLAG_WORDS:
            add, remove = FLAG_WORDS[word]
            flags = (flags & ~remove) | add
            clear = (clear & ~add) | remove
        elif word in PROPAGATION_WORDS:
            propagation = PROPAGATION_WORDS[word]
        elif not _is_userspace(word):
            data.append(word)
    secret = tuple(split_options(sensitive, sensitive=True))
    return ParsedOptions(flags, clear, propagation, tuple(data), secret)


def flags_to_options(flags: MS, clear: MS = _NONE, propagation: MS = _NONE) -> list[str]:
    """The option words that :func:`parse_options` folds back into these flags.

    Useful to restate a mount's current per-mount flags on a remount (the
    kernel refuses a bind remount that drops a locked flag such as nosuid).
    Clearing words come first, and only for what no setting word implies.
    """
    setting: list[str] = []
    rest, implied = flags, _NONE
    for word, (add, remove) in _SET_WORDS_WIDEST_FIRST:
        if add in rest:
            setting.append(word)
            rest &= ~add
            implied |= remove
    clearing = [
        word
        for word, (add, remove) in FLAG_WORDS.items()
        if not add and remove and remove in clear and not remove & implied
    ]
    propagating = [word for word, value in PROPAGATION_WORDS.items() if value == propagation]
    return clearing + setting + propagating
